package vcard

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"slices"
	"strings"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// With Deps.Avatar the vCard's PHOTO (XEP-0153) lives in the account's PEP
// avatar (XEP-0084), as XEP-0398 converts them: the vCard is stored
// without the PHOTO it is set with, and read with the avatar as its PHOTO.

// NSUpdate is XEP-0153's namespace of the avatar hash in presence.
const NSUpdate = "vcard-temp:x:update"

var (
	namePhoto  = xml.Name{Space: NS, Local: "PHOTO"}
	nameType   = xml.Name{Space: NS, Local: "TYPE"}
	nameBinval = xml.Name{Space: NS, Local: "BINVAL"}
	nameUpdate = xml.Name{Space: NSUpdate, Local: "x"}
	nameHash   = xml.Name{Space: NSUpdate, Local: "photo"}
)

// setAvatar takes the PHOTO out of card (the tokens of a vCard element)
// for the avatar and returns the vCard to store. A PHOTO with image data
// (BINVAL) becomes the avatar; set by a client (fromClient), a vCard
// without one removes the avatar, and a PHOTO without image data (an
// EXTVAL URL, or empty) stays in the vCard. Moving a stored vCard
// (!fromClient), the PHOTO becomes the avatar only if the account has
// none, and only a PHOTO with image data is taken out.
func (m *Module) setAvatar(ctx context.Context, user jid.JID, card []xml.Token, fromClient bool) ([]xml.Token, error) {
	var photo stanza.Element
	found := false
	for el := range stanza.Elements(card) {
		photo, found = el.Child(namePhoto)
	}
	var binval string
	if found {
		bin, _ := photo.Child(nameBinval)
		binval = strings.Map(dropSpace, bin.Text())
	}
	if binval == "" {
		if fromClient {
			return card, m.avatar.SetAvatar(ctx, user, "", nil)
		}
		return card, nil
	}
	data, err := base64.StdEncoding.DecodeString(binval)
	if err != nil {
		return nil, stanza.NewFailure(mstanza.Modify, mstanza.BadRequest, "the PHOTO's BINVAL is not base64")
	}
	typ, _ := photo.Child(nameType)
	set := fromClient
	if !set {
		hash, err := m.avatar.AvatarHash(ctx, user)
		if err != nil {
			return nil, err
		}
		set = hash == ""
	}
	if set {
		if err := m.avatar.SetAvatar(ctx, user, strings.TrimSpace(typ.Text()), data); err != nil {
			return nil, err
		}
	}
	return withoutPhoto(card), nil
}

// withAvatar returns card (the stored vCard's tokens, nil for none) with
// user's avatar as its PHOTO if requester may see it. A PHOTO the store
// has (one with a URL, or one stored before Deps.Avatar was set) shows
// only while the account has no avatar.
func (m *Module) withAvatar(ctx context.Context, user, requester jid.JID, card []xml.Token) ([]xml.Token, error) {
	typ, data, ok, err := m.avatar.Avatar(ctx, user, requester)
	if err != nil {
		return nil, err
	}
	if !ok {
		hash, err := m.avatar.AvatarHash(ctx, user)
		if err != nil || hash == "" || card == nil {
			return card, err
		}
		return withoutPhoto(card), nil // one requester may not see
	}
	var children []xml.TokenReader
	if typ != "" {
		children = append(children, stanza.TextElem(nameType, typ))
	}
	children = append(children, stanza.TextElem(nameBinval, base64.StdEncoding.EncodeToString(data)))
	photo := stanza.Resolve(stanza.Elem(namePhoto, nil, children...), "")
	if card == nil {
		card = []xml.Token{xml.StartElement{Name: vCardName}, xml.EndElement{Name: vCardName}}
	}
	card = withoutPhoto(card)
	out := make([]xml.Token, 0, len(card)+len(photo))
	out = append(out, card[:len(card)-1]...)
	out = append(out, photo...)
	return append(out, card[len(card)-1]), nil
}

// withoutPhoto returns a copy of card (a vCard element's tokens) without
// its PHOTO elements.
func withoutPhoto(card []xml.Token) []xml.Token {
	out := make([]xml.Token, 0, len(card))
	depth, skip := 0, false
	for _, t := range card {
		switch tt := t.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && tt.Name == namePhoto {
				skip = true
			}
		case xml.EndElement:
			depth--
			if skip && depth == 1 {
				skip = false
				continue
			}
		}
		if !skip {
			out = append(out, t)
		}
	}
	return out
}

// dropSpace drops the white space base64 is often wrapped with.
func dropSpace(r rune) rune {
	switch r {
	case ' ', '\t', '\r', '\n':
		return -1
	}
	return r
}

// SessionStarted moves the PHOTO of a vCard stored before Deps.Avatar was
// set into the account's avatar (unless it has one), at the first login
// of each account since the server started, and stores the vCard without
// it: the presence of the account then carries the avatar's hash.
func (m *Module) SessionStarted(ctx context.Context, s *server.Session) {
	if m.avatar == nil {
		return
	}
	user := s.JID().Bare()
	u := user.String()
	if _, done := m.moved.LoadOrStore(u, struct{}{}); done {
		return
	}
	data, err := m.store.Get(ctx, u, Key)
	if errors.Is(err, storage.ErrNotFound) || err == nil && !bytes.Contains(data, []byte("BINVAL")) {
		return
	}
	if err == nil {
		err = m.movePhoto(ctx, user, data)
	}
	if err != nil {
		m.moved.Delete(u) // try again at the next login
		m.log.Warn("moving the vCard's PHOTO to the avatar failed", "err", err)
	}
}

func (m *Module) movePhoto(ctx context.Context, user jid.JID, data []byte) error {
	toks, err := stanza.ParseElement(data)
	if err != nil {
		return err
	}
	out, err := m.setAvatar(ctx, user, toks, false)
	if err != nil || len(out) == len(toks) {
		return err // no PHOTO with image data (BINVAL was in a LOGO, say)
	}
	var buf bytes.Buffer
	if err := stanza.WriteTokens(&buf, out, ""); err != nil {
		return err
	}
	return m.store.Put(ctx, user.String(), Key, buf.Bytes())
}

// RoutePriority is the place of the route adding the avatar hash among
// the routes of presence clients send: before presence's broadcast (0),
// so that every copy carries the hash.
const RoutePriority = 100

// StanzaRoutes adds, with Deps.Avatar, the avatar's hash to the available
// presence the account's clients send, broadcast or directed.
func (m *Module) StanzaRoutes() []server.StanzaRoute {
	if m.avatar == nil {
		return nil
	}
	return []server.StanzaRoute{{
		Side: filter.Send, Kind: stanza.Presence, Types: []string{""}, Priority: RoutePriority,
		Handler: server.RouteHandlerFunc(m.stampHash),
	}}
}

// stampHash puts <x xmlns='vcard-temp:x:update'><photo>hash</photo></x>
// into the presence (XEP-0398 §4): where it has none, or an <x/> without
// <photo/>, or the hash of another image than the account's avatar. An
// empty <photo/> the client sent is left alone, and so is a hash when the
// account has no avatar; otherwise an account without one gets an empty
// <photo/> (XEP-0153: no avatar).
func (m *Module) stampHash(ctx context.Context, d *server.Delivery) error {
	p := d.Stanza
	given := ""
	if x, ok := p.ChildElement(nameUpdate); ok {
		if photo, ok := x.Child(nameHash); ok {
			if given = strings.TrimSpace(photo.Text()); given == "" {
				return nil
			}
		}
	}
	hash, err := m.avatar.AvatarHash(ctx, d.Account)
	if err != nil {
		return err // logged; the presence goes on as it is
	}
	if given != "" && (hash == "" || hash == given) {
		return nil
	}
	c := p.WithoutChildren(func(e stanza.Element) bool { return e.Name == nameUpdate })
	if c == p {
		cp := *p
		cp.Inner = slices.Clip(p.Inner) // appending copies
		c = &cp
	}
	c.AppendChild(stanza.Elem(nameUpdate, nil, stanza.TextElem(nameHash, hash)))
	d.Stanza = c
	return nil
}

package muc

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
)

// iq handles iqs to a room or to an occupant.
func (m *Module) iq(ctx context.Context, st *stanza.Stanza) error {
	if st.To.Resourcepart() != "" {
		return m.occupantIQ(ctx, st)
	}
	if st.Type != stanza.Get && st.Type != stanza.Set {
		return nil
	}
	p, ok := st.PayloadElement()
	if !ok {
		return stanza.NewError(mstanza.Modify, mstanza.BadRequest, "")
	}
	if p.Name.Space == NSMAM && (p.Name.Local == "query" || p.Name.Local == "metadata") {
		return m.mamIQ(ctx, st)
	}
	return m.withRoom(ctx, st.To, func(r *room) ([]*stanza.Stanza, error) {
		if r == nil {
			return nil, stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "No such room")
		}
		if r.locked && r.aff(m, st.From) != storage.AffOwner {
			return nil, stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "No such room")
		}
		switch {
		case p.Name.Space == server.NSDiscoInfo && st.Type == stanza.Get:
			return r.discoInfo(ctx, m, st, p)
		case p.Name.Space == server.NSDiscoItems && st.Type == stanza.Get:
			return []*stanza.Stanza{st.ResultReply(elem(server.NSDiscoItems, "query", nil))}, nil
		case p.Name.Space == NSPing && st.Type == stanza.Get:
			return []*stanza.Stanza{st.ResultReply(nil)}, nil
		case p.Name.Space == NSAdmin && p.Name.Local == "query":
			return r.admin(ctx, m, st, p)
		case p.Name.Space == NSOwner && p.Name.Local == "query":
			return r.owner(ctx, m, st, p)
		case p.Name.Space == NSRegister && p.Name.Local == "query":
			return r.register(ctx, m, st, p)
		case p.Name.Space == NSVCard && p.Name.Local == "vCard":
			return r.vcard(ctx, m, st, p)
		case p.Name.Space == NSModerate && p.Name.Local == "moderate" && st.Type == stanza.Set:
			return r.moderate(ctx, m, st, p.Attr("id"), p)
		case p.Name.Space == NSFasten && p.Name.Local == "apply-to" && st.Type == stanza.Set:
			mod, ok := p.Child(xml.Name{Space: NSModerate0, Local: "moderate"})
			if !ok {
				return nil, stanza.NewError(mstanza.Cancel, mstanza.FeatureNotImplemented, "")
			}
			return r.moderate(ctx, m, st, p.Attr("id"), mod)
		}
		return nil, stanza.NewError(mstanza.Cancel, mstanza.ServiceUnavailable, "")
	})
}

// occupantIQ handles iqs to room/nick: answers to forwarded iqs go back
// to the asker; a self-ping (XEP-0410) is answered here; other gets and
// sets from an occupant are forwarded to the target's primary session
// (XEP-0045 §7.9, vCard queries).
func (m *Module) occupantIQ(ctx context.Context, st *stanza.Stanza) error {
	if st.Type == stanza.Result || st.Type == stanza.Error {
		f, ok := m.fwd.take(st.ID, st.From, st.To)
		if !ok {
			return nil
		}
		c := *st
		c.ID, c.From, c.To = f.id, f.as, f.asker
		m.route(ctx, &c)
		return nil
	}
	return m.withRoom(ctx, st.To.Bare(), func(r *room) ([]*stanza.Stanza, error) {
		if r == nil {
			return nil, stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "No such room")
		}
		o, ok := r.real[st.From.String()]
		if !ok {
			return nil, stanza.NewError(mstanza.Cancel, mstanza.NotAcceptable, "You are not in the room")
		}
		target, ok := r.occ[st.To.Resourcepart()]
		if !ok {
			return nil, stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "No such occupant")
		}
		if p, ok := st.PayloadElement(); ok && target == o && p.Name.Space == NSPing && st.Type == stanza.Get {
			return []*stanza.Stanza{st.ResultReply(nil)}, nil
		}
		to := target.primary().jid
		id, ok := m.fwd.add(forward{asker: st.From, id: st.ID, target: to, via: r.occJID(o.nick), as: st.To}, m.now())
		if !ok {
			return nil, stanza.NewError(mstanza.Wait, mstanza.ResourceConstraint, "Too many queries pending")
		}
		c := *st
		c.ID, c.From, c.To = id, r.occJID(o.nick), to
		return []*stanza.Stanza{&c}, nil
	})
}

// discoInfo answers disco#info on the room (XEP-0045 §6.4) and on its
// x-roomuser-item node (§7.2, the requester's registered nick).
func (r *room) discoInfo(ctx context.Context, m *Module, st *stanza.Stanza, p stanza.Element) ([]*stanza.Stanza, error) {
	name := r.cfg.Name
	if name == "" {
		name = r.jid.Localpart()
	}
	if node := p.Attr("node"); node != "" {
		if node != "x-roomuser-item" {
			return nil, stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "")
		}
		var ch []xmlReader
		if n := r.affs[st.From.Bare().String()].nick; n != "" {
			ch = append(ch, elem(server.NSDiscoInfo, "identity", attrs("category", "conference", "type", "text", "name", n)))
		}
		return []*stanza.Stanza{st.ResultReply(elem(server.NSDiscoInfo, "query", attrs("node", node), ch...))}, nil
	}
	pick := func(b bool, yes, no string) string {
		if b {
			return yes
		}
		return no
	}
	features := []string{server.NSDiscoInfo, NS, NSOccID, NSSID, "muc#stable_id", "muc#self-ping-optimization", NSVCard, NSRegister, nsRequest,
		pick(r.cfg.Public, "muc_public", "muc_hidden"),
		pick(r.cfg.Persistent, "muc_persistent", "muc_temporary"),
		pick(r.cfg.MembersOnly, "muc_membersonly", "muc_open"),
		pick(r.cfg.Password != "", "muc_passwordprotected", "muc_unsecured"),
		pick(r.cfg.Moderated, "muc_moderated", "muc_unmoderated"),
		pick(r.cfg.Whois == whoisAnyone, "muc_nonanonymous", "muc_semianonymous"),
	}
	features = append(features, NSRetract, NSModerate, NSModerate0)
	if r.archiving(m) {
		features = append(features, NSMAM, NSMAMExtended)
	}
	ch := []xmlReader{elem(server.NSDiscoInfo, "identity", attrs("category", "conference", "type", "text", "name", name))}
	for _, f := range features {
		ch = append(ch, elem(server.NSDiscoInfo, "feature", attrs("var", f)))
	}
	info := &form.Form{Type: form.TypeResult, Fields: []form.Field{
		form.FormTypeField(nsRoomInfo),
		{Var: "muc#roomconfig_roomname", Label: "Name", Values: []string{name}},
		{Var: "muc#roominfo_description", Label: "Description", Values: []string{r.cfg.Desc}},
		{Var: "muc#roominfo_occupants", Label: "Number of occupants", Values: []string{strconv.Itoa(len(r.occ))}},
		{Var: "muc#roominfo_subject", Label: "Subject", Values: []string{r.cfg.Subject}},
		{Var: "muc#roomconfig_changesubject", Type: form.Boolean, Label: "Occupants may change the subject", Values: []string{pick(r.cfg.ChangeSubject, "1", "0")}},
	}}
	if r.cfg.Lang != "" {
		info.Fields = append(info.Fields, form.Field{Var: "muc#roominfo_lang", Label: "Language", Values: []string{r.cfg.Lang}})
	}
	if len(r.cfg.ContactJIDs) > 0 {
		info.Fields = append(info.Fields, form.Field{Var: "muc#roominfo_contactjid", Type: form.JIDMulti, Label: "Contact addresses", Values: r.cfg.ContactJIDs})
	}
	if r.cfg.AvatarHash != "" {
		info.Fields = append(info.Fields, form.Field{Var: "muc#roominfo_avatarhash", Type: form.TextMulti, Label: "Avatar hash", Values: []string{r.cfg.AvatarHash}})
	}
	ch = append(ch, info.TokenReader())
	return []*stanza.Stanza{st.ResultReply(elem(server.NSDiscoInfo, "query", nil, ch...))}, nil
}

// kvAvatar is the KV key of a room's vCard (the KV user is the room JID).
const kvAvatar = "muc:vcard"

// vcard answers vcard-temp on the room: anyone gets the room's vCard (its
// avatar), owners set it (XEP-0486 without pubsub, as Prosody's
// mod_vcard_muc).
func (r *room) vcard(ctx context.Context, m *Module, st *stanza.Stanza, p stanza.Element) ([]*stanza.Stanza, error) {
	if st.Type == stanza.Get {
		data, err := r.loadVCard(ctx, m)
		if err != nil {
			return nil, err
		}
		if len(data) == 0 {
			return []*stanza.Stanza{st.ResultReply(elem(NSVCard, "vCard", nil))}, nil
		}
		toks, err := stanza.ParseElement(data)
		if err != nil {
			return nil, fmt.Errorf("muc: stored vcard: %w", err)
		}
		return []*stanza.Stanza{st.ResultReply(stanza.Tokens(toks...))}, nil
	}
	if r.aff(m, st.From) != storage.AffOwner {
		return nil, stanza.NewError(mstanza.Auth, mstanza.Forbidden, "Only owners may set the room's vCard")
	}
	var b bytes.Buffer
	if err := stanza.WriteTokens(&b, p.Tokens(), ""); err != nil {
		return nil, fmt.Errorf("muc: vcard: %w", err)
	}
	if b.Len() > m.opts.MaxAvatarSize {
		return nil, stanza.NewError(mstanza.Modify, mstanza.NotAcceptable, "The vCard is too large")
	}
	hash, typ := "", ""
	if photo, ok := p.Child(xml.Name{Space: NSVCard, Local: "PHOTO"}); ok {
		bin, _ := photo.Child(xml.Name{Space: NSVCard, Local: "BINVAL"})
		t, _ := photo.Child(xml.Name{Space: NSVCard, Local: "TYPE"})
		data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(bin.Text()), ""))
		if err != nil {
			return nil, stanza.NewError(mstanza.Modify, mstanza.BadRequest, "The photo is not base64")
		}
		if len(data) > 0 {
			sum := sha1.Sum(data)
			hash, typ = hex.EncodeToString(sum[:]), t.Text()
		}
	}
	if m.kv != nil {
		if err := m.kv.Put(ctx, r.jid.String(), kvAvatar, b.Bytes()); err != nil {
			return nil, fmt.Errorf("muc: store vcard: %w", err)
		}
	} else {
		r.cfg.Avatar = b.Bytes()
	}
	r.cfg.AvatarHash, r.cfg.AvatarType = hash, typ
	if err := r.save(ctx, m); err != nil {
		return nil, err
	}
	out := []*stanza.Stanza{st.ResultReply(nil)}
	// XEP-0153: tell the occupants, from the room's own address.
	for _, o := range r.occupants() {
		for _, s := range o.sessions {
			pr := &stanza.Stanza{Kind: stanza.Presence, From: r.jid, To: s.jid}
			pr.AppendChild(elem(nsVUpdate, "x", nil, text(nsVUpdate, "photo", hash)))
			out = append(out, pr)
		}
	}
	return append(out, r.notice(104)...), nil
}

// loadVCard returns the room's serialised vCard, nil for none.
func (r *room) loadVCard(ctx context.Context, m *Module) ([]byte, error) {
	if m.kv == nil {
		return r.cfg.Avatar, nil
	}
	data, err := m.kv.Get(ctx, r.jid.String(), kvAvatar)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("muc: load vcard: %w", err)
	}
	return data, nil
}

// parseItemJID parses an item's jid attribute to a bare JID (or domain).
func parseItemJID(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil || j.Equal(jid.JID{}) {
		return jid.JID{}, stanza.NewError(mstanza.Modify, mstanza.JIDMalformed, "Bad address")
	}
	return j.Bare(), nil
}

// PublicRooms lists the public rooms at service (conference.<domain>) with
// their names, for the service's XEP-0030 disco#items (XEP-0045 §6.3;
// Services gives it to the server as Service.Items). Stored rooms that
// are not loaded are read, not loaded: listing does not keep every room
// in memory.
func (m *Module) PublicRooms(ctx context.Context, service jid.JID) ([]server.DiscoItem, error) {
	names, err := m.store.Rooms(ctx, service.String())
	if err != nil {
		return nil, fmt.Errorf("muc: list rooms: %w", err)
	}
	seen := make(map[string]bool)
	var items []server.DiscoItem
	add := func(rj jid.JID, cfg *roomConfig) {
		name := cfg.Name
		if name == "" {
			name = rj.Localpart()
		}
		items = append(items, server.DiscoItem{JID: rj, Name: name})
	}
	for _, r := range m.loadedRooms() {
		if r.jid.Domainpart() != service.Domainpart() {
			continue
		}
		seen[r.jid.String()] = true
		r.mu.Lock()
		if r.cfg.Public && !r.locked && !r.gone {
			add(r.jid, &r.cfg)
		}
		r.mu.Unlock()
	}
	for _, n := range names {
		if seen[n] {
			continue
		}
		rj, err := jid.Parse(n)
		if err != nil {
			continue
		}
		sr, err := m.store.Room(ctx, n)
		if err != nil {
			continue // destroyed meanwhile, or unreadable
		}
		if cfg, err := decodeConfig(sr.Config); err == nil && cfg.Public {
			add(rj, &cfg)
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].JID.String() < items[j].JID.String() })
	return items, nil
}

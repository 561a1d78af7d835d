package pep

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// Avatars (XEP-0398): an account's avatar is what its XEP-0084 nodes say,
// the newest item of urn:xmpp:avatar:metadata pointing (by its first
// <info/> without a url) at an item of urn:xmpp:avatar:data. vCard-based
// avatars (XEP-0153) are a view of it: modules/vcard shows it as the
// vCard's PHOTO, publishes a PHOTO it is given, and puts its hash in the
// account's presence.

// Nodes of XEP-0084 avatars, also their payloads' namespaces.
const (
	NodeAvatarData     = "urn:xmpp:avatar:data"
	NodeAvatarMetadata = "urn:xmpp:avatar:metadata"
)

// Avatars reads and sets an account's XEP-0084 avatar for modules/vcard
// (vcard.Deps.Avatar). Create it with Module.Avatars.
type Avatars struct{ m *Module }

// Avatars returns the module's avatar converter.
func (m *Module) Avatars() Avatars { return Avatars{m} }

// Avatar returns user's avatar, its MIME type and bytes, if requester
// may fetch it (the access models of both nodes admit requester); ok is
// false if there is none, or requester may not see it.
func (a Avatars) Avatar(ctx context.Context, user, requester jid.JID) (typ string, data []byte, ok bool, err error) {
	owner := user.Bare()
	for _, node := range []string{NodeAvatarMetadata, NodeAvatarData} {
		cfg, err := a.m.node(ctx, owner.String(), node)
		if errors.Is(err, errNoNode) {
			return "", nil, false, nil
		}
		if err != nil {
			return "", nil, false, err
		}
		if a.m.allowed(ctx, owner, requester, cfg) != nil {
			return "", nil, false, nil
		}
	}
	av, err := a.m.avatar(ctx, owner)
	if err != nil || av.data == nil {
		return "", nil, false, err
	}
	return av.typ, av.data, true, nil
}

// AvatarHash returns the SHA-1 of user's avatar's bytes in hex, as
// XEP-0153 has it in presence, or "" if user has none. It is kept in
// memory, so it is cheap enough for every presence.
func (a Avatars) AvatarHash(ctx context.Context, user jid.JID) (string, error) {
	return a.m.avatars.hash(ctx, user.Bare(), a.m.avatar)
}

// SetAvatar makes data, an image of MIME type typ, user's avatar: it
// publishes it to urn:xmpp:avatar:data (item ID its SHA-1 in hex), then
// the <info/> pointing at it to urn:xmpp:avatar:metadata, as XEP-0398
// §3.2 has it; nodes it creates get the default configuration (access
// model presence). typ is a hint: the type the bytes show wins (XEP-0153
// §5). Empty data disables the avatar (XEP-0084 §3.5: empty metadata,
// and the data item retracted). Subscribers are notified; the same avatar
// again changes nothing.
func (a Avatars) SetAvatar(ctx context.Context, user jid.JID, typ string, data []byte) error {
	m := a.m
	owner := user.Bare()
	m.convMu.Lock()
	defer m.convMu.Unlock()
	cur, err := m.avatar(ctx, owner)
	if err != nil {
		return err
	}
	noConfig := func(*nodeConfig) error { return nil }
	if len(data) == 0 {
		if cur.id == "" {
			return nil
		}
		meta := stanza.Resolve(stanza.Elem(xml.Name{Space: NodeAvatarMetadata, Local: "metadata"}, nil), "")
		if err := m.publishAs(ctx, owner, NodeAvatarMetadata, pepItem(newItemID(), meta), noConfig, false, false); err != nil {
			return err
		}
		if err := m.retractAs(ctx, owner, NodeAvatarData, cur.id, false); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		return nil
	}
	// XEP-0153 §5: the type of the image data wins over the one given.
	if sniffed := http.DetectContentType(data); typ == "" || strings.HasPrefix(sniffed, "image/") {
		typ = sniffed
	}
	sum := sha1.Sum(data)
	id := hex.EncodeToString(sum[:])
	if cur.data != nil && cur.hash == id && cur.id == id && cur.typ == typ {
		return nil
	}
	payload := stanza.Resolve(stanza.TextElem(xml.Name{Space: NodeAvatarData, Local: "data"}, base64.StdEncoding.EncodeToString(data)), "")
	if err := m.publishAs(ctx, owner, NodeAvatarData, pepItem(id, payload), noConfig, false, false); err != nil {
		return err
	}
	info := stanza.Elem(xml.Name{Space: NodeAvatarMetadata, Local: "info"}, []xml.Attr{
		stanza.Attr("bytes", strconv.Itoa(len(data))), stanza.Attr("id", id), stanza.Attr("type", typ)})
	meta := stanza.Resolve(stanza.Elem(xml.Name{Space: NodeAvatarMetadata, Local: "metadata"}, nil, info), "")
	return m.publishAs(ctx, owner, NodeAvatarMetadata, pepItem(id, meta), noConfig, false, false)
}

// pepItem serialises a payload for the store.
func pepItem(id string, payload []xml.Token) storage.PEPItem {
	var b bytes.Buffer
	stanza.WriteTokens(&b, payload, "")
	return storage.PEPItem{ID: id, Payload: b.Bytes(), Published: time.Now()}
}

// avatarState is an account's current avatar: the metadata's info (id
// and type, id "" without one) and, if the data node has that item, its
// bytes and their hash.
type avatarState struct {
	id, typ string
	data    []byte
	hash    string
}

// avatar reads owner's current avatar from the store.
func (m *Module) avatar(ctx context.Context, owner jid.JID) (avatarState, error) {
	u := owner.String()
	metas, err := m.store.PEPItems(ctx, u, NodeAvatarMetadata, nil, 1)
	if errors.Is(err, storage.ErrNotFound) || err == nil && len(metas) == 0 {
		return avatarState{}, nil
	}
	if err != nil {
		return avatarState{}, fmt.Errorf("pep: %w", err)
	}
	toks, err := stanza.ParseElement(metas[0].Payload)
	if err != nil {
		return avatarState{}, fmt.Errorf("pep: stored avatar metadata: %w", err)
	}
	var av avatarState
	for el := range stanza.Elements(toks) {
		if el.Name != (xml.Name{Space: NodeAvatarMetadata, Local: "metadata"}) {
			break
		}
		// XEP-0398 §3.1: the info that does not point at a URL.
		for info := range el.Children() {
			if info.Name.Local == "info" && info.Attr("url") == "" && info.Attr("id") != "" {
				av.id, av.typ = info.Attr("id"), info.Attr("type")
				break
			}
		}
	}
	if av.id == "" {
		return av, nil
	}
	datas, err := m.store.PEPItems(ctx, u, NodeAvatarData, []string{av.id}, 0)
	if errors.Is(err, storage.ErrNotFound) || err == nil && len(datas) == 0 {
		return av, nil
	}
	if err != nil {
		return av, fmt.Errorf("pep: %w", err)
	}
	toks, err = stanza.ParseElement(datas[0].Payload)
	if err != nil {
		return av, fmt.Errorf("pep: stored avatar data: %w", err)
	}
	for el := range stanza.Elements(toks) {
		if el.Name != (xml.Name{Space: NodeAvatarData, Local: "data"}) {
			break
		}
		b, err := base64.StdEncoding.DecodeString(strings.Map(dropSpace, el.Text()))
		if err != nil || len(b) == 0 {
			break
		}
		sum := sha1.Sum(b)
		av.data, av.hash = b, hex.EncodeToString(sum[:])
	}
	return av, nil
}

// dropSpace drops the white space base64 may be wrapped with.
func dropSpace(r rune) rune {
	switch r {
	case ' ', '\t', '\r', '\n':
		return -1
	}
	return r
}

// avatarCache keeps the hash of accounts' avatars for presence. An entry
// is dropped whenever either node of its account changes; a lookup that
// read the store while one changed does not keep what it read.
type avatarCache struct {
	mu     sync.Mutex
	gen    uint64
	hashes map[string]string
}

// hash returns owner's avatar hash, reading it with read on a miss.
func (c *avatarCache) hash(ctx context.Context, owner jid.JID, read func(context.Context, jid.JID) (avatarState, error)) (string, error) {
	u := owner.String()
	c.mu.Lock()
	h, ok := c.hashes[u]
	gen := c.gen
	c.mu.Unlock()
	if ok {
		return h, nil
	}
	av, err := read(ctx, owner)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.gen == gen {
		if c.hashes == nil {
			c.hashes = make(map[string]string)
		}
		c.hashes[u] = av.hash
	}
	c.mu.Unlock()
	return av.hash, nil
}

// forget drops user's entry.
func (c *avatarCache) forget(user string) {
	c.mu.Lock()
	delete(c.hashes, user)
	c.gen++
	c.mu.Unlock()
}

package pep

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// Bookmarks (XEP-0402's compatibility notes, XEP-0411): an account's chatroom bookmarks are
// the items of its node urn:xmpp:bookmarks:1, one per room, and nothing
// else. The older forms of XEP-0048, one <storage xmlns='storage:bookmarks'/>
// element with every room (in private XML storage, or as the one item
// 'current' of the PEP node storage:bookmarks), are views of that node:
// reading one builds it from the items, storing one publishes the rooms
// that changed and retracts those that are gone, with the notifications
// of each.

// Nodes of bookmarks.
const (
	// NodeBookmarks is the XEP-0402 node, also its payload's namespace.
	NodeBookmarks = "urn:xmpp:bookmarks:1"
	// NodeLegacyBookmarks is XEP-0048's node and namespace, served from
	// NodeBookmarks.
	NodeLegacyBookmarks = "storage:bookmarks"
)

// legacyItemID is the ID of the one item of NodeLegacyBookmarks.
const legacyItemID = "current"

var (
	nameLegacyStorage    = xml.Name{Space: NodeLegacyBookmarks, Local: "storage"}
	nameLegacyConference = xml.Name{Space: NodeLegacyBookmarks, Local: "conference"}
	nameConference       = xml.Name{Space: NodeBookmarks, Local: "conference"}
)

// bookmarksConfig is the configuration XEP-0402 asks for, enforced
// on every publish the conversion makes: nobody but the owner reads
// bookmarks (XEP-0411 §5).
func bookmarksConfig(c *nodeConfig) error {
	c.Access = AccessWhitelist
	c.MaxItems = 0 // max
	c.SendLast = SendNever
	c.Persist = true
	return nil
}

// Bookmarks reads and stores an account's bookmarks as XEP-0048's
// <storage xmlns='storage:bookmarks'/> element, kept in the XEP-0402 node.
// modules/private takes it for the bookmarks of private XML storage
// (private.Deps.Bookmarks). Create it with Module.Bookmarks.
type Bookmarks struct{ m *Module }

// Bookmarks returns the module's bookmarks converter.
func (m *Module) Bookmarks() Bookmarks { return Bookmarks{m} }

// LegacyBookmarks returns user's bookmarks as one
// <storage xmlns='storage:bookmarks'/> element (empty when there are
// none): a <conference/> with the room's jid, name and autojoin, nick and
// password for each item of the XEP-0402 node, oldest first, followed by
// the elements of its <extensions/>.
func (b Bookmarks) LegacyBookmarks(ctx context.Context, user jid.JID) ([]xml.Token, error) {
	its, err := b.m.Items(ctx, user, NodeBookmarks)
	if err != nil {
		return nil, err
	}
	var confs []xml.TokenReader
	for _, it := range its {
		if bm, ok := bookmarkFromItem(it.ID, it.Payload); ok {
			confs = append(confs, bm.legacy())
		}
	}
	return stanza.Resolve(stanza.Elem(nameLegacyStorage, nil, confs...), ""), nil
}

// SetLegacyBookmarks makes list, a <storage xmlns='storage:bookmarks'/>
// element, user's bookmarks: each <conference/> with a valid jid becomes
// the item of that room (published only if it changed, with the
// configuration XEP-0402 asks for), and the items of rooms it lacks are
// retracted; subscribers are notified of each, and the user's resources
// that ask for storage:bookmarks once of the whole. A conference's
// elements of other namespaces go to the item's <extensions/>; one without
// any keeps those the item had. <url/> bookmarks are dropped: XEP-0402
// has none.
func (b Bookmarks) SetLegacyBookmarks(ctx context.Context, user jid.JID, list stanza.Element) error {
	return b.m.storeLegacy(ctx, user.Bare(), list, true)
}

// MergeLegacyBookmarks is SetLegacyBookmarks without the retractions: the
// rooms of list are added or updated, the others kept. It moves
// bookmarks stored before the conversion into the node.
func (b Bookmarks) MergeLegacyBookmarks(ctx context.Context, user jid.JID, list stanza.Element) error {
	return b.m.storeLegacy(ctx, user.Bare(), list, false)
}

// storeLegacy converts list, a <storage xmlns='storage:bookmarks'/>, into
// items of owner's bookmarks node, retracting the others if replace is
// set.
func (m *Module) storeLegacy(ctx context.Context, owner jid.JID, list stanza.Element, replace bool) error {
	if list.Name != nameLegacyStorage {
		return badRequest("invalid-payload")
	}
	m.convMu.Lock()
	defer m.convMu.Unlock()
	current, err := m.Items(ctx, owner, NodeBookmarks)
	if err != nil {
		return err
	}
	have := make(map[string]bookmark, len(current))
	for _, it := range current {
		bm, _ := bookmarkFromItem(it.ID, it.Payload)
		have[it.ID] = bm
	}
	var want []bookmark
	index := make(map[string]int)
	for c := range list.Children() {
		if c.Name != nameLegacyConference {
			continue
		}
		bm, ok := bookmarkFromLegacy(c)
		if !ok {
			continue
		}
		if i, ok := index[bm.jid]; ok {
			want[i] = bm // the last of a room counts
			continue
		}
		index[bm.jid] = len(want)
		want = append(want, bm)
	}
	changed := false
	defer func() {
		if changed {
			m.legacyBookmarksChanged(ctx, owner)
		}
	}()
	for _, bm := range want {
		old, ok := have[bm.jid]
		if ok && bm.ext == nil {
			bm.ext = old.ext // XEP-0402: extensions are to be kept
		}
		if ok && old.equal(bm) {
			continue
		}
		var buf bytes.Buffer
		if err := stanza.WriteTokens(&buf, stanza.Resolve(bm.item(), ""), ""); err != nil {
			return err
		}
		it := storage.PEPItem{ID: bm.jid, Payload: buf.Bytes(), Published: time.Now()}
		if err := m.publishAs(ctx, owner, NodeBookmarks, it, bookmarksConfig, true, true); err != nil {
			return err
		}
		changed = true
	}
	if !replace {
		return nil
	}
	for _, it := range current {
		if _, ok := index[it.ID]; ok {
			continue
		}
		err := m.retractAs(ctx, owner, NodeBookmarks, it.ID, true)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		changed = true
	}
	return nil
}

// bookmark is one room's bookmark, in either form.
type bookmark struct {
	jid, name        string
	autojoin         bool
	nick, password   string
	hasNick, hasPass bool
	ext              []xml.Token // the extension elements, one after another
}

func (b bookmark) equal(o bookmark) bool {
	return b.jid == o.jid && b.name == o.name && b.autojoin == o.autojoin &&
		b.hasNick == o.hasNick && b.nick == o.nick && b.hasPass == o.hasPass && b.password == o.password &&
		bytes.Equal(serialised(b.ext), serialised(o.ext))
}

func serialised(toks []xml.Token) []byte {
	var buf bytes.Buffer
	stanza.WriteTokens(&buf, toks, "")
	return buf.Bytes()
}

// xsdBool reads an xs:boolean.
func xsdBool(v string) bool { return v == "true" || v == "1" }

// bookmarkFromItem reads the payload of a XEP-0402 item, ok false if it
// is no <conference/>.
func bookmarkFromItem(id string, payload []xml.Token) (bookmark, bool) {
	var el stanza.Element
	for el = range stanza.Elements(payload) {
		break
	}
	if el.Name != nameConference {
		return bookmark{jid: id}, false
	}
	b := bookmark{jid: id, name: el.Attr("name"), autojoin: xsdBool(el.Attr("autojoin"))}
	for c := range el.Children() {
		switch c.Name {
		case xml.Name{Space: NodeBookmarks, Local: "nick"}:
			b.nick, b.hasNick = c.Text(), true
		case xml.Name{Space: NodeBookmarks, Local: "password"}:
			b.password, b.hasPass = c.Text(), true
		case xml.Name{Space: NodeBookmarks, Local: "extensions"}:
			for e := range c.Children() {
				b.ext = append(b.ext, e.Tokens()...)
			}
		}
	}
	return b, true
}

// bookmarkFromLegacy reads a XEP-0048 <conference/>, ok false if its jid
// is missing or invalid. Its elements of other namespaces are extensions.
func bookmarkFromLegacy(el stanza.Element) (bookmark, bool) {
	j, err := jid.Parse(el.Attr("jid"))
	if err != nil || j.Domainpart() == "" {
		return bookmark{}, false
	}
	b := bookmark{jid: j.String(), name: el.Attr("name"), autojoin: xsdBool(el.Attr("autojoin"))}
	for c := range el.Children() {
		switch c.Name {
		case xml.Name{Space: NodeLegacyBookmarks, Local: "nick"}:
			b.nick, b.hasNick = c.Text(), true
		case xml.Name{Space: NodeLegacyBookmarks, Local: "password"}:
			b.password, b.hasPass = c.Text(), true
		default:
			if c.Name.Space != NodeLegacyBookmarks {
				b.ext = append(b.ext, c.Tokens()...)
			}
		}
	}
	return b, true
}

// item returns the bookmark as a XEP-0402 <conference/>.
func (b bookmark) item() xml.TokenReader {
	return b.element(nameConference, nil, true)
}

// legacy returns the bookmark as a XEP-0048 <conference/>.
func (b bookmark) legacy() xml.TokenReader {
	return b.element(nameLegacyConference, []xml.Attr{stanza.Attr("jid", b.jid)}, false)
}

func (b bookmark) element(name xml.Name, attrs []xml.Attr, wrapExt bool) xml.TokenReader {
	if b.name != "" {
		attrs = append(attrs, stanza.Attr("name", b.name))
	}
	if b.autojoin {
		attrs = append(attrs, stanza.Attr("autojoin", "true"))
	}
	var children []xml.TokenReader
	if b.hasNick {
		children = append(children, stanza.TextElem(xml.Name{Space: name.Space, Local: "nick"}, b.nick))
	}
	if b.hasPass {
		children = append(children, stanza.TextElem(xml.Name{Space: name.Space, Local: "password"}, b.password))
	}
	if len(b.ext) > 0 {
		ext := stanza.Tokens(b.ext...)
		if wrapExt {
			ext = stanza.Elem(xml.Name{Space: name.Space, Local: "extensions"}, nil, ext)
		}
		children = append(children, ext)
	}
	return stanza.Elem(name, attrs, children...)
}

// legacyBookmarks answers items requests and publishes to the XEP-0048
// node storage:bookmarks from and to the XEP-0402 node: only the owner
// may (the node is whitelisted), and it has one item, 'current'.
func (m *Module) legacyBookmarks(ctx context.Context, owner jid.JID, isOwner bool, req request, w server.ResponseWriter) error {
	if !isOwner {
		if req.op == opPublish {
			return failure(mstanza.Auth, mstanza.Forbidden, "")
		}
		return failure(mstanza.Cancel, mstanza.NotAllowed, "closed-node")
	}
	current := []xml.Attr{stanza.Attr("id", legacyItemID)}
	if req.op == opPublish {
		var el stanza.Element
		for el = range stanza.Elements(req.item.payload) {
			break
		}
		if el.Name != nameLegacyStorage {
			return badRequest("invalid-payload")
		}
		if err := m.Bookmarks().SetLegacyBookmarks(ctx, owner, el); err != nil {
			return err
		}
		return w.Result(stanza.Elem(namePubSub, nil, stanza.Elem(xml.Name{Space: nsPubSub, Local: "publish"}, nodeAttrs(req.node),
			stanza.Elem(xml.Name{Space: nsPubSub, Local: "item"}, current))))
	}
	if len(req.ids) > 0 && !slices.Contains(req.ids, legacyItemID) {
		return failure(mstanza.Cancel, mstanza.ItemNotFound, "")
	}
	toks, err := m.Bookmarks().LegacyBookmarks(ctx, owner)
	if err != nil {
		return err
	}
	return w.Result(stanza.Elem(namePubSub, nil, stanza.Elem(xml.Name{Space: nsPubSub, Local: "items"}, nodeAttrs(req.node),
		stanza.Elem(xml.Name{Space: nsPubSub, Local: "item"}, current, stanza.Tokens(toks...)))))
}

// legacyBookmarksChanged sends the owner's resources that ask for
// storage:bookmarks notifications the bookmarks as that node's item
// (XEP-0411 §3), after a change to the XEP-0402 node.
func (m *Module) legacyBookmarksChanged(ctx context.Context, owner jid.JID) {
	if m.caps == nil || m.host == nil {
		return
	}
	wanted := false
	for _, s := range m.host.Sessions(owner) {
		if s.Available() && m.wants(s.JID(), NodeLegacyBookmarks) {
			wanted = true
			break
		}
	}
	if !wanted {
		return
	}
	event, err := m.legacyEvent(ctx, owner)
	if err != nil {
		m.log.Warn("building storage:bookmarks failed", "err", err)
		return
	}
	m.sendTo(ctx, owner, owner, NodeLegacyBookmarks, event)
}

// legacyEvent is the event carrying owner's bookmarks as the item of
// storage:bookmarks.
func (m *Module) legacyEvent(ctx context.Context, owner jid.JID) ([]xml.Token, error) {
	toks, err := m.Bookmarks().LegacyBookmarks(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("pep: %w", err)
	}
	items := stanza.Elem(xml.Name{Space: nsEvent, Local: "items"}, nodeAttrs(NodeLegacyBookmarks),
		stanza.Elem(xml.Name{Space: nsEvent, Local: "item"}, []xml.Attr{stanza.Attr("id", legacyItemID)}, stanza.Tokens(toks...)))
	return stanza.Resolve(stanza.Elem(xml.Name{Space: nsEvent, Local: "event"}, nil, items), stanza.NSClient), nil
}

// Package roster keeps each user's contact list, the roster of RFC 6121
// §2: clients fetch it (optionally only what changed since a cached
// version, §2.6), add, change and remove items, and every resource that
// fetched it hears about each change through a roster push.
//
// Subscription states are stored with the items and shown to clients,
// but this package does not change them: the presence subscription
// handshake of RFC 6121 §3 builds on the typed API below (Item, Items,
// SetItem, RemoveItem).
package roster

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// Namespaces.
const (
	// NS is the roster namespace of RFC 6121 §2.
	NS = "jabber:iq:roster"
	// NSVer is the stream feature advertising roster versioning (RFC 6121
	// §2.6.1).
	NSVer = "urn:xmpp:features:rosterver"
)

// Default limits, used for zero Options fields.
const (
	DefaultMaxItems    = 1000
	DefaultMaxNameLen  = 1024
	DefaultMaxGroups   = 64
	DefaultMaxGroupLen = 1024
)

// Options configure the module. Zero fields take the defaults above;
// negative ones make New fail.
type Options struct {
	// MaxItems is the most items a roster may hold; a roster set adding
	// one more fails with resource-constraint.
	MaxItems int
	// MaxNameLen is the longest item name, in bytes (not-acceptable).
	MaxNameLen int
	// MaxGroups is the most groups an item may be in (not-acceptable).
	MaxGroups int
	// MaxGroupLen is the longest group name, in bytes (not-acceptable).
	MaxGroupLen int
}

// Deps are what the module builds on.
type Deps struct {
	// Store keeps the rosters (required).
	Store storage.Roster
}

// Module serves rosters. Create it with New.
type Module struct {
	opts  Options
	store storage.Roster
	host  server.Host
	log   *slog.Logger

	// interested holds the sessions that fetched the roster (RFC 6121
	// §2.1.6 "interested resources"); only they get pushes.
	mu         sync.Mutex
	interested server.SessionValue[bool] // set once a session fetched the roster

	// locks serialise changes to one user's roster, so that a roster set
	// keeps the subscription state another change just wrote, and the
	// item limit holds.
	seed  maphash.Seed
	locks [64]sync.Mutex

	pushes atomic.Uint64 // numbers push ids

	removed []Removal // see OnRemove; set before the server starts
}

// Removal is told of a roster item that is gone: removed by its user
// (RFC 6121 §2.5) or with the user's account. old is the item as it was,
// with its subscription state.
type Removal func(ctx context.Context, user, contact jid.JID, old storage.RosterItem)

// OnRemove has f told of every roster item removed, after it is gone
// from the store and before the user's client gets the result: the
// presence module cancels the subscriptions both ways there (RFC 6121
// §2.5.2), so that the roster module alone decides what a roster set
// does. f runs without the roster's locks held, so it may change other
// rosters. Call OnRemove before the server is built.
func (m *Module) OnRemove(f Removal) {
	m.removed = append(m.removed, f)
}

// New returns the roster module keeping rosters in deps.Store. It fails
// without a store or for a negative limit.
func New(opts Options, deps Deps) (*Module, error) {
	if deps.Store == nil {
		return nil, errors.New("roster: no store")
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxItems", &opts.MaxItems, DefaultMaxItems},
		{"MaxNameLen", &opts.MaxNameLen, DefaultMaxNameLen},
		{"MaxGroups", &opts.MaxGroups, DefaultMaxGroups},
		{"MaxGroupLen", &opts.MaxGroupLen, DefaultMaxGroupLen},
	} {
		if *f.v < 0 {
			return nil, fmt.Errorf("roster: %s is %d, want 0 (default) or more", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return &Module{
		opts:       opts,
		store:      deps.Store,
		log:        slog.New(slog.DiscardHandler),
		interested: server.NewSessionValue[bool](),
		seed:       maphash.MakeSeed(),
	}, nil
}

// Name returns "roster".
func (*Module) Name() string { return "roster" }

// Init keeps the host, for sessions and the logger.
func (m *Module) Init(ctx context.Context, h server.Host) error {
	m.host = h
	m.log = h.Logger()
	return nil
}

// IQRoutes serves roster gets and sets a user sends to their own account.
func (m *Module) IQRoutes() []server.IQRoute {
	q := xml.Name{Space: NS, Local: "query"}
	return []server.IQRoute{
		{Type: mstanza.GetIQ, Payload: q, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.get)},
		{Type: mstanza.SetIQ, Payload: q, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.set)},
	}
}

// StreamFeatures advertises roster versioning.
func (*Module) StreamFeatures() []server.StreamFeature {
	return []server.StreamFeature{{Element: func() xml.TokenReader {
		return stanza.Elem(xml.Name{Space: NSVer, Local: "ver"}, nil)
	}}}
}

// UserData names what the module keeps per user.
func (*Module) UserData() []string { return []string{"roster items"} }

// DeleteUser deletes the user's roster, its version and its history,
// after telling the OnRemove listeners of every item.
func (m *Module) DeleteUser(ctx context.Context, user jid.JID) error {
	if len(m.removed) > 0 {
		// Every item goes: the OnRemove listeners cancel the
		// subscriptions at every contact, so that nobody keeps one to an
		// account that no longer exists.
		items, _, err := m.store.Roster(ctx, user.Bare().String())
		if err != nil {
			return fmt.Errorf("roster: %w", err)
		}
		for _, it := range items {
			contact, err := jid.Parse(it.JID)
			if err != nil {
				continue
			}
			for _, f := range m.removed {
				f(ctx, user.Bare(), contact, it)
			}
		}
	}
	if err := m.store.DeleteRoster(ctx, user.Bare().String()); err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	return nil
}

// ExportUser writes the user's roster as XEP-0227 puts it inside <user/>:
// <query xmlns='jabber:iq:roster'> with one <item/> per contact, with
// subscription and ask as a client would see them, then a
// <presence xmlns='jabber:client' type='subscribe'/> from each contact
// whose subscription request awaits the user's answer (XEP-0227's
// incoming subscription requests).
func (m *Module) ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error {
	all, _, err := m.store.Roster(ctx, user.Bare().String())
	if err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	if items := visible(all); len(items) > 0 {
		if _, err := xmlstream.Copy(w, queryElem(nil, items...)); err != nil {
			return err
		}
	}
	for _, it := range all {
		if !it.PendingIn {
			continue
		}
		p := stanza.Elem(xml.Name{Space: stanza.NSClient, Local: "presence"}, []xml.Attr{
			stanza.Attr("from", it.JID), stanza.Attr("to", user.Bare().String()), stanza.Attr("type", "subscribe")})
		if _, err := xmlstream.Copy(w, p); err != nil {
			return err
		}
	}
	return nil
}

// Item returns user's roster item for contact (both taken as bare JIDs),
// and whether there is one. It is for modules that act on subscriptions:
// presence, blocking, PEP.
func (m *Module) Item(ctx context.Context, user, contact jid.JID) (storage.RosterItem, bool, error) {
	it, err := m.store.RosterItem(ctx, user.Bare().String(), contact.Bare().String())
	if errors.Is(err, storage.ErrNotFound) {
		return storage.RosterItem{}, false, nil
	}
	if err != nil {
		return storage.RosterItem{}, false, fmt.Errorf("roster: %w", err)
	}
	return it, true, nil
}

// Items returns user's whole roster, sorted by JID, including the states
// clients do not see (PendingIn).
func (m *Module) Items(ctx context.Context, user jid.JID) ([]storage.RosterItem, error) {
	items, _, err := m.store.Roster(ctx, user.Bare().String())
	if err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	return items, nil
}

// Update changes user's item for contact atomically with respect to
// every other change the module makes to user's roster, and pushes the
// result to user's interested resources. f gets the current item (the zero
// item with JID set if there is none, and exists false) and returns the
// item to store; it returns remove to delete the item instead, or
// ErrUnchanged to leave the roster as it is. It is for the presence
// subscription state machine (RFC 6121 §3 and Appendix A). Creating an
// item in a full roster fails with ErrFull. Items that are Hidden are not
// shown to clients.
func (m *Module) Update(ctx context.Context, user, contact jid.JID, f func(it storage.RosterItem, exists bool) (storage.RosterItem, bool, error)) error {
	u, c := user.Bare().String(), contact.Bare().String()
	unlock := m.lock(u)
	defer unlock()
	it, err := m.store.RosterItem(ctx, u, c)
	exists := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("roster: %w", err)
	}
	if !exists {
		it = storage.RosterItem{JID: c, Subscription: storage.SubNone}
	}
	wasHidden := !exists || Hidden(it)
	next, remove, err := f(it, exists)
	if errors.Is(err, ErrUnchanged) {
		return nil
	}
	if err != nil {
		return err
	}
	var ver string
	if remove {
		if !exists {
			return nil
		}
		ver, err = m.store.DeleteRosterItem(ctx, u, c)
		next = storage.RosterItem{JID: c, Subscription: storage.SubRemove}
	} else {
		next.JID = c
		if !exists {
			// Items others cause (pending subscription requests) count
			// towards the limit too, so nobody can grow a roster without
			// bound.
			items, _, err := m.store.Roster(ctx, u)
			if err != nil {
				return fmt.Errorf("roster: %w", err)
			}
			if len(items) >= m.opts.MaxItems {
				return ErrFull
			}
		}
		ver, err = m.store.SetRosterItem(ctx, u, next)
	}
	if err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	switch {
	case !remove && Hidden(next) && wasHidden:
		// Clients never saw it and still should not.
	case !remove && Hidden(next):
		m.push(ctx, user.Bare(), storage.RosterItem{JID: c, Subscription: storage.SubRemove}, ver)
	case remove && wasHidden:
	default:
		m.push(ctx, user.Bare(), next, ver)
	}
	return nil
}

// ErrFull is returned by Update when creating an item in a full roster.
var ErrFull = errors.New("roster: the roster is full")

// Hidden reports whether clients must not see it: an item that exists only
// because of the contact's pending subscription request (RFC 6121 §3.1.3:
// the server keeps the request, but the contact is not in the user's
// roster until the user adds it or answers). The presence module sets
// storage.RosterItem.Hidden; a roster set by the user clears it.
func Hidden(it storage.RosterItem) bool { return it.Hidden }

// visible drops hidden items.
func visible(items []storage.RosterItem) []storage.RosterItem {
	out := items[:0:0]
	for _, it := range items {
		if !Hidden(it) {
			out = append(out, it)
		}
	}
	return out
}

// ErrUnchanged, returned by the function given to Update, leaves the
// roster as it is.
var ErrUnchanged = errors.New("roster: unchanged")

// lock locks the stripe of user's roster and returns its unlock.
func (m *Module) lock(user string) func() {
	mu := &m.locks[maphash.String(m.seed, user)%uint64(len(m.locks))]
	mu.Lock()
	return mu.Unlock
}

// session returns the bound session with the full JID from, or nil.
func (m *Module) session(from jid.JID) *server.Session {
	if m.host == nil {
		return nil
	}
	for _, s := range m.host.Sessions(from.Bare()) {
		if s.JID().Equal(from) {
			return s
		}
	}
	return nil
}

// get answers a roster get (RFC 6121 §2.2) and marks the session
// interested. With a known ver (§2.6.3) the answer is an empty result
// followed by one push per change since; with the current ver just the
// empty result.
func (m *Module) get(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	query, _ := iq.ChildElement(xml.Name{Space: NS, Local: "query"})
	ver, versioned := query.LookupAttr("ver")
	user := iq.From.Bare()
	sess := m.session(iq.From)
	if sess != nil {
		// Interested before reading, so no change between the read and
		// now goes unpushed.
		m.interested.Set(sess, true)
	}
	// Under the user's lock, so that a concurrent change is pushed after
	// this answer and its catch-up pushes, never before them with a
	// catch-up push then undoing it.
	unlock := m.lock(user.String())
	defer unlock()
	if versioned && ver != "" && sess != nil {
		changes, _, ok, err := m.store.RosterChangesSince(ctx, user.String(), ver)
		if err != nil {
			return fmt.Errorf("roster: %w", err)
		}
		if ok {
			if err := w.Result(nil); err != nil {
				return err
			}
			for _, c := range changes {
				it := c.Item
				if Hidden(it) {
					it = storage.RosterItem{JID: it.JID, Subscription: storage.SubRemove}
				}
				m.host.SendTo(ctx, sess, m.pushStanza(sess.JID(), it, c.Ver))
			}
			return nil
		}
	}
	items, cur, err := m.store.Roster(ctx, user.String())
	if err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	var attrs []xml.Attr
	if versioned {
		attrs = []xml.Attr{stanza.Attr("ver", cur)}
	}
	return w.Result(queryElem(attrs, visible(items)...))
}

// remove removes user's item for contact (RFC 6121 §2.5): the item goes,
// the OnRemove listeners cancel the subscriptions, the client gets the
// result and the interested resources a push.
func (m *Module) remove(ctx context.Context, w server.ResponseWriter, user, contact jid.JID) error {
	u, c := user.String(), contact.String()
	unlock := m.lock(u)
	old, err := m.store.RosterItem(ctx, u, c)
	var ver string
	if err == nil {
		ver, err = m.store.DeleteRosterItem(ctx, u, c)
	}
	unlock()
	if errors.Is(err, storage.ErrNotFound) {
		return w.Error(stanzaError(mstanza.ItemNotFound, ""))
	}
	if err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	for _, f := range m.removed {
		f(ctx, user, contact, old)
	}
	if err := w.Result(nil); err != nil {
		return err
	}
	m.push(ctx, user, storage.RosterItem{JID: c, Subscription: storage.SubRemove}, ver)
	return nil
}

// set handles a roster set (RFC 6121 §2.3 to §2.5).
func (m *Module) set(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	user := iq.From.Bare()
	req, cond, text := m.parseSet(iq.Stanza)
	if cond == "" && req.jid.Equal(user) {
		cond, text = mstanza.NotAllowed, "your own JID is not a roster item"
	}
	if cond != "" {
		return w.Error(stanzaError(cond, text))
	}
	u, c := user.String(), req.jid.String()
	if req.remove {
		return m.remove(ctx, w, user, req.jid)
	}
	unlock := m.lock(u)
	defer unlock()

	it, err := m.store.RosterItem(ctx, u, c)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		items, _, err := m.store.Roster(ctx, u)
		if err != nil {
			return fmt.Errorf("roster: %w", err)
		}
		if len(items) >= m.opts.MaxItems {
			return w.Error(stanzaError(mstanza.ResourceConstraint, "the roster is full: at most "+strconv.Itoa(m.opts.MaxItems)+" items"))
		}
		it = storage.RosterItem{JID: c, Subscription: storage.SubNone}
	case err != nil:
		return fmt.Errorf("roster: %w", err)
	}
	// A client sets only the name and groups; subscription, ask and
	// approved are the server's (§2.1.2, §2.1.5).
	it.Name, it.Groups = req.name, req.groups
	it.Hidden = false // the user added it
	ver, err := m.store.SetRosterItem(ctx, u, it)
	if err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	if err := w.Result(nil); err != nil {
		return err
	}
	m.push(ctx, user, it, ver)
	return nil
}

// setRequest is a parsed roster set.
type setRequest struct {
	jid    jid.JID
	name   string
	groups []string
	remove bool
}

// parseSet reads the one item of a roster set, or returns the error
// condition (and text) to answer with.
func (m *Module) parseSet(st *stanza.Stanza) (setRequest, mstanza.Condition, string) {
	query, ok := st.ChildElement(xml.Name{Space: NS, Local: "query"})
	if !ok {
		return setRequest{}, mstanza.BadRequest, ""
	}
	var (
		req      setRequest
		items    int
		jidAttr  string
		hasJID   bool
		seen     = map[string]bool{}
		tooLong  bool
		emptyGrp bool
		dupGrp   bool
	)
	for item := range query.Children() {
		if item.Name.Local != "item" || item.Name.Space != NS {
			continue
		}
		items++
		if items > 1 {
			continue
		}
		jidAttr, hasJID = item.LookupAttr("jid")
		req.name = item.Attr("name")
		req.remove = item.Attr("subscription") == string(storage.SubRemove)
		for group := range item.Children() {
			if group.Name.Local != "group" || group.Name.Space != NS {
				continue
			}
			switch g := group.Text(); {
			case g == "":
				emptyGrp = true
			case len(g) > m.opts.MaxGroupLen:
				tooLong = true
			case seen[g]:
				dupGrp = true
			default:
				seen[g] = true
				req.groups = append(req.groups, g)
			}
		}
	}
	switch {
	case items != 1:
		return req, mstanza.BadRequest, "a roster set has exactly one item"
	case !hasJID:
		return req, mstanza.BadRequest, "the item has no jid"
	}
	j, err := jid.Parse(jidAttr)
	if err != nil {
		return req, mstanza.JIDMalformed, ""
	}
	if j.Resourcepart() != "" {
		return req, mstanza.BadRequest, "roster items are bare JIDs"
	}
	req.jid = j
	if req.remove {
		return req, "", ""
	}
	switch {
	case dupGrp:
		return req, mstanza.BadRequest, "duplicate group"
	case emptyGrp:
		return req, mstanza.NotAcceptable, "empty group name"
	case tooLong:
		return req, mstanza.NotAcceptable, "group name longer than " + strconv.Itoa(m.opts.MaxGroupLen) + " bytes"
	case len(req.groups) > m.opts.MaxGroups:
		return req, mstanza.NotAcceptable, "more than " + strconv.Itoa(m.opts.MaxGroups) + " groups"
	case len(req.name) > m.opts.MaxNameLen:
		return req, mstanza.NotAcceptable, "name longer than " + strconv.Itoa(m.opts.MaxNameLen) + " bytes"
	}
	return req, "", ""
}

// push sends a roster push of it at version ver to each of user's
// interested resources, a fresh stanza each.
func (m *Module) push(ctx context.Context, user jid.JID, it storage.RosterItem, ver string) {
	if m.host == nil {
		return
	}
	for _, s := range m.host.Sessions(user) {
		if _, ok := m.interested.Get(s); ok {
			m.host.SendTo(ctx, s, m.pushStanza(s.JID(), it, ver))
		}
	}
}

// pushStanza builds a roster push to the full JID to (RFC 6121 §2.1.6),
// from the user's bare JID.
func (m *Module) pushStanza(to jid.JID, it storage.RosterItem, ver string) *stanza.Stanza {
	st := &stanza.Stanza{
		Kind: stanza.IQKind, Type: stanza.Set, From: to.Bare(), To: to,
		ID: "roster-push-" + strconv.FormatUint(m.pushes.Add(1), 10),
	}
	var attrs []xml.Attr
	if ver != "" {
		attrs = []xml.Attr{stanza.Attr("ver", ver)}
	}
	st.AppendChild(queryElem(attrs, it))
	return st
}

// queryElem returns <query xmlns='jabber:iq:roster'/> with attrs and one
// <item/> per item, built as one token slice (a roster of 1,000 items is
// some 5,000 tokens; the server copies them once more into the reply).
func queryElem(attrs []xml.Attr, items ...storage.RosterItem) xml.TokenReader {
	q := xml.Name{Space: NS, Local: "query"}
	n := 2
	for _, it := range items {
		n += 2 + 3*len(it.Groups)
	}
	toks := make([]xml.Token, 0, n)
	toks = append(toks, xml.StartElement{Name: q, Attr: attrs})
	for _, it := range items {
		toks = appendItem(toks, it)
	}
	toks = append(toks, xml.EndElement{Name: q})
	return stanza.Tokens(toks...)
}

// appendItem appends an <item/> as clients see it: PendingIn is not
// shown.
func appendItem(toks []xml.Token, it storage.RosterItem) []xml.Token {
	sub := it.Subscription
	if sub == "" {
		sub = storage.SubNone
	}
	attrs := make([]xml.Attr, 0, 5)
	attrs = append(attrs, stanza.Attr("jid", it.JID))
	if it.Name != "" {
		attrs = append(attrs, stanza.Attr("name", it.Name))
	}
	attrs = append(attrs, stanza.Attr("subscription", string(sub)))
	if it.Ask {
		attrs = append(attrs, stanza.Attr("ask", "subscribe"))
	}
	if it.Approved {
		attrs = append(attrs, stanza.Attr("approved", "true"))
	}
	name, group := xml.Name{Space: NS, Local: "item"}, xml.Name{Space: NS, Local: "group"}
	toks = append(toks, xml.StartElement{Name: name, Attr: attrs})
	for _, g := range it.Groups {
		toks = append(toks, xml.StartElement{Name: group}, xml.CharData(g), xml.EndElement{Name: group})
	}
	return append(toks, xml.EndElement{Name: name})
}

func stanzaError(cond mstanza.Condition, text string) mstanza.Error {
	typ := mstanza.Modify
	switch cond {
	case mstanza.NotAllowed, mstanza.ItemNotFound:
		typ = mstanza.Cancel
	case mstanza.ResourceConstraint:
		typ = mstanza.Wait
	}
	return stanza.NewError(typ, cond, text)
}

var (
	_ server.Module                = (*Module)(nil)
	_ server.Initializer           = (*Module)(nil)
	_ server.IQProvider            = (*Module)(nil)
	_ server.StreamFeatureProvider = (*Module)(nil)
	_ server.UserDataDeclarer      = (*Module)(nil)
	_ server.UserDataOwner         = (*Module)(nil)
)

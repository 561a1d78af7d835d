// Package blocking implements XEP-0191 Blocking Command: a user keeps a
// list of addresses (accounts, full JIDs or whole domains) whose stanzas
// never reach them and to which they send nothing.
//
// The list is stored per user under one key of a key-value store and
// cached in memory, so the check on every stanza costs a map lookup.
package blocking

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// Namespaces of XEP-0191.
const (
	NS       = "urn:xmpp:blocking"
	NSErrors = "urn:xmpp:blocking:errors"
)

// storeKey is the key of the blocklist in the user's key-value data.
const storeKey = "blocklist"

// Store is what the module needs of a key-value store; storage.KV
// implementations satisfy it.
type Store interface {
	Get(ctx context.Context, user, key string) ([]byte, error)
	Put(ctx context.Context, user, key string, value []byte) error
	Delete(ctx context.Context, user, key string) error
}

// Options configure the module.
type Options struct {
	// MaxItems bounds a blocklist (default 1,000).
	MaxItems int
}

// Deps are what the module builds on.
type Deps struct {
	// Store keeps the blocklists (required); storage.KV implementations,
	// such as storage/memory's and storage/bbolt's, satisfy Store.
	Store Store
}

// Module implements XEP-0191. Create it with New.
type Module struct {
	store Store
	max   int
	host  server.Host

	mu         sync.Mutex                // serialises changes of one list at a time
	cache      sync.Map                  // bare JID → *list
	interested server.SessionValue[bool] // set once a session asked for the list
}

// list is one user's blocklist: a set of normalised JID strings.
type list struct {
	items map[string]struct{}
}

// New returns the blocking module keeping lists in deps.Store. It fails
// without a store.
func New(opts Options, deps Deps) (*Module, error) {
	if deps.Store == nil {
		return nil, errors.New("blocking: no store")
	}
	if opts.MaxItems <= 0 {
		opts.MaxItems = 1000
	}
	return &Module{store: deps.Store, max: opts.MaxItems, interested: server.NewSessionValue[bool]()}, nil
}

// Name returns "blocking".
func (*Module) Name() string { return "blocking" }

// Init keeps the host, for pushes and presence.
func (m *Module) Init(ctx context.Context, h server.Host) error {
	m.host = h
	return nil
}

// Features advertises urn:xmpp:blocking on the server and on accounts.
func (*Module) Features(t server.Target) []string {
	if t == server.TargetHost || t == server.TargetBare {
		return []string{NS}
	}
	return nil
}

// UserData names what the module keeps.
func (*Module) UserData() []string { return []string{"blocklist"} }

// IQRoutes serves the blocklist to its owner.
func (m *Module) IQRoutes() []server.IQRoute {
	return []server.IQRoute{
		{Type: mstanza.GetIQ, Payload: xml.Name{Space: NS, Local: "blocklist"}, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.get)},
		{Type: mstanza.SetIQ, Payload: xml.Name{Space: NS, Local: "block"}, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.set)},
		{Type: mstanza.SetIQ, Payload: xml.Name{Space: NS, Local: "unblock"}, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.set)},
	}
}

// load returns the user's list, from the cache or the store.
func (m *Module) load(ctx context.Context, user string) (*list, error) {
	if l, ok := m.cache.Load(user); ok {
		return l.(*list), nil
	}
	b, err := m.store.Get(ctx, user, storeKey)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("blocking: loading a list: %w", err)
	}
	l := &list{items: make(map[string]struct{})}
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" {
			l.items[line] = struct{}{}
		}
	}
	actual, _ := m.cache.LoadOrStore(user, l)
	return actual.(*list), nil
}

func (l *list) sorted() []string {
	out := make([]string, 0, len(l.items))
	for j := range l.items {
		out = append(out, j)
	}
	sort.Strings(out)
	return out
}

// blocks reports whether the list blocks the address j: by full JID, bare
// JID, domain, or domain/resource (XEP-0191 §3.5, the matching rules of
// XEP-0016 §2.1).
func (l *list) blocks(j jid.JID) bool {
	if len(l.items) == 0 {
		return false
	}
	for _, candidate := range []string{j.String(), j.Bare().String(), j.Domainpart(), j.Domainpart() + "/" + j.Resourcepart()} {
		if _, ok := l.items[candidate]; ok {
			return true
		}
	}
	return false
}

func (m *Module) get(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	user := iq.From.Bare().String()
	l, err := m.load(ctx, user)
	if err != nil {
		return err
	}
	m.mu.Lock()
	items := l.sorted()
	m.mu.Unlock()
	for _, s := range m.host.Sessions(iq.From.Bare()) {
		if s.JID().Equal(iq.From) {
			m.interested.Set(s, true)
		}
	}
	return w.Result(itemsElem("blocklist", items))
}

func itemsElem(local string, items []string) xml.TokenReader {
	var children []xml.TokenReader
	for _, j := range items {
		children = append(children, stanza.Elem(xml.Name{Space: NS, Local: "item"}, []xml.Attr{stanza.Attr("jid", j)}))
	}
	return stanza.Elem(xml.Name{Space: NS, Local: local}, nil, children...)
}

// set handles block and unblock.
func (m *Module) set(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	payload, _ := iq.PayloadElement()
	block := payload.Name.Local == "block"
	var items []string
	for item := range payload.Children() {
		if item.Name.Local != "item" {
			continue
		}
		raw := item.Attr("jid")
		j, err := jid.Parse(raw)
		if err != nil || raw == "" {
			return w.Error(mstanza.Error{Type: mstanza.Modify, Condition: mstanza.JIDMalformed})
		}
		items = append(items, j.String())
	}
	if block && len(items) == 0 {
		// XEP-0191 §3.3: a block without items is an error.
		return w.Error(mstanza.Error{Type: mstanza.Modify, Condition: mstanza.BadRequest})
	}
	user := iq.From.Bare()
	l, err := m.load(ctx, user.String())
	if err != nil {
		return err
	}
	m.mu.Lock()
	next := make(map[string]struct{}, len(l.items)+len(items))
	for j := range l.items {
		next[j] = struct{}{}
	}
	switch {
	case block:
		for _, j := range items {
			next[j] = struct{}{}
		}
	case len(items) == 0: // unblock everything
		next = map[string]struct{}{}
	default:
		for _, j := range items {
			delete(next, j)
		}
	}
	if len(next) > m.max {
		m.mu.Unlock()
		return w.Error(stanza.NewError(mstanza.Wait, mstanza.ResourceConstraint, fmt.Sprintf("a blocklist holds at most %d items", m.max)))
	}
	nl := &list{items: next}
	var err2 error
	if len(next) == 0 {
		err2 = m.store.Delete(ctx, user.String(), storeKey)
	} else {
		err2 = m.store.Put(ctx, user.String(), storeKey, []byte(strings.Join(nl.sorted(), "\n")))
	}
	if err2 == nil {
		m.cache.Store(user.String(), nl)
	}
	m.mu.Unlock()
	if err2 != nil {
		return fmt.Errorf("blocking: saving a list: %w", err2)
	}
	if err := w.Result(nil); err != nil {
		return err
	}
	m.push(ctx, user, payload.Name.Local, items)
	if block {
		m.withdrawPresence(ctx, user, items)
	}
	return nil
}

// push tells every resource that asked for the list about the change
// (XEP-0191 §3.3, §3.4).
func (m *Module) push(ctx context.Context, user jid.JID, local string, items []string) {
	for _, s := range m.host.Sessions(user) {
		if _, ok := m.interested.Get(s); !ok {
			continue
		}
		p := &stanza.Stanza{Kind: stanza.IQKind, ID: "push-" + randomID(), Type: stanza.Set, To: s.JID()}
		p.AppendChild(itemsElem(local, items))
		m.host.SendTo(ctx, s, p) // a session that is closing needs no push
	}
}

// withdrawPresence sends unavailable presence from the user's available
// resources to newly blocked addresses (XEP-0191 §3.3).
func (m *Module) withdrawPresence(ctx context.Context, user jid.JID, items []string) {
	for _, item := range items {
		to, err := jid.Parse(item)
		if err != nil {
			continue
		}
		for _, s := range m.host.Sessions(user) {
			if s.Available() {
				m.host.Router().Route(ctx, &stanza.Stanza{Kind: stanza.Presence, Type: "unavailable", From: s.JID(), To: to})
			}
		}
	}
}

// Blocks reports whether user blocks the address addr. It fails closed: if
// the list cannot be read, it reports true, so no presence leaks.
func (m *Module) Blocks(ctx context.Context, user, addr jid.JID) bool {
	l, err := m.load(ctx, user.Bare().String())
	if err != nil {
		return true
	}
	return l.blocks(addr) // lists are never changed, only replaced

}

// FilterPriority is the place of the blocking filter among the modules'
// filters: high, so that nothing else sees a stanza blocking stops.
const FilterPriority = 1000

// Filters puts the blocklists on every stanza's path, whatever its origin
// (a client, a module's push or presence broadcast, offline delivery, a
// service, another server), on both sides (see package filter).
func (m *Module) Filters() []server.ModuleFilter {
	return []server.ModuleFilter{{Priority: FilterPriority, Filter: filter.Func(m.filter)}}
}

// filter stops stanzas between a user and the addresses they block. On
// the sender's side, stanzas to a blocked address are refused with
// not-acceptable and <blocked/> (XEP-0191 §3.6); on the recipient's side,
// stanzas from an address the recipient blocks get service-unavailable
// (messages and iq requests) or vanish (presence, iq results; XEP-0191
// §3.5). Errors pass, so that answers to refused stanzas arrive, and so
// does the unavailable presence the server sends a contact the user has
// just blocked.
func (m *Module) filter(ctx context.Context, p filter.Packet) (*stanza.Stanza, error) {
	st := p.Stanza
	if st.IsError() || p.Account.Localpart() == "" {
		return st, nil
	}
	var other jid.JID
	if p.Phase == filter.Send {
		other = st.To
	} else {
		other = st.From
	}
	if other.String() == "" || other.Bare().Equal(p.Account) {
		return st, nil
	}
	l, err := m.load(ctx, p.Account.String())
	if err != nil {
		return nil, err // fail closed
	}
	if !l.blocks(other) {
		return st, nil
	}
	switch {
	case p.Phase == filter.Send && p.Origin == filter.Module && st.Kind == stanza.Presence && st.Type == "unavailable":
		// The server withdrawing the user's presence from a contact
		// just blocked (XEP-0191 §3.3).
		return st, nil
	case st.Kind == stanza.Presence || st.Type == stanza.Result:
		return nil, filter.ErrDrop
	case p.Phase == filter.Send:
		return nil, stanza.Failure{
			Err: mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.NotAcceptable},
			App: xml.Name{Space: NSErrors, Local: "blocked"},
		}
	default:
		return nil, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable}
	}
}

// DeleteUser removes the user's blocklist.
func (m *Module) DeleteUser(ctx context.Context, user jid.JID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cache.Delete(user.Bare().String())
	if err := m.store.Delete(ctx, user.Bare().String(), storeKey); err != nil {
		return fmt.Errorf("blocking: %w", err)
	}
	return nil
}

// ExportUser writes the blocklist as XEP-0227 expects it.
func (m *Module) ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error {
	l, err := m.load(ctx, user.Bare().String())
	if err != nil {
		return err
	}
	m.mu.Lock()
	items := l.sorted()
	m.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	_, err = xmlstream.Copy(w, itemsElem("blocklist", items))
	return err
}

var (
	_ server.Module           = (*Module)(nil)
	_ server.Initializer      = (*Module)(nil)
	_ server.IQProvider       = (*Module)(nil)
	_ server.FeatureProvider  = (*Module)(nil)
	_ server.FilterProvider   = (*Module)(nil)
	_ server.UserDataOwner    = (*Module)(nil)
	_ server.UserDataDeclarer = (*Module)(nil)
)

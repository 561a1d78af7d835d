// Package strangers lets a user refuse messages and subscription requests
// from accounts not in their roster, the usual defence against spam bots
// on small servers. It is off for every user until they switch it on with
// the ad-hoc command "Refuse messages from strangers".
//
// The module is a filter on the recipient's side of every stanza's path
// (see package filter). For a local account that opted in, a message of
// type chat or normal from a stranger is refused with service-unavailable
// when it carries content (a body, a subject, an encrypted payload, a file
// link, an invitation, a call, a reaction or a retraction) and dropped
// silently when it carries none (chat states, receipts); a headline is
// dropped silently, as RFC 6121 has a server do with one it cannot
// deliver; a presence subscription request from a stranger is dropped
// silently, so the stranger never learns whether the account exists or
// whether the user saw it. The error is the one blocking gives, and
// Prosody's mod_block_strangers: a stranger cannot tell refusal from
// blocking, though it can tell either from an account that is merely
// offline (whose messages are stored). Everything else passes: errors, groupchat
// messages, iq, other presence, and every stanza from a contact.
//
// A stranger is an account whose bare JID has no item in the recipient's
// roster, or only a hidden one (the pending-in item of a request made
// before the user opted in and not answered yet). The user's own account, server and
// service domains (addresses without a localpart) and messages to one of
// the user's full JIDs (only someone the user shared presence with, such
// as a contact or a room the user joined, knows a resource) are never
// strangers' stanzas.
//
// The setting is kept per user under one key of a key-value store and
// cached in a bounded LRU, so the check on a stanza to a user who did not
// opt in costs a map lookup; only opted-in users' stanzas read the roster.
package strangers

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
)

// Node is the ad-hoc command node of the command Commands returns.
const Node = "urn:kiez:strangers"

// storeKey is the key of the setting in the user's key-value data; its
// value is "1" while the user refuses strangers, and the key is absent
// otherwise.
const storeKey = "strangers"

// FilterPriority is the place of the filter among the modules' filters:
// just below blocking's (blocking.FilterPriority, 1000), so that a stanza
// blocking stops is answered as blocking answers it, and above the
// modules that store or deliver what passes.
const FilterPriority = 900

// content are the children that make a message worth a bounce: what a
// person would read or act upon.
const content = stanza.Body | stanza.Subject | stanza.Encrypted | stanza.OOB |
	stanza.Invitation | stanza.Call | stanza.Reaction | stanza.Retraction

// Store is what the module needs of a key-value store; storage.KV
// implementations satisfy it.
type Store interface {
	Get(ctx context.Context, user, key string) ([]byte, error)
	Put(ctx context.Context, user, key string, value []byte) error
	Delete(ctx context.Context, user, key string) error
}

// Roster is what the module needs of the roster; *roster.Module
// satisfies it.
type Roster interface {
	Item(ctx context.Context, user, contact jid.JID) (storage.RosterItem, bool, error)
}

// Options configure the module.
type Options struct {
	// CacheSize bounds how many users' settings are kept in memory
	// (default 10,000).
	CacheSize int
}

// Deps are what the module builds on; both are required.
type Deps struct {
	// Store keeps the settings; storage.KV implementations satisfy it.
	Store Store
	// Roster tells contacts from strangers.
	Roster Roster
}

// Module refuses strangers' stanzas to the users who ask for it. Create
// it with New.
type Module struct {
	store  Store
	roster Roster
	log    *slog.Logger

	setMu sync.Mutex // serialises changes of settings

	mu    sync.Mutex // guards the cache
	max   int
	order *list.List               // of *entry, most recently used first
	items map[string]*list.Element // bare JID → element of order
	gen   uint64                   // counts changes, so a load racing one is not cached
}

type entry struct {
	user string
	on   bool
}

// New returns the module keeping settings in deps.Store. It fails without
// a store or a roster.
func New(opts Options, deps Deps) (*Module, error) {
	if deps.Store == nil {
		return nil, errors.New("strangers: no store")
	}
	if deps.Roster == nil {
		return nil, errors.New("strangers: no roster")
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	return &Module{
		store: deps.Store, roster: deps.Roster, log: slog.New(slog.DiscardHandler),
		max: opts.CacheSize, order: list.New(), items: make(map[string]*list.Element),
	}, nil
}

// Name returns "strangers".
func (*Module) Name() string { return "strangers" }

// Init keeps the host's logger.
func (m *Module) Init(_ context.Context, h server.Host) error {
	m.log = h.Logger()
	return nil
}

// UserData names what the module keeps.
func (*Module) UserData() []string { return []string{"strangers setting"} }

// cached returns user's setting from the cache, and whether it was there,
// with the change count to give put.
func (m *Module) cached(user string) (on, ok bool, gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.items[user]; ok {
		m.order.MoveToFront(e)
		return e.Value.(*entry).on, true, m.gen
	}
	return false, false, m.gen
}

// put caches user's setting, read when the change count was gen, unless a
// change came in between.
func (m *Module) put(user string, on bool, gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen != m.gen {
		return
	}
	if e, ok := m.items[user]; ok {
		e.Value.(*entry).on = on
		m.order.MoveToFront(e)
		return
	}
	m.items[user] = m.order.PushFront(&entry{user: user, on: on})
	for m.order.Len() > m.max {
		last := m.order.Back()
		m.order.Remove(last)
		delete(m.items, last.Value.(*entry).user)
	}
}

// changed records a change of user's setting: the cache forgets it, and
// loads that started before it are not cached.
func (m *Module) changed(user string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	if e, ok := m.items[user]; ok {
		m.order.Remove(e)
		delete(m.items, user)
	}
}

// Refuses reports whether user (a bare JID string) refuses strangers.
func (m *Module) refuses(ctx context.Context, user string) (bool, error) {
	on, ok, gen := m.cached(user)
	if ok {
		return on, nil
	}
	b, err := m.store.Get(ctx, user, storeKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		on = false
	case err != nil:
		return false, fmt.Errorf("strangers: loading a setting: %w", err)
	default:
		on = string(b) == "1"
	}
	m.put(user, on, gen)
	return on, nil
}

// Refuses reports whether user refuses messages from strangers.
func (m *Module) Refuses(ctx context.Context, user jid.JID) (bool, error) {
	return m.refuses(ctx, user.Bare().String())
}

// Set switches user's setting on or off.
func (m *Module) Set(ctx context.Context, user jid.JID, on bool) error {
	bare := user.Bare().String()
	m.setMu.Lock()
	defer m.setMu.Unlock()
	var err error
	if on {
		err = m.store.Put(ctx, bare, storeKey, []byte("1"))
	} else {
		err = m.store.Delete(ctx, bare, storeKey)
	}
	m.changed(bare)
	if err != nil {
		return fmt.Errorf("strangers: saving a setting: %w", err)
	}
	return nil
}

// Filters puts the check on the recipient's side of every stanza's path.
func (m *Module) Filters() []server.ModuleFilter {
	return []server.ModuleFilter{{Priority: FilterPriority, Filter: filter.Only(filter.Receive, filter.Func(m.filter))}}
}

// errRefused is the answer to a stranger's message.
var errRefused = mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable}

// filter refuses strangers' messages and subscription requests to users
// who opted in (see the package documentation). It fails open: when the
// setting or the roster cannot be read, the stanza passes and the failure
// is logged, so that a broken store loses no contact's message.
func (m *Module) filter(ctx context.Context, p filter.Packet) (*stanza.Stanza, error) {
	st := p.Stanza
	if p.Phase != filter.Receive || p.Account.Localpart() == "" {
		return st, nil
	}
	switch st.Kind {
	case stanza.Message:
		switch st.Type {
		case "", "normal", "chat", "headline":
		default: // error, groupchat
			return st, nil
		}
		if st.To.Resourcepart() != "" {
			return st, nil
		}
	case stanza.Presence:
		if st.Type != "subscribe" {
			return st, nil
		}
	default:
		return st, nil
	}
	from := st.From
	if from.Localpart() == "" || from.Localpart() == p.Account.Localpart() && from.Domainpart() == p.Account.Domainpart() {
		return st, nil
	}
	on, err := m.refuses(ctx, p.Account.String())
	if err != nil {
		m.log.Warn("setting unreadable; stanza passes", "err", err)
		return st, nil
	}
	if !on {
		return st, nil
	}
	it, ok, err := m.roster.Item(ctx, p.Account, from.Bare())
	if err != nil {
		m.log.Warn("roster unreadable; stanza passes", "err", err)
		return st, nil
	}
	if ok && !it.Hidden {
		return st, nil
	}
	if st.Kind == stanza.Presence || st.Type == "headline" || stanza.Classify(st)&content == 0 {
		return nil, filter.ErrDrop
	}
	return nil, errRefused
}

// Commands returns the ad-hoc command "Refuse messages from strangers"
// (node Node), for modules/adhoc: it shows a form with one boolean field
// "refuse" holding the current setting; submitting it stores the new one.
func (m *Module) Commands() []adhoc.Command {
	return []adhoc.Command{{Node: Node, Name: "Refuse messages from strangers", Handler: m.command}}
}

func settingForm(on bool) *form.Form {
	v, now := "0", "You now receive messages from everyone."
	if on {
		v, now = "1", "You now refuse messages from accounts not in your contact list."
	}
	return &form.Form{
		Type:  form.TypeForm,
		Title: "Refuse messages from strangers",
		Instructions: now + "\nWhen you refuse them, messages from accounts not in your contact list are answered with an error " +
			"and their subscription requests are dropped; your contacts reach you as before.",
		Fields: []form.Field{{Var: "refuse", Type: form.Boolean, Label: "Refuse messages from strangers", Values: []string{v}}},
	}
}

func (m *Module) command(ctx context.Context, user jid.JID, _ adhoc.Request) (adhoc.Response, error) {
	on, err := m.Refuses(ctx, user)
	if err != nil {
		return adhoc.Response{}, err
	}
	return adhoc.Response{Status: adhoc.Executing, Form: settingForm(on), Actions: []adhoc.Action{adhoc.Complete}, Next: m.apply}, nil
}

func (m *Module) apply(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
	refuse := func(text string) (adhoc.Response, error) {
		return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Type: "error", Text: text}}}, nil
	}
	if req.Form == nil || req.Form.Field("refuse") == nil {
		return refuse("No choice was made; nothing changed.")
	}
	on, err := req.Form.Field("refuse").Bool()
	if err != nil {
		return refuse("The answer is not a yes or no; nothing changed.")
	}
	if err := m.Set(ctx, user, on); err != nil {
		return adhoc.Response{}, err
	}
	text := "Messages from everyone reach you again."
	if on {
		text = "Messages from accounts not in your contact list are now refused."
	}
	return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Type: "info", Text: text}}}, nil
}

// DeleteUser removes the user's setting.
func (m *Module) DeleteUser(ctx context.Context, user jid.JID) error {
	return m.Set(ctx, user, false)
}

// ExportUser writes nothing: XEP-0227 has no element for the setting.
func (m *Module) ExportUser(context.Context, jid.JID, xmlstream.TokenWriter) error { return nil }

var (
	_ server.Module           = (*Module)(nil)
	_ server.Initializer      = (*Module)(nil)
	_ server.FilterProvider   = (*Module)(nil)
	_ server.UserDataOwner    = (*Module)(nil)
	_ server.UserDataDeclarer = (*Module)(nil)
)

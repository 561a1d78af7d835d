// Package push implements XEP-0357 push notifications: a client registers
// an app server (a JID and a node) with <enable/>, and when a message with
// content arrives for the account while none of its sessions is connected
// (each is hibernated by stream management, or there is none: the
// account is offline), the server publishes a notification to that node
// at the app server, which wakes the device.
//
// A subscription request (presence type subscribe) while no session is
// connected is pushed for too, with the summary's
// pending-subscription-count: the number of contacts that asked since a
// session of the account was last connected (bound or resumed). With
// Deps.Roster, a request the presence module answers by itself (the
// contact already has a subscription from the account, or was
// pre-approved) is not pushed for: the user never sees it.
//
// The notification keeps the privacy promise: by default it carries only
// the XEP-0357 summary's counts, never the sender nor the body,
// so that the app server and the platform's push service (Apple's,
// Google's) learn nothing but "something arrived". Options.IncludeSender
// and Options.IncludeBody add them.
//
// A session that is connected but inactive (XEP-0352) gets its messages
// as usual and is not pushed for. Pushes to one registration are
// rate-limited (Options.MinInterval) and one at a time; an app server
// that answers with an error other than a temporary one ("wait") loses
// its registration, as the XEP allows. Registrations are kept in a
// key-value store and deleted with the account.
package push

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
)

// Namespaces the module reads or writes.
const (
	NS             = "urn:xmpp:push:0"                                   // XEP-0357
	NSSummary      = "urn:xmpp:push:summary"                             // the notification's form type
	NSPubSub       = "http://jabber.org/protocol/pubsub"                 // XEP-0060
	NSPublishOpts  = "http://jabber.org/protocol/pubsub#publish-options" // XEP-0060 §7.1.5
	NSData         = "jabber:x:data"                                     // XEP-0004
	storeKey       = "push"
	maxFieldValues = 16
)

// Defaults and bounds of Options.
const (
	DefaultMaxRegistrations = 10
	MaxMaxRegistrations     = 100
	DefaultMinInterval      = 5 * time.Second
	DefaultTimeout          = 30 * time.Second
	maxBody                 = 256 // runes of a body included with IncludeBody
)

// Store is what the module needs of a key-value store; storage.KV
// implementations satisfy it.
type Store interface {
	Get(ctx context.Context, user, key string) ([]byte, error)
	Put(ctx context.Context, user, key string, value []byte) error
	Delete(ctx context.Context, user, key string) error
}

// Options configure the module. The zero value means the defaults: no
// sender, no body, at most 10 registrations per account, one push per
// registration every 5 seconds at most.
type Options struct {
	// IncludeSender adds the last message's sender (its bare JID) to
	// notifications. Off by default: the app server and the platform's
	// push service would learn who writes to whom.
	IncludeSender bool
	// IncludeBody adds the last message's body (its first 256
	// characters) to notifications. Off by default, for the same reason.
	IncludeBody bool
	// MaxRegistrations bounds one account's registrations (default 10, at
	// most 100); enabling one more replaces the oldest.
	MaxRegistrations int
	// MinInterval is the least time between two pushes to one
	// registration (default 5 seconds; negative for none). Messages that
	// arrive meanwhile are counted in the next notification.
	MinInterval time.Duration
	// Timeout bounds the wait for the app server's answer (default 30
	// seconds).
	Timeout time.Duration
}

// Deps are what the module builds on.
type Deps struct {
	// Store keeps the registrations (required); storage.KV
	// implementations satisfy it.
	Store Store
	// Roster, if set, is the roster store of the presence module: a
	// subscription request it answers by itself is not pushed for.
	Roster storage.Roster
}

// Registration is one app server registered by a client.
type Registration struct {
	JID  string `json:"jid"`
	Node string `json:"node"`
	// Options are the publish-options fields the client gave (such as
	// the app server's secret), sent back with each notification.
	Options []Field `json:"options,omitempty"`
}

// Field is a publish-options field.
type Field struct {
	Var    string   `json:"var"`
	Values []string `json:"values"`
}

// Module implements XEP-0357. Create it with New.
type Module struct {
	opts   Options
	store  Store
	roster storage.Roster
	host   server.Host
	log    *slog.Logger

	mu      sync.Mutex                 // guards the maps and serialises changes of registrations
	regs    map[string][]Registration  // bare JID → registrations, a cache of the store
	devices map[string]*device         // bare JID \x00 app JID \x00 node → push state
	counts  map[string]int             // bare JID → messages since a session was last connected
	subs    map[string]map[string]bool // bare JID → senders of subscription requests since then
}

// device is the push state of one registration.
type device struct {
	last     time.Time // when the last push was sent
	inflight bool      // a push awaits the app server's answer
}

// New returns the module keeping registrations in deps.Store. It fails
// without a store or for an option out of range.
func New(opts Options, deps Deps) (*Module, error) {
	if deps.Store == nil {
		return nil, errors.New("push: no store")
	}
	switch {
	case opts.MaxRegistrations == 0:
		opts.MaxRegistrations = DefaultMaxRegistrations
	case opts.MaxRegistrations < 0 || opts.MaxRegistrations > MaxMaxRegistrations:
		return nil, fmt.Errorf("push: max registrations %d out of range 1..%d", opts.MaxRegistrations, MaxMaxRegistrations)
	}
	switch {
	case opts.MinInterval == 0:
		opts.MinInterval = DefaultMinInterval
	case opts.MinInterval < 0:
		opts.MinInterval = 0
	}
	switch {
	case opts.Timeout == 0:
		opts.Timeout = DefaultTimeout
	case opts.Timeout < 0:
		return nil, fmt.Errorf("push: timeout %v must be positive", opts.Timeout)
	}
	return &Module{
		opts:    opts,
		store:   deps.Store,
		roster:  deps.Roster,
		log:     slog.New(slog.DiscardHandler),
		regs:    make(map[string][]Registration),
		devices: make(map[string]*device),
		counts:  make(map[string]int),
		subs:    make(map[string]map[string]bool),
	}, nil
}

// Name returns "push".
func (*Module) Name() string { return "push" }

// Init keeps the host.
func (m *Module) Init(ctx context.Context, h server.Host) error {
	m.host = h
	m.log = h.Logger()
	return nil
}

// Features advertises urn:xmpp:push:0 on accounts (XEP-0357 §4).
func (*Module) Features(t server.Target) []string {
	if t == server.TargetBare || t == server.TargetHost {
		return []string{NS}
	}
	return nil
}

// UserData names what the module keeps.
func (*Module) UserData() []string { return []string{"push registrations"} }

// IQRoutes serve <enable/> and <disable/> to the account's own clients.
func (m *Module) IQRoutes() []server.IQRoute {
	return []server.IQRoute{
		{Type: mstanza.SetIQ, Payload: xml.Name{Space: NS, Local: "enable"}, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.enable)},
		{Type: mstanza.SetIQ, Payload: xml.Name{Space: NS, Local: "disable"}, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.disable)},
	}
}

// RoutePriority is the priority of the module's Receive route for
// messages: low, so that what blocks or refuses a message runs first.
const RoutePriority = -100

// SubscribeRoutePriority is the priority of the module's Receive route
// for subscription requests: above the presence module's (0), which
// takes them and ends their path.
const SubscribeRoutePriority = 10

// maxPendingSubs bounds the subscription requests counted per account.
const maxPendingSubs = 100

// StanzaRoutes watch messages and subscription requests to local
// accounts.
func (m *Module) StanzaRoutes() []server.StanzaRoute {
	return []server.StanzaRoute{{
		Side: filter.Receive, Kind: stanza.Message, Priority: RoutePriority,
		Handler: server.RouteHandlerFunc(func(ctx context.Context, d *server.Delivery) error {
			m.received(ctx, d.Account, d.Stanza)
			return nil
		}),
	}, {
		Side: filter.Receive, Kind: stanza.Presence, Types: []string{"subscribe"}, To: server.TargetBare, Priority: SubscribeRoutePriority,
		Handler: server.RouteHandlerFunc(func(ctx context.Context, d *server.Delivery) error {
			m.received(ctx, d.Account, d.Stanza)
			return nil
		}),
	}}
}

var badRequest = mstanza.Error{Type: mstanza.Modify, Condition: mstanza.BadRequest}

// enable registers an app server (XEP-0357 §5).
func (m *Module) enable(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	el, ok := iq.ChildElement(xml.Name{Space: NS, Local: "enable"})
	if !ok {
		return w.Error(badRequest)
	}
	app, err := jid.Parse(el.Attr("jid"))
	node := el.Attr("node")
	if err != nil || node == "" || len(node) > 1024 {
		return w.Error(badRequest)
	}
	reg := Registration{JID: app.String(), Node: node}
	if x, ok := el.Child(xml.Name{Space: NSData, Local: "x"}); ok {
		f, err := form.Parse(stanza.Tokens(x.Tokens()...))
		if err != nil || len(f.Fields) > 32 {
			return w.Error(badRequest)
		}
		for _, fd := range f.Fields {
			if fd.Var == "FORM_TYPE" || len(fd.Values) > maxFieldValues {
				continue
			}
			reg.Options = append(reg.Options, Field{Var: fd.Var, Values: fd.Values})
		}
	}
	user := iq.From.Bare().String()
	err = m.change(ctx, user, func(regs []Registration) []Registration {
		regs = remove(regs, reg.JID, reg.Node)
		regs = append(regs, reg)
		if len(regs) > m.opts.MaxRegistrations {
			regs = regs[len(regs)-m.opts.MaxRegistrations:]
		}
		return regs
	})
	if err != nil {
		return err
	}
	return w.Result(nil)
}

// disable removes one registration, or every one at the app server when
// no node is given (XEP-0357 §6).
func (m *Module) disable(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	el, ok := iq.ChildElement(xml.Name{Space: NS, Local: "disable"})
	if !ok {
		return w.Error(badRequest)
	}
	app, err := jid.Parse(el.Attr("jid"))
	if err != nil {
		return w.Error(badRequest)
	}
	node := el.Attr("node")
	err = m.change(ctx, iq.From.Bare().String(), func(regs []Registration) []Registration {
		return remove(regs, app.String(), node)
	})
	if err != nil {
		return err
	}
	return w.Result(nil)
}

// remove drops the registrations at app with node ("" for every node).
func remove(regs []Registration, app, node string) []Registration {
	out := regs[:0:0]
	for _, r := range regs {
		if r.JID == app && (node == "" || r.Node == node) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// change applies f to user's registrations and stores the result.
func (m *Module) change(ctx context.Context, user string, f func([]Registration) []Registration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	regs, err := m.loadLocked(ctx, user)
	if err != nil {
		return err
	}
	regs = f(regs)
	if len(regs) == 0 {
		err = m.store.Delete(ctx, user, storeKey)
	} else {
		var b []byte
		if b, err = json.Marshal(regs); err == nil {
			err = m.store.Put(ctx, user, storeKey, b)
		}
	}
	if err != nil {
		delete(m.regs, user)
		return fmt.Errorf("push: storing registrations: %w", err)
	}
	m.regs[user] = regs
	return nil
}

// loadLocked returns user's registrations from the cache or the store.
func (m *Module) loadLocked(ctx context.Context, user string) ([]Registration, error) {
	if regs, ok := m.regs[user]; ok {
		return regs, nil
	}
	b, err := m.store.Get(ctx, user, storeKey)
	var regs []Registration
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("push: loading registrations: %w", err)
	default:
		if err := json.Unmarshal(b, &regs); err != nil {
			return nil, fmt.Errorf("push: stored registrations: %w", err)
		}
	}
	m.regs[user] = regs
	return regs, nil
}

// cached returns user's registrations from the cache, or reads them
// from the store without holding the module's lock, so that a slow store
// holds up only the messages to this user.
func (m *Module) cached(ctx context.Context, user string) ([]Registration, error) {
	m.mu.Lock()
	regs, ok := m.regs[user]
	m.mu.Unlock()
	if ok {
		return regs, nil
	}
	b, err := m.store.Get(ctx, user, storeKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("push: loading registrations: %w", err)
	default:
		if err := json.Unmarshal(b, &regs); err != nil {
			return nil, fmt.Errorf("push: stored registrations: %w", err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.regs[user]; ok {
		return cur, nil // changed meanwhile: the change wins
	}
	m.regs[user] = regs
	return regs, nil
}

// Registrations returns the account's registrations.
func (m *Module) Registrations(ctx context.Context, user jid.JID) ([]Registration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	regs, err := m.loadLocked(ctx, user.Bare().String())
	return append([]Registration(nil), regs...), err
}

// worthPushing reports whether a message may be worth waking a device
// for: not an error, not a headline, with content other than chat
// states, receipts' neighbours (threads, hints, ids, delays).
func worthPushing(s *stanza.Stanza) bool {
	if s.Kind != stanza.Message || s.Type == "error" || s.Type == "headline" {
		return false
	}
	c := stanza.Classify(s)
	return c&^(stanza.ChatState|stanza.Thread|stanza.Hints|stanza.Delay|stanza.StanzaID) != 0
}

// received decides whether a message or a subscription request to
// account calls for pushes: when no session of the account is connected
// (every one is hibernated, or there is none). A groupchat message to a
// resource that has no session is not delivered (RFC 6121 §8.5.3.2.1)
// and not pushed for, as Prosody's mod_cloud_notify does; one to a
// hibernated session is, as any message with content.
func (m *Module) received(ctx context.Context, account jid.JID, s *stanza.Stanza) {
	sub := s.Kind == stanza.Presence && s.Type == "subscribe"
	if sub && s.From.Localpart() == "" && s.From.Domainpart() == "" || !sub && !worthPushing(s) {
		return
	}
	user := account.Bare().String()
	sessions := m.host.Sessions(account.Bare())
	for _, sess := range sessions {
		if !sess.Hibernated() {
			m.mu.Lock()
			// A client is connected: it sees them.
			delete(m.counts, user)
			delete(m.subs, user)
			m.mu.Unlock()
			return
		}
	}
	if s.Type == "groupchat" && s.To.Resourcepart() != "" && !slices.ContainsFunc(sessions, func(sess *server.Session) bool {
		return sess.JID().Equal(s.To)
	}) {
		return
	}
	regs, err := m.cached(ctx, user)
	if err != nil {
		m.log.Warn("push: no registrations", "err", err)
		return
	}
	if len(regs) == 0 || sub && m.answered(ctx, user, s.From.Bare().String()) {
		return
	}
	m.mu.Lock()
	if sub {
		from := s.From.Bare().String()
		if m.subs[user] == nil {
			m.subs[user] = make(map[string]bool)
		}
		if m.subs[user][from] || len(m.subs[user]) >= maxPendingSubs {
			m.mu.Unlock()
			return // counted already: no new push for a repeated request
		}
		m.subs[user][from] = true
	} else {
		m.counts[user]++
	}
	sum := summary{count: m.counts[user], subs: len(m.subs[user])}
	now := time.Now()
	var due []Registration
	for _, r := range regs {
		key := user + "\x00" + r.JID + "\x00" + r.Node
		d := m.devices[key]
		if d == nil {
			d = &device{}
			m.devices[key] = d
		}
		if d.inflight || (!d.last.IsZero() && now.Sub(d.last) < m.opts.MinInterval) {
			continue
		}
		d.inflight, d.last = true, now
		due = append(due, r)
	}
	m.mu.Unlock()
	if len(due) == 0 {
		return
	}
	// Who asks for a subscription is never told, whatever the options
	// say: last-message-sender and -body are about messages.
	if m.opts.IncludeSender && !sub {
		sum.sender = s.From.Bare().String()
	}
	if m.opts.IncludeBody && !sub {
		if body, ok := s.ChildText(xml.Name{Space: stanza.NSClient, Local: "body"}); ok {
			sum.body = truncate(body, maxBody)
		}
	}
	for _, r := range due {
		m.host.Go(func(ctx context.Context) { m.publish(ctx, account.Bare(), r, sum) })
	}
}

// answered says whether the presence module answers contact's
// subscription request to user by itself, from user's roster as it is
// before the request (our route runs first): the contact already has a
// subscription from user, or user pre-approved it (RFC 6121 §3.1.3). A
// roster that cannot be read counts as not answered.
func (m *Module) answered(ctx context.Context, user, contact string) bool {
	if m.roster == nil {
		return false
	}
	it, err := m.roster.RosterItem(ctx, user, contact)
	if err != nil {
		return false
	}
	return it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth || it.Approved
}

// SessionStarted forgets the messages and subscription requests counted
// for the account: a client of it is connected and sees them.
func (m *Module) SessionStarted(ctx context.Context, s *server.Session) { m.reset(s.JID()) }

// SessionResumed does as SessionStarted for a resumed session.
func (m *Module) SessionResumed(ctx context.Context, s *server.Session) { m.reset(s.JID()) }

func (m *Module) reset(account jid.JID) {
	user := account.Bare().String()
	m.mu.Lock()
	delete(m.counts, user)
	delete(m.subs, user)
	m.mu.Unlock()
}

// summary is what a notification tells: the messages and the
// subscription requests since a session of the account was last
// connected, and with the options the last message's sender and body.
type summary struct {
	count, subs  int
	sender, body string
}

func truncate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// publish sends one notification and handles the app server's answer.
func (m *Module) publish(ctx context.Context, user jid.JID, r Registration, sum summary) {
	key := user.String() + "\x00" + r.JID + "\x00" + r.Node
	defer func() {
		m.mu.Lock()
		if d := m.devices[key]; d != nil {
			d.inflight = false
		}
		m.mu.Unlock()
	}()
	app, err := jid.Parse(r.JID)
	if err != nil {
		return
	}
	iq := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set, From: user, To: app}
	iq.AppendChild(notification(r, sum))
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	ans, err := m.host.Request(ctx, iq)
	if err != nil {
		m.log.Debug("push: no answer from the app server", "err", err)
		return
	}
	if !ans.IsError() {
		return
	}
	if errorType(ans) == string(mstanza.Wait) {
		return
	}
	// XEP-0357 §8: the app server refuses the node; stop pushing to it.
	err = m.change(ctx, user.String(), func(regs []Registration) []Registration {
		return remove(regs, r.JID, r.Node)
	})
	if err != nil {
		m.log.Warn("push: removing a refused registration", "err", err)
		return
	}
	m.log.Debug("push: app server refused a notification; registration removed")
}

// errorType returns the type of an error stanza's <error/>.
func errorType(s *stanza.Stanza) string {
	for e := range s.Children() {
		if e.Start().Name.Local == "error" {
			return e.Attr("type")
		}
	}
	return ""
}

// notification builds the XEP-0060 publish of a XEP-0357 notification.
func notification(r Registration, sum summary) xml.TokenReader {
	f := form.Form{Type: form.TypeSubmit, Fields: []form.Field{
		{Var: "FORM_TYPE", Type: form.Hidden, Values: []string{NSSummary}},
		{Var: "message-count", Values: []string{strconv.Itoa(sum.count)}},
	}}
	if sum.subs > 0 {
		f.Fields = append(f.Fields, form.Field{Var: "pending-subscription-count", Values: []string{strconv.Itoa(sum.subs)}})
	}
	if sum.sender != "" {
		f.Fields = append(f.Fields, form.Field{Var: "last-message-sender", Values: []string{sum.sender}})
	}
	if sum.body != "" {
		f.Fields = append(f.Fields, form.Field{Var: "last-message-body", Values: []string{sum.body}})
	}
	children := []xml.TokenReader{
		stanza.Elem(xml.Name{Space: NSPubSub, Local: "publish"}, []xml.Attr{stanza.Attr("node", r.Node)},
			stanza.Elem(xml.Name{Space: NSPubSub, Local: "item"}, nil,
				stanza.Elem(xml.Name{Space: NS, Local: "notification"}, nil, f.TokenReader()))),
	}
	if len(r.Options) > 0 {
		opts := form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "FORM_TYPE", Type: form.Hidden, Values: []string{NSPublishOpts}}}}
		for _, o := range r.Options {
			opts.Fields = append(opts.Fields, form.Field{Var: o.Var, Values: o.Values})
		}
		children = append(children, stanza.Elem(xml.Name{Space: NSPubSub, Local: "publish-options"}, nil, opts.TokenReader()))
	}
	return stanza.Elem(xml.Name{Space: NSPubSub, Local: "pubsub"}, nil, children...)
}

// DeleteUser removes the account's registrations.
func (m *Module) DeleteUser(ctx context.Context, user jid.JID) error {
	u := user.Bare().String()
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.regs, u)
	delete(m.counts, u)
	delete(m.subs, u)
	for k := range m.devices {
		if len(k) > len(u) && k[:len(u)] == u && k[len(u)] == 0 {
			delete(m.devices, k)
		}
	}
	if err := m.store.Delete(ctx, u, storeKey); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	return nil
}

// ExportUser writes nothing: XEP-0227 has no element for push
// registrations, which belong to one installation of a client and are
// made again when it next connects.
func (*Module) ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error {
	return nil
}

var (
	_ server.Module           = (*Module)(nil)
	_ server.Initializer      = (*Module)(nil)
	_ server.SessionStarter   = (*Module)(nil)
	_ server.SessionResumer   = (*Module)(nil)
	_ server.IQProvider       = (*Module)(nil)
	_ server.FeatureProvider  = (*Module)(nil)
	_ server.RouteProvider    = (*Module)(nil)
	_ server.UserDataOwner    = (*Module)(nil)
	_ server.UserDataDeclarer = (*Module)(nil)
)

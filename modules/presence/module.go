// Package presence implements presence subscriptions and presence
// broadcast between local accounts (RFC 6121 §3 and §4): the subscription
// handshake updates both rosters through the roster module, a user's
// presence goes to the contacts subscribed to it, a new resource learns
// the presence of the contacts it is subscribed to, and directed presence
// is followed by unavailable presence when the resource goes away.
//
// Contacts on other servers (federation) are served the same way: their
// subscription stanzas and the user's presence are routed to their
// servers, the user's initial presence probes them (RFC 6121 §4.3), their
// servers' probes are answered, and a user who approves a remote
// contact's request sends the contact their current presence (§3.1.5).
package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// Presence types of RFC 6121.
const (
	typeAvailable    = ""
	typeUnavailable  = "unavailable"
	typeSubscribe    = "subscribe"
	typeSubscribed   = "subscribed"
	typeUnsubscribe  = "unsubscribe"
	typeUnsubscribed = "unsubscribed"
	typeProbe        = "probe"
)

// Options configure the module. Presence has no settings: the type is
// there so that New has the shape of every module's constructor.
type Options struct{}

// Deps are the modules presence builds on.
type Deps struct {
	// Roster keeps the subscription states (required); it must also be
	// in Config.Modules.
	Roster *roster.Module
	// Blocking, if set, stops presence between accounts when either
	// blocks the other (XEP-0191 §3.3); the blocking module implements
	// it. Without it (nil, not a nil *blocking.Module) presence builds
	// stanzas for every contact, and the blocking filter, if listed in
	// Config.Modules, still stops them.
	Blocking Blocker
}

// Blocker tells whether user blocks the address addr.
type Blocker interface {
	Blocks(ctx context.Context, user, addr jid.JID) bool
}

// Module handles presence subscriptions and broadcast. Create it with New.
type Module struct {
	roster  *roster.Module
	blocker Blocker
	host    server.Host
	log     *slog.Logger

	sessions server.SessionValue[*sessionState]
}

// sessionState is what the module remembers of one session.
type sessionState struct {
	mu        sync.Mutex
	available bool
	// presence is the session's current available presence, from its
	// full JID; nil while unavailable. The module keeps its own copy,
	// written before the broadcast, so that two resources coming online
	// at once never both miss the other (the core marks a session
	// available only after the Send routes ran).
	presence *stanza.Stanza
	// directed holds the addresses the session sent directed available
	// presence to (RFC 6121 §4.6), keyed by their string form.
	directed map[string]jid.JID
}

// New returns the presence module on deps.Roster, which tells it of
// removed items from then on. It fails without a roster module.
func New(opts Options, deps Deps) (*Module, error) {
	if deps.Roster == nil {
		return nil, errors.New("presence: no roster module")
	}
	m := &Module{roster: deps.Roster, blocker: deps.Blocking, log: slog.New(slog.DiscardHandler), sessions: server.NewSessionValue[*sessionState]()}
	// The roster module owns the items; when one goes (removed by its
	// user or with the account), both subscriptions are cancelled.
	deps.Roster.OnRemove(m.cancel)
	return m, nil
}

// blocked reports whether a or b blocks the other.
func (m *Module) blocked(ctx context.Context, a, b jid.JID) bool {
	return m.blocker != nil && (m.blocker.Blocks(ctx, a, b) || m.blocker.Blocks(ctx, b, a))
}

// Name returns "presence".
func (*Module) Name() string { return "presence" }

// Init keeps the host.
func (m *Module) Init(_ context.Context, h server.Host) error {
	m.host = h
	m.log = h.Logger()
	return nil
}

// SessionEnded sends unavailable presence to the addresses the session
// sent directed presence to and not yet unavailable, and forgets it. The
// broadcast of unavailable presence to contacts happened before, when the
// server passed the session's final unavailable presence through
// its Send route.
func (m *Module) SessionEnded(ctx context.Context, s *server.Session) {
	st, ok := m.sessions.Get(s)
	if !ok {
		return
	}
	m.sessions.Delete(s)
	st.mu.Lock()
	directed := st.directed
	st.directed = nil
	st.mu.Unlock()
	m.unavailableTo(ctx, s.JID(), directed)
}

// state returns the session's state, creating it.
func (m *Module) state(s *server.Session) *sessionState {
	if st, ok := m.sessions.Get(s); ok {
		return st
	}
	return m.sessions.GetOrSet(s, &sessionState{})
}

// StanzaRoutes takes the presence clients send.
func (m *Module) StanzaRoutes() []server.StanzaRoute {
	return []server.StanzaRoute{
		{Side: filter.Send, Kind: stanza.Presence, Handler: server.RouteHandlerFunc(
			func(ctx context.Context, d *server.Delivery) error { return m.sent(ctx, d.Session, d.Stanza) })},
		{Side: filter.Receive, Kind: stanza.Presence, To: server.TargetBare, Types: subscriptionTypes, Handler: server.RouteHandlerFunc(m.received)},
		{Side: filter.Receive, Kind: stanza.Presence, To: server.TargetBare, Types: []string{typeProbe}, Handler: server.RouteHandlerFunc(m.probed)},
	}
}

// probed answers a probe another server sends for a contact of one of
// its users (RFC 6121 §4.3.2): with the account's current presence if the
// prober is subscribed to it, else nothing.
func (m *Module) probed(ctx context.Context, d *server.Delivery) error {
	s := d.Stanza
	if m.host == nil || s.From.String() == "" || m.host.IsLocal(s.From.Domainpart()) {
		return server.ErrHandled
	}
	prober := s.From.Bare()
	it, ok, err := m.roster.Item(ctx, d.Account, prober)
	if err != nil || !ok || !hasFrom(it.Subscription) || m.blocked(ctx, d.Account, prober) {
		return server.ErrHandled
	}
	m.presencesOf(ctx, d.Account, func(p *stanza.Stanza) {
		p.To = prober
		m.route(ctx, p)
	})
	return server.ErrHandled
}

// subscriptionTypes are the presence types of RFC 6121 §3.
var subscriptionTypes = []string{typeSubscribe, typeSubscribed, typeUnsubscribe, typeUnsubscribed}

// received takes a subscription stanza to a local account once it has
// passed the account's filters (a refused stranger's request never
// reaches the roster), whoever sent it: a local account (through
// subscription), the presence module answering for one, or another
// server.
func (m *Module) received(ctx context.Context, d *server.Delivery) error {
	s := d.Stanza
	if m.host == nil || s.From.String() == "" {
		return server.ErrHandled
	}
	if !m.host.UserExists(ctx, d.Account) {
		return server.ErrHandled // RFC 6121 §3.1.3: silently ignored
	}
	in := s
	if !s.From.Equal(s.From.Bare()) || !s.To.Equal(d.Account) {
		in = s.Clone()
		in.From, in.To = s.From.Bare(), d.Account
	}
	m.inbound(ctx, in)
	return server.ErrHandled
}

// sent handles the presence a client sends: it routes subscription
// stanzas itself (ErrHandled) and lets the core go on with the rest after
// broadcasting it to subscribed contacts.
func (m *Module) sent(ctx context.Context, from *server.Session, s *stanza.Stanza) error {
	if m.host == nil || from == nil {
		return nil
	}
	switch s.Type {
	case typeSubscribe, typeSubscribed, typeUnsubscribe, typeUnsubscribed:
		if s.To.String() == "" || s.To.Localpart() == "" && s.To.Resourcepart() == "" && m.host.IsLocal(s.To.Domainpart()) {
			return server.ErrHandled // nothing to subscribe to
		}
		m.subscription(ctx, s)
		return server.ErrHandled
	case typeProbe:
		if s.To.String() != "" {
			m.probe(ctx, s.From, s.To.Bare())
		}
		return server.ErrHandled
	case typeAvailable, typeUnavailable:
		if s.To.String() == "" {
			m.broadcast(ctx, from, s)
		} else {
			m.directed(ctx, from, s)
		}
	}
	return nil
}

// subscription handles an outbound subscription stanza (RFC 6121 §3):
// the user's side first, then the contact's if the contact is local.
func (m *Module) subscription(ctx context.Context, s *stanza.Stanza) {
	user, contact := s.From.Bare(), s.To.Bare()
	if user.Equal(contact) {
		return
	}
	route, err := m.outbound(ctx, s.Type, user, contact)
	if err != nil {
		m.log.Warn("roster update failed", "err", err)
		return
	}
	if !route {
		return
	}
	out := s.Clone()
	out.From, out.To = user, contact // RFC 6121 §3.1.2: stamped with the bare JID
	// A local contact's side is done by received, once the stanza has
	// passed the contact's filters.
	m.route(ctx, out)
	if m.host.IsLocal(contact.Domainpart()) {
		return
	}
	// A remote contact's server cannot see the user's presence: send it
	// (RFC 6121 §3.1.5), or take it back.
	switch s.Type {
	case typeSubscribed:
		m.presencesOf(ctx, user, func(p *stanza.Stanza) {
			p.To = contact
			m.route(ctx, p)
		})
	case typeUnsubscribed:
		m.presencesOf(ctx, user, func(p *stanza.Stanza) {
			m.route(ctx, &stanza.Stanza{Kind: stanza.Presence, Type: typeUnavailable, From: p.From, To: contact})
		})
	}
}

// outbound applies a subscription stanza the user sends to the user's
// item for contact (RFC 6121 Appendix A.2), and reports whether the
// stanza goes on to the contact.
func (m *Module) outbound(ctx context.Context, typ string, user, contact jid.JID) (route bool, err error) {
	route = true
	err = m.roster.Update(ctx, user, contact, func(it storage.RosterItem, exists bool) (storage.RosterItem, bool, error) {
		wasHidden := it.Hidden
		it.Hidden = false // the user acts on the contact: it is theirs now
		switch typ {
		case typeSubscribe:
			if hasTo(it.Subscription) || it.Ask && exists {
				return it, false, roster.ErrUnchanged
			}
			it.Ask = true
		case typeSubscribed:
			switch {
			case it.PendingIn:
				it.Subscription = withFrom(it.Subscription)
				it.PendingIn = false
			case hasFrom(it.Subscription):
				route = false
				return it, false, roster.ErrUnchanged
			default:
				// Pre-approval (RFC 6121 §3.4): remembered, not sent.
				route = false
				if it.Approved && exists {
					return it, false, roster.ErrUnchanged
				}
				it.Approved = true
			}
		case typeUnsubscribe:
			if !exists || !hasTo(it.Subscription) && !it.Ask {
				return it, false, roster.ErrUnchanged
			}
			it.Subscription = withoutTo(it.Subscription)
			it.Ask = false
		case typeUnsubscribed:
			if !exists || !hasFrom(it.Subscription) && !it.PendingIn && !it.Approved {
				return it, false, roster.ErrUnchanged
			}
			it.Subscription = withoutFrom(it.Subscription)
			it.PendingIn, it.Approved = false, false
			if wasHidden {
				// A request denied from someone the user never added:
				// nothing is left to keep.
				return it, true, nil
			}
		}
		return it, false, nil
	})
	if err != nil {
		return false, fmt.Errorf("presence: %w", err)
	}
	return route, nil
}

// inbound processes a subscription stanza s from s.From (a bare JID) at
// the local account s.To (RFC 6121 §3 and Appendix A.3).
func (m *Module) inbound(ctx context.Context, s *stanza.Stanza) {
	contact, user := s.To, s.From // contact receives from user
	var (
		deliver bool
		answer  bool // answer subscribed on the contact's behalf
	)
	err := m.roster.Update(ctx, contact, user, func(it storage.RosterItem, exists bool) (storage.RosterItem, bool, error) {
		switch s.Type {
		case typeSubscribe:
			switch {
			case hasFrom(it.Subscription):
				answer = true
				return it, false, roster.ErrUnchanged
			case it.Approved:
				answer = true
				it.Subscription = withFrom(it.Subscription)
				it.Approved, it.PendingIn = false, false
			default:
				deliver = true
				if it.PendingIn {
					return it, false, roster.ErrUnchanged
				}
				it.PendingIn = true
				it.Hidden = !exists // kept for the request only
			}
		case typeSubscribed:
			if !it.Ask {
				return it, false, roster.ErrUnchanged
			}
			deliver = true
			it.Subscription = withTo(it.Subscription)
			it.Ask = false
		case typeUnsubscribe:
			if !hasFrom(it.Subscription) {
				if it.PendingIn {
					// A request withdrawn before it was answered.
					it.PendingIn = false
					if hidden(it) {
						return it, true, nil
					}
					return it, false, nil
				}
				return it, false, roster.ErrUnchanged
			}
			deliver = true
			it.Subscription = withoutFrom(it.Subscription)
		case typeUnsubscribed:
			if !hasTo(it.Subscription) && !it.Ask {
				return it, false, roster.ErrUnchanged
			}
			deliver = true
			it.Subscription = withoutTo(it.Subscription)
			it.Ask = false
		}
		return it, false, nil
	})
	if err != nil {
		m.log.Warn("roster update failed", "err", err)
		return
	}
	if answer {
		m.route(ctx, &stanza.Stanza{Kind: stanza.Presence, Type: typeSubscribed, From: contact, To: user})
		return
	}
	if !deliver {
		return
	}
	m.deliver(ctx, contact, s)
	switch s.Type {
	case typeSubscribed:
		// s.From approved s.To's request: s.To gets s.From's current
		// presence (RFC 6121 §3.1.5).
		m.presencesOf(ctx, user, func(p *stanza.Stanza) {
			p.To = contact
			m.route(ctx, p)
		})
	case typeUnsubscribed:
		// s.To may no longer see s.From's presence.
		m.presencesOf(ctx, user, func(p *stanza.Stanza) {
			m.route(ctx, &stanza.Stanza{Kind: stanza.Presence, Type: typeUnavailable, From: p.From, To: contact})
		})
	case typeUnsubscribe:
		// s.From no longer wants s.To's presence (RFC 6121 §3.3.3).
		m.presencesOf(ctx, contact, func(p *stanza.Stanza) {
			m.route(ctx, &stanza.Stanza{Kind: stanza.Presence, Type: typeUnavailable, From: p.From, To: user})
		})
	}
}

// presencesOf calls f with a copy of the current presence of each of
// user's available resources, from its full JID.
func (m *Module) presencesOf(_ context.Context, user jid.JID, f func(p *stanza.Stanza)) {
	for _, sess := range m.host.Sessions(user) {
		if p := m.current(sess); p != nil {
			f(p.Clone())
		}
	}
}

// current returns the session's current available presence (not to be
// changed), or nil if it is not available.
func (m *Module) current(sess *server.Session) *stanza.Stanza {
	st, ok := m.sessions.Get(sess)
	if !ok {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.presence
}

// deliver sends st (not to be changed afterwards) to each available
// resource of the account user.
func (m *Module) deliver(ctx context.Context, user jid.JID, st *stanza.Stanza) {
	for _, sess := range m.host.Sessions(user) {
		if m.current(sess) != nil {
			m.host.SendTo(ctx, sess, st)
		}
	}
}

// route routes s, logging a failure.
func (m *Module) route(ctx context.Context, s *stanza.Stanza) {
	if err := m.host.Router().Route(ctx, s); err != nil {
		m.log.Warn("route failed", "err", err)
	}
}

// broadcast sends presence without 'to' to the contacts subscribed to the
// user (RFC 6121 §4.2.2, §4.4.2, §4.5.2); on initial presence it also
// shows the session the presence of the contacts the user is subscribed
// to and the subscription requests awaiting an answer (§3.1.3, §4.2.2).
func (m *Module) broadcast(ctx context.Context, from *server.Session, s *stanza.Stanza) {
	st := m.state(from)
	st.mu.Lock()
	initial := s.Type == typeAvailable && !st.available
	wasAvailable := st.available
	st.available = s.Type == typeAvailable
	st.presence = nil
	if st.available {
		st.presence = s.Clone()
		st.presence.From = from.JID()
	}
	var directed map[string]jid.JID
	if s.Type == typeUnavailable {
		directed, st.directed = st.directed, nil
	}
	st.mu.Unlock()
	if s.Type == typeUnavailable && !wasAvailable && len(directed) == 0 {
		return
	}
	user := s.From.Bare()
	items, err := m.roster.Items(ctx, user)
	if err != nil {
		m.log.Warn("roster read failed", "err", err)
		return
	}
	sent := make(map[string]bool)
	for _, it := range items {
		c, err := jid.Parse(it.JID)
		if err != nil || m.blocked(ctx, user, c) {
			continue
		}
		if !m.host.IsLocal(c.Domainpart()) {
			// A remote contact: its server delivers the presence, and
			// answers the probe with the contact's.
			if hasFrom(it.Subscription) && (wasAvailable || s.Type == typeAvailable) {
				p := s.Clone()
				p.From, p.To = from.JID(), c
				m.route(ctx, p)
				sent[c.String()] = true
			}
			if initial && hasTo(it.Subscription) {
				m.route(ctx, &stanza.Stanza{Kind: stanza.Presence, Type: typeProbe, From: user, To: c})
			}
			if initial && it.PendingIn {
				m.host.SendTo(ctx, from, &stanza.Stanza{Kind: stanza.Presence, Type: typeSubscribe, From: c, To: user})
			}
			continue
		}
		if hasFrom(it.Subscription) && (wasAvailable || s.Type == typeAvailable) {
			p := s.Clone()
			p.From, p.To = from.JID(), c
			m.deliver(ctx, c, p)
			sent[c.String()] = true
		}
		if !initial {
			continue
		}
		if hasTo(it.Subscription) {
			m.presencesOf(ctx, c, func(p *stanza.Stanza) {
				p.To = from.JID()
				m.host.SendTo(ctx, from, p)
			})
		}
		if it.PendingIn {
			m.host.SendTo(ctx, from, &stanza.Stanza{Kind: stanza.Presence, Type: typeSubscribe, From: c, To: user})
		}
	}
	for k := range directed {
		if sent[directed[k].Bare().String()] {
			delete(directed, k)
		}
	}
	m.unavailableTo(ctx, from.JID(), directed)
}

// directed follows directed presence (RFC 6121 §4.6): available presence
// to an address that is not subscribed to the user is remembered, so that
// unavailable presence follows when the session goes away.
func (m *Module) directed(ctx context.Context, from *server.Session, s *stanza.Stanza) {
	to := s.To
	if to.Bare().Equal(s.From.Bare()) {
		return
	}
	st := m.state(from)
	if s.Type == typeUnavailable {
		st.mu.Lock()
		delete(st.directed, to.String())
		st.mu.Unlock()
		return
	}
	if it, ok, err := m.roster.Item(ctx, s.From, to.Bare()); err == nil && ok && hasFrom(it.Subscription) {
		return // the broadcast reaches it anyway
	}
	st.mu.Lock()
	if st.directed == nil {
		st.directed = make(map[string]jid.JID)
	}
	if len(st.directed) < maxDirected {
		st.directed[to.String()] = to
	}
	st.mu.Unlock()
}

// maxDirected bounds the addresses one session's directed presence is
// remembered for.
const maxDirected = 1000

// unavailableTo sends unavailable presence from the full JID from to each
// address in to.
func (m *Module) unavailableTo(ctx context.Context, from jid.JID, to map[string]jid.JID) {
	for _, j := range to {
		m.route(ctx, &stanza.Stanza{Kind: stanza.Presence, Type: typeUnavailable, From: from, To: j})
	}
}

// probe answers a client's presence probe (RFC 6121 §4.3) for a local
// contact the user is subscribed to with the contact's current presence.
func (m *Module) probe(ctx context.Context, from, contact jid.JID) {
	if !m.host.IsLocal(contact.Domainpart()) {
		return
	}
	it, ok, err := m.roster.Item(ctx, from, contact)
	if err != nil || !ok || !hasTo(it.Subscription) || m.blocked(ctx, from, contact) {
		return
	}
	m.presencesOf(ctx, contact, func(p *stanza.Stanza) {
		p.To = from
		m.route(ctx, p)
	})
}

// cancel ends both subscriptions between user and contact as the user's
// removed item it records them (RFC 6121 §2.5.2): the contact gets
// unsubscribed if it was subscribed to the user or asking, and
// unsubscribe if the user was subscribed to it or asking.
func (m *Module) cancel(ctx context.Context, user, contact jid.JID, it storage.RosterItem) {
	var send []string
	if hasFrom(it.Subscription) || it.PendingIn {
		send = append(send, typeUnsubscribed)
	}
	if hasTo(it.Subscription) || it.Ask {
		send = append(send, typeUnsubscribe)
	}
	for _, typ := range send {
		out := &stanza.Stanza{Kind: stanza.Presence, Type: typ, From: user, To: contact}
		switch {
		case !m.host.IsLocal(contact.Domainpart()):
			m.route(ctx, out)
		case contact.Localpart() != "" && m.host.UserExists(ctx, contact):
			m.inbound(ctx, out)
		}
	}
}

// hidden reports whether it exists only to remember state clients do not
// see.
func hidden(it storage.RosterItem) bool {
	return !hasTo(it.Subscription) && !hasFrom(it.Subscription) && !it.Ask && !it.Approved &&
		!it.PendingIn && it.Name == "" && len(it.Groups) == 0
}

func hasTo(s storage.Subscription) bool   { return s == storage.SubTo || s == storage.SubBoth }
func hasFrom(s storage.Subscription) bool { return s == storage.SubFrom || s == storage.SubBoth }

func withTo(s storage.Subscription) storage.Subscription {
	if hasFrom(s) {
		return storage.SubBoth
	}
	return storage.SubTo
}

func withFrom(s storage.Subscription) storage.Subscription {
	if hasTo(s) {
		return storage.SubBoth
	}
	return storage.SubFrom
}

func withoutTo(s storage.Subscription) storage.Subscription {
	if hasFrom(s) {
		return storage.SubFrom
	}
	return storage.SubNone
}

func withoutFrom(s storage.Subscription) storage.Subscription {
	if hasTo(s) {
		return storage.SubTo
	}
	return storage.SubNone
}

var (
	_ server.Module        = (*Module)(nil)
	_ server.Initializer   = (*Module)(nil)
	_ server.RouteProvider = (*Module)(nil)
	_ server.SessionEnder  = (*Module)(nil)
)

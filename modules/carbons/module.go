// Package carbons implements XEP-0280 Message Carbons: a client that
// enables carbons gets a copy of every instant message its account sends
// from its other resources (<sent/>) and of every instant message the
// account receives on its other resources (<received/>), so that all of a
// user's devices see both sides of each conversation.
//
// Carbons are enabled per session and forgotten when the session ends;
// nothing is stored.
package carbons

import (
	"context"
	"encoding/xml"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
)

// Namespaces the module reads or writes.
const (
	NS           = "urn:xmpp:carbons:2"                    // XEP-0280
	NSRules      = "urn:xmpp:carbons:rules:0"              // XEP-0280 §6 copying rules
	NSForward    = "urn:xmpp:forward:0"                    // XEP-0297
	NSHints      = "urn:xmpp:hints"                        // XEP-0334
	NSMUCUser    = "http://jabber.org/protocol/muc#user"   // XEP-0045
	NSChatStates = "http://jabber.org/protocol/chatstates" // XEP-0085
	NSReceipts   = "urn:xmpp:receipts"                     // XEP-0184
	NSMarkers    = "urn:xmpp:chat-markers:0"               // XEP-0333
)

// How long, and for how many messages, the module remembers eligible
// messages so that an error answering one is copied too (XEP-0280 §6).
const (
	trackTTL = 2 * time.Minute
	trackMax = 8192
)

// Options configure the module. Carbons has no settings: the type is
// there so that New has the shape of every module's constructor.
type Options struct{}

// Deps are what the module builds on. Carbons needs nothing (it keeps no
// data): the type is there so that New has the shape of every module's
// constructor.
type Deps struct{}

// Module implements XEP-0280. Create it with New.
type Module struct {
	host server.Host

	enabled server.SessionValue[bool] // set while the session has carbons enabled

	sent tracker // eligible messages, for copying errors that answer them
}

// New returns the carbons module. It never fails; the error is there for
// the shape every module's constructor shares.
func New(opts Options, deps Deps) (*Module, error) {
	return &Module{enabled: server.NewSessionValue[bool](), sent: tracker{m: make(map[string]time.Time)}}, nil
}

// Name returns "carbons".
func (*Module) Name() string { return "carbons" }

// Init keeps the host, for the sessions of an account.
func (m *Module) Init(ctx context.Context, h server.Host) error {
	m.host = h
	return nil
}

// Features advertises urn:xmpp:carbons:2 and urn:xmpp:carbons:rules:0 on
// the server (XEP-0280 §3: the client asks its own server).
func (*Module) Features(t server.Target) []string {
	if t == server.TargetHost {
		return []string{NS, NSRules}
	}
	return nil
}

// IQRoutes serves <enable/> and <disable/> on the user's own account.
func (m *Module) IQRoutes() []server.IQRoute {
	return []server.IQRoute{
		{Type: mstanza.SetIQ, Payload: xml.Name{Space: NS, Local: "enable"}, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.toggle)},
		{Type: mstanza.SetIQ, Payload: xml.Name{Space: NS, Local: "disable"}, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.toggle)},
	}
}

// toggle enables or disables carbons for the session that sent iq.
// Repeated requests are answered with a result (XEP-0280 §9.1).
func (m *Module) toggle(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	payload, _, _ := iq.Payload()
	var sess *server.Session
	for _, s := range m.host.Sessions(iq.From.Bare()) {
		if s.JID().Equal(iq.From) {
			sess = s
		}
	}
	if sess == nil {
		return w.Error(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.NotAllowed})
	}
	if payload.Name.Local == "enable" {
		m.enabled.Set(sess, true)
	} else {
		m.enabled.Delete(sess)
	}
	return w.Result(nil)
}

// InlineFeature is the namespace a client enables carbons with inside
// an XEP-0386 Bind 2 request.
func (*Module) InlineFeature() string { return NS }

// EnableInline enables carbons for a session a Bind 2 request starts.
func (m *Module) EnableInline(ctx context.Context, sess *server.Session) error {
	m.enabled.Set(sess, true)
	return nil
}

// Enabled reports whether sess has carbons enabled.
func (m *Module) Enabled(sess *server.Session) bool {
	_, ok := m.enabled.Get(sess)
	return ok
}

// RoutePriority is the place of the carbons routes among the modules'
// message routes: after the archive's (mam.RoutePriority), so that copies
// carry the stanza id it adds.
const RoutePriority = 100

// StanzaRoutes copies messages: sent ones on the sender's side, received
// ones on the recipient's.
func (m *Module) StanzaRoutes() []server.StanzaRoute {
	return []server.StanzaRoute{
		{Side: filter.Send, Kind: stanza.Message, Priority: RoutePriority, Handler: server.RouteHandlerFunc(
			func(ctx context.Context, d *server.Delivery) error { return m.copySent(ctx, d.Session, d.Stanza) })},
		{Side: filter.Receive, Kind: stanza.Message, Priority: RoutePriority, Handler: server.RouteHandlerFunc(
			func(ctx context.Context, d *server.Delivery) error {
				out, err := m.copyReceived(ctx, d.Account, d.Stanza)
				d.Stanza = out
				return err
			})},
	}
}

// copySent sends a <sent/> copy of an eligible message a client
// sends to each of the account's other carbons-enabled sessions (XEP-0280
// §8), whether or not the sending session enabled carbons. A message to
// the account itself is not copied to the sessions it is delivered to.
// The message is routed as usual.
func (m *Module) copySent(ctx context.Context, from *server.Session, s *stanza.Stanza) error {
	if s.Kind != stanza.Message {
		return nil
	}
	user := from.JID().Bare()
	sessions := m.host.Sessions(user)
	if !m.anyEnabled(sessions) {
		return nil // nobody to copy to, nothing to track
	}
	to := s.To
	if to.String() == "" {
		to = user
	}
	if s.IsError() {
		if !m.sent.seen("in", user, to, s.ID) {
			return nil
		}
	} else if eligible(s, false) {
		m.sent.add("out", user, to, s.ID)
	} else {
		return nil
	}
	var skip func(*server.Session) bool
	if to.Bare().Equal(user) {
		skip = recipients(sessions, to)
	}
	m.copyTo(ctx, sessions, "sent", user, s, func(sess *server.Session) bool {
		return sess == from || (skip != nil && skip(sess))
	})
	return nil
}

// copyReceived sends a <received/> copy of an eligible message to an
// account to each of its carbons-enabled sessions that does not get the
// message itself under RFC 6121 (XEP-0280 §7): for a message to a full
// JID, every other enabled session; for a message to the bare JID, every
// enabled session except those of the highest non-negative priority, which
// the router delivers it to (including sessions of negative priority and
// sessions not available: carbons are what they asked for). A <private/>
// element is removed from what the recipient gets (XEP-0280 §9).
func (m *Module) copyReceived(ctx context.Context, account jid.JID, s *stanza.Stanza) (*stanza.Stanza, error) {
	if s.Kind != stanza.Message {
		return s, nil
	}
	if s.From.Bare().Equal(account) {
		// The account's own message to itself: its <sent/> copies went
		// out already.
		return s, nil
	}
	copyIt := false
	sessions := m.host.Sessions(account)
	switch {
	case !m.anyEnabled(sessions):
		// Nobody to copy to, nothing to track.
	case s.IsError():
		copyIt = m.sent.seen("out", account, s.From, s.ID)
	default:
		if copyIt = eligible(s, true); copyIt {
			m.sent.add("in", account, s.From, s.ID)
		}
	}
	if copyIt {
		m.copyTo(ctx, sessions, "received", account, s, recipients(sessions, s.To))
	}
	if s.HasChild(xml.Name{Space: NS, Local: "private"}) {
		return withoutPrivate(s), nil
	}
	return s, nil
}

// anyEnabled reports whether one of sessions enabled carbons.
func (m *Module) anyEnabled(sessions []*server.Session) bool {
	for _, sess := range sessions {
		if _, ok := m.enabled.Get(sess); ok {
			return true
		}
	}
	return false
}

// copyTo sends a copy of s wrapped in <kind xmlns='urn:xmpp:carbons:2'>
// <forwarded xmlns='urn:xmpp:forward:0'> from the bare JID user to each
// enabled session of sessions that skip does not exclude.
func (m *Module) copyTo(ctx context.Context, sessions []*server.Session, kind string, user jid.JID, s *stanza.Stanza, skip func(*server.Session) bool) {
	var targets []*server.Session
	for _, sess := range sessions {
		if _, ok := m.enabled.Get(sess); ok && !skip(sess) {
			targets = append(targets, sess)
		}
	}
	if len(targets) == 0 {
		return
	}
	// One wrapper for all copies: the stanzas differ only in their 'to',
	// and nothing changes Inner once it is queued.
	outer := xml.StartElement{Name: xml.Name{Space: NS, Local: kind}}
	fwd := xml.StartElement{Name: xml.Name{Space: NSForward, Local: "forwarded"}}
	msg := s.StartElement()
	inner := make([]xml.Token, 0, len(s.Inner)+6)
	inner = append(inner, outer, fwd, xml.CopyToken(msg))
	for _, t := range s.Inner {
		inner = append(inner, xml.CopyToken(t))
	}
	inner = append(inner, msg.End(), fwd.End(), outer.End())
	for _, sess := range targets {
		m.host.SendTo(ctx, sess, &stanza.Stanza{Kind: stanza.Message, Type: s.Type, From: user, To: sess.JID(), Inner: inner})
	}
}

// recipients returns a test for the sessions that the router delivers a
// message addressed to 'to' (a JID of their account) to: the session of a
// full JID if it exists, else (chat and normal messages fall back to the
// bare JID, RFC 6121 §8.5.3.2.1) the available sessions of the highest
// non-negative priority (RFC 6121 §8.5.2.1.1).
func recipients(sessions []*server.Session, to jid.JID) func(*server.Session) bool {
	if to.Resourcepart() != "" {
		for _, sess := range sessions {
			if sess.JID().Equal(to) {
				return func(s *server.Session) bool { return s == sess }
			}
		}
	}
	// Carbons copy no headlines: every other type follows the chat rule.
	targets := server.BareTargets(nil, sessions, "chat")
	return func(s *server.Session) bool { return slices.Contains(targets, s) }
}

// eligible applies XEP-0280 §6: a message is copied if it has no
// <private/> (nor XEP-0334 <no-copy/>) and is of type chat, or of type
// normal with a body or an instant messaging payload (chat state, receipt,
// chat marker). Groupchat and headline messages, carbons themselves, and
// private messages from MUC occupants received on a full JID
// (inbound), are not; private messages sent to an occupant are. Errors are
// handled by the caller.
func eligible(s *stanza.Stanza, inbound bool) bool {
	c := stanza.Classify(s)
	if c&(stanza.CarbonsPrivate|stanza.NoCopy|stanza.CarbonsCopy) != 0 {
		return false
	}
	if inbound && s.To.Resourcepart() != "" && c&stanza.MUCUser != 0 {
		return false
	}
	switch s.Type {
	case "chat":
		return true
	case "", "normal":
		return c&(stanza.Body|imPayload) != 0
	}
	return false
}

// imPayload are the instant messaging payloads that make a normal message
// eligible without a body: chat states, receipts and chat markers.
const imPayload = stanza.ChatState | stanza.Receipt | stanza.Markable | stanza.Marker

// withoutPrivate returns a copy of s without its top-level
// <private xmlns='urn:xmpp:carbons:2'/> elements.
func withoutPrivate(s *stanza.Stanza) *stanza.Stanza {
	return s.WithoutChildren(func(el stanza.Element) bool {
		return el.Name.Space == NS && el.Name.Local == "private"
	})
}

// tracker remembers recently copied messages by direction, account, peer
// and id, so that an error answering one is copied as well. It holds at
// most trackMax entries for trackTTL each, in memory only.
type tracker struct {
	mu    sync.Mutex
	m     map[string]time.Time
	order []string // insertion order, for eviction
}

func trackKey(dir string, account, peer jid.JID, id string) string {
	return dir + "\x00" + account.Bare().String() + "\x00" + peer.String() + "\x00" + id
}

func (t *tracker) add(dir string, account, peer jid.JID, id string) {
	if id == "" {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.order) > 0 && (len(t.order) >= trackMax || now.Sub(t.m[t.order[0]]) > trackTTL) {
		delete(t.m, t.order[0])
		t.order = t.order[1:]
	}
	k := trackKey(dir, account, peer, id)
	if _, ok := t.m[k]; !ok {
		t.order = append(t.order, k)
	}
	t.m[k] = now
}

// seen reports whether a message in direction dir between account and
// peer (or peer's bare JID) with id was copied within trackTTL.
func (t *tracker) seen(dir string, account, peer jid.JID, id string) bool {
	if id == "" {
		return false
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range []jid.JID{peer, peer.Bare()} {
		if at, ok := t.m[trackKey(dir, account, p, id)]; ok && now.Sub(at) <= trackTTL {
			return true
		}
	}
	return false
}

var (
	_ server.Module          = (*Module)(nil)
	_ server.Initializer     = (*Module)(nil)
	_ server.FeatureProvider = (*Module)(nil)
	_ server.IQProvider      = (*Module)(nil)
	_ server.RouteProvider   = (*Module)(nil)
	_ server.InlineEnabler   = (*Module)(nil)
)

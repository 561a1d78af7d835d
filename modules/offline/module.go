// Package offline implements XEP-0160 offline messages: a chat or normal
// message to an account with no available resource of non-negative
// priority is stored, and delivered with a XEP-0203 delay stamp when a
// resource of the account next sends non-negative initial presence.
//
// Storage is a storage.Offline (storage/memory, storage/bbolt). Messages
// are kept at most Options.Retention and at most Options.Limit per user;
// beyond the limit the sender gets service-unavailable (RFC 6121 §8.5.2.2).
//
// A delivered message that comes back undelivered (a XEP-0198 session
// ended without acknowledging it) is stored again as it was first stored:
// the same record and arrival time, so one delay stamp and a retention
// that still counts from the first arrival. The module recognises such a
// message by the stanza value it sent, never by the XML in it: a
// <delay/> in the server's name that arrives in a message is a sender's
// forgery and is removed before the message is stored.
package offline

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"
	"weak"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// Feature is the XEP-0160 disco#info feature advertised on the server.
const Feature = "msgoffline"

// Namespaces the module reads or writes.
const (
	NSDelay      = "urn:xmpp:delay"                        // XEP-0203
	NSHints      = "urn:xmpp:hints"                        // XEP-0334
	NSChatStates = "http://jabber.org/protocol/chatstates" // XEP-0085
	NSStanzaID   = "urn:xmpp:sid:0"                        // XEP-0359
)

// Defaults and bounds of Options.
const (
	DefaultLimit     = 1000
	DefaultRetention = 30 * 24 * time.Hour
	MaxRetention     = 10 * 365 * 24 * time.Hour
	MaxLimit         = 100000
)

// Options configure the module. The zero value means the defaults.
type Options struct {
	// Limit is the most messages kept for one user (default 1,000, at
	// most MaxLimit). A message beyond it is bounced with
	// service-unavailable. Keep it well below the server's
	// Limits.QueueSize (default 4096): all of a user's messages are
	// queued at once on delivery, and a session whose queue overflows is
	// closed.
	Limit int
	// Retention is how long a message is kept before the server's
	// janitor deletes it undelivered (default 30 days, at most 10 years;
	// see Module.Expire and server.Retention).
	Retention time.Duration
}

// Deps are what the module builds on.
type Deps struct {
	// Store keeps the messages (required).
	Store storage.Offline
}

// Module implements XEP-0160. Create it with New.
type Module struct {
	store     storage.Offline
	limit     int
	retention time.Duration

	host server.Host
	log  *slog.Logger

	mu    sync.Mutex           // guards locks
	locks map[string]*userLock // bare JID → lock, while in use

	sentMu sync.Mutex                                             // guards sent
	sent   map[weak.Pointer[stanza.Stanza]]storage.OfflineMessage // see remember

	metrics offlineMetrics // see metrics.go
}

// userLock serialises storing and delivering one user's messages.
type userLock struct {
	mu   sync.Mutex
	refs int // guarded by Module.mu
}

// New returns the module keeping messages in deps.Store. It fails
// without a store or for an option out of range.
func New(opts Options, deps Deps) (*Module, error) {
	if deps.Store == nil {
		return nil, errors.New("offline: no store")
	}
	switch {
	case opts.Limit == 0:
		opts.Limit = DefaultLimit
	case opts.Limit < 0 || opts.Limit > MaxLimit:
		return nil, fmt.Errorf("offline: limit %d out of range 1..%d", opts.Limit, MaxLimit)
	}
	switch {
	case opts.Retention == 0:
		opts.Retention = DefaultRetention
	case opts.Retention < 0 || opts.Retention > MaxRetention:
		return nil, fmt.Errorf("offline: retention %v must be positive and at most %v", opts.Retention, MaxRetention)
	}
	return &Module{
		store:     deps.Store,
		limit:     opts.Limit,
		retention: opts.Retention,
		log:       slog.New(slog.DiscardHandler),
		locks:     make(map[string]*userLock),
		sent:      make(map[weak.Pointer[stanza.Stanza]]storage.OfflineMessage),
	}, nil
}

// Name returns "offline".
func (*Module) Name() string { return "offline" }

// Init keeps the host.
func (m *Module) Init(ctx context.Context, h server.Host) error {
	m.host = h
	m.log = h.Logger()
	return nil
}

// Features advertises msgoffline on the server (XEP-0160 §3).
func (*Module) Features(t server.Target) []string {
	if t == server.TargetHost {
		return []string{Feature}
	}
	return nil
}

// UserData names what the module keeps.
func (*Module) UserData() []string { return []string{"offline messages"} }

// lock takes user's lock and returns its release.
func (m *Module) lock(user string) func() {
	m.mu.Lock()
	l := m.locks[user]
	if l == nil {
		l = &userLock{}
		m.locks[user] = l
	}
	l.refs++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.locks, user)
		}
		m.mu.Unlock()
	}
}

// verdict is what HandleUndelivered does with a message.
type verdict int

const (
	store   verdict = iota // keep it for later delivery
	decline                // not ours: the router bounces chat and normal
	drop                   // not worth keeping nor bouncing (chat states)
)

// classify applies the storage rules: chat, normal and untyped messages
// with content (XEP-0160 §2, RFC 6121 §8.5.2.2) are stored; groupchat,
// headline and error messages are not; XEP-0334 <no-store/> declines and
// <store/> stores any message that is not an error or groupchat message.
// Messages carrying nothing but chat states, threads, hints and ids are
// dropped silently, as ejabberd and Prosody do: bouncing every typing
// notification to an offline contact would only show errors.
// <no-permanent-store/> does not prevent storage: XEP-0334 §2 lets such a
// message be "stored temporarily as a normal part of delivery (e.g. if
// the recipient is offline at the time of sending)".
func classify(s *stanza.Stanza) verdict {
	if s.Kind != stanza.Message {
		return decline
	}
	switch s.Type {
	case "error", "groupchat":
		return decline
	}
	c := stanza.Classify(s)
	if c&stanza.NoStore != 0 {
		return decline
	}
	if c&stanza.Store != 0 {
		return store
	}
	if s.Type == "headline" {
		return decline
	}
	if !hasContent(c) {
		return drop
	}
	return store
}

// hasContent reports whether a message classified c has a child element
// other than chat states, thread, hints, delays and stanza ids, or stored
// XML.
func hasContent(c stanza.Class) bool {
	return c&^(stanza.ChatState|stanza.Thread|stanza.Hints|stanza.Delay|stanza.StanzaID) != 0
}

// HandleUndelivered stores a message for an account that has no available
// resource of non-negative priority. If a resource became available
// meanwhile, the message goes to it instead. A full queue (or a storage
// failure) leaves the message unhandled, so the router bounces it with
// service-unavailable.
//
// A message this module delivered and the server hands back (the XEP-0198
// session it went to ended without acknowledging it) is stored again as
// the record it came from, with its first arrival time: it keeps its one
// delay stamp, and its retention is not restarted. Any other message is
// stored with the current time, without the delays in it that claim to be
// from a local domain (see withoutServerDelays).
func (m *Module) HandleUndelivered(ctx context.Context, s *stanza.Stanza) (bool, error) {
	rec, again := m.recall(s)
	if !again {
		switch classify(s) {
		case decline:
			return false, nil
		case drop:
			return true, nil
		}
	}
	user := s.To.Bare()
	if user.Localpart() == "" {
		return false, nil
	}
	unlock := m.lock(user.String())
	defer unlock()
	// A resource may have sent initial presence since the router looked;
	// if so, it (or SessionAvailable, waiting for this lock) gets the
	// message now.
	if m.deliverNow(ctx, user, s) {
		return true, nil
	}
	if !again {
		rec = storage.OfflineMessage{Stored: time.Now(), Data: stanza.Marshal(m.withoutServerDelays(s))}
	}
	// A message stored again goes behind those stored since, with its
	// older time; SessionAvailable skips it once it is past the retention
	// even if the store, expiring from the front of a queue, still has it.
	err := m.push(ctx, user.String(), rec)
	switch {
	case errors.Is(err, storage.ErrFull):
		m.log.Debug("offline queue full; message bounced")
		return false, nil
	case err != nil:
		m.log.Warn("message not stored", "err", err)
		return false, nil
	}
	return true, nil
}

// deliverNow sends s to the sessions of user the router would deliver it
// to (server.BareTargets), and reports whether one took it (or a filter
// stopped it: then it is not stored either).
func (m *Module) deliverNow(ctx context.Context, user jid.JID, s *stanza.Stanza) bool {
	sent := false
	for _, sess := range server.BareTargets(nil, m.host.Sessions(user), s.Type) {
		sent = !errors.Is(m.host.SendTo(ctx, sess, s), server.ErrNotDelivered) || sent
	}
	return sent
}

// SessionAvailable delivers the stored messages, oldest first, to a
// session that sent initial presence of non-negative priority, and
// deletes those it sent. Messages from senders the user blocks, and
// messages older than the retention that the janitor has not deleted
// yet, are deleted unsent. A resource that sends negative priority gets
// nothing, and raising its priority later does not deliver either: the
// messages wait for the next non-negative initial presence of any
// resource.
func (m *Module) SessionAvailable(ctx context.Context, sess *server.Session) {
	if sess.Priority() < 0 {
		return
	}
	user := sess.JID().Bare()
	unlock := m.lock(user.String())
	defer unlock()
	msgs, err := m.store.OfflineMessages(ctx, user.String())
	if err != nil {
		m.log.Warn("offline messages not read", "err", err)
		return
	}
	if len(msgs) == 0 {
		return
	}
	domain := user.Domain()
	expired := time.Now().Add(-m.retention)
	var last uint64
	for _, om := range msgs {
		if om.Stored.Before(expired) {
			last = om.Seq
			continue
		}
		st, err := stanza.Unmarshal(om.Data)
		if err != nil {
			m.log.Warn("unreadable offline message deleted", "err", err)
			last = om.Seq
			continue
		}
		st.Inner = append(st.Inner, delayTokens(domain, om.Stored)...)
		m.remember(st, om)
		// The message passes the filters again: a sender the user has
		// blocked since (XEP-0191) is stopped there, and the message is
		// deleted unsent.
		err = m.host.SendTo(ctx, sess, st)
		if errors.Is(err, server.ErrNotDelivered) {
			break // the session is closing; the rest stays stored
		}
		if err == nil {
			m.metrics.delivered.Inc()
		}
		last = om.Seq
	}
	if last == 0 {
		return
	}
	if err := m.store.DeleteOffline(ctx, user.String(), last); err != nil {
		// Delivered messages that could not be deleted come again at the
		// next login; clients drop duplicates by id.
		m.log.Warn("delivered offline messages not deleted", "err", err)
	}
}

// remember notes that st, about to be sent, was built from the stored
// record om, so that HandleUndelivered recognises it if the server hands
// it back. Only the stanza value identifies it, so nothing a sender
// writes in a message can make the module take it for one of its own.
// The note lives as long as st: it is keyed by a weak pointer and deleted
// by a cleanup once st is unreachable (acknowledged, or stored again).
func (m *Module) remember(st *stanza.Stanza, om storage.OfflineMessage) {
	k := weak.Make(st)
	m.sentMu.Lock()
	m.sent[k] = storage.OfflineMessage{Stored: om.Stored, Data: om.Data} // no copy: st's Raw aliases Data
	m.sentMu.Unlock()
	runtime.AddCleanup(st, m.forget, k)
}

func (m *Module) forget(k weak.Pointer[stanza.Stanza]) {
	m.sentMu.Lock()
	delete(m.sent, k)
	m.sentMu.Unlock()
}

// recall returns the record s was built from, if s is a message the
// module delivered.
func (m *Module) recall(s *stanza.Stanza) (storage.OfflineMessage, bool) {
	m.sentMu.Lock()
	defer m.sentMu.Unlock()
	if len(m.sent) == 0 {
		return storage.OfflineMessage{}, false
	}
	om, ok := m.sent[weak.Make(s)]
	return om, ok
}

// withoutServerDelays returns s, or a copy of it without the top-level
// XEP-0203 delays whose from is a local domain (with or without a
// resource, in any case). Only this module stamps a stored message in the
// server's name, and it adds that stamp at delivery; one arriving in a
// message is a sender's claim in the server's name (that the message
// waited since some time, possibly in the future or long ago), which the
// recipient must not be shown as the server's. The stored time never
// comes from a stamp. Delays by other entities are kept. s is not
// changed.
func (m *Module) withoutServerDelays(s *stanza.Stanza) *stanza.Stanza {
	return s.WithoutChildren(m.serverDelay)
}

// Filters strips, on the sender's side of what clients send, the delays
// that claim to be from a local domain (see withoutServerDelays), so that
// no recipient, online or not, is shown a stamp a sender wrote in the
// server's name.
func (m *Module) Filters() []server.ModuleFilter {
	return []server.ModuleFilter{{Filter: filter.Only(filter.Send, filter.Func(
		func(ctx context.Context, p filter.Packet) (*stanza.Stanza, error) {
			if p.Origin != filter.Client || p.Stanza.Kind != stanza.Message || m.host == nil {
				return p.Stanza, nil
			}
			return m.withoutServerDelays(p.Stanza), nil
		}))}}
}

// serverDelay reports whether el is a XEP-0203 delay from a local
// domain.
func (m *Module) serverDelay(el stanza.Element) bool {
	if el.Name.Space != NSDelay || el.Name.Local != "delay" {
		return false
	}
	from, ok := el.LookupAttr("from")
	if !ok {
		return false
	}
	j, err := jid.Parse(from)
	return err == nil && j.Localpart() == "" && m.host.IsLocal(j.Domainpart())
}

// delayTokens returns <delay xmlns='urn:xmpp:delay' from=domain
// stamp=t/> (XEP-0203, the stamp in UTC as XEP-0082 writes it).
func delayTokens(domain jid.JID, t time.Time) []xml.Token {
	start := xml.StartElement{Name: xml.Name{Space: NSDelay, Local: "delay"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "from"}, Value: domain.String()},
		{Name: xml.Name{Local: "stamp"}, Value: t.UTC().Format("2006-01-02T15:04:05Z")},
	}}
	return []xml.Token{start, start.End()}
}

// Expire implements server.Expirer: it deletes at most limit messages
// stored before now minus the retention, and returns how many it deleted
// and whether more may be due. The server's janitor calls it.
func (m *Module) Expire(ctx context.Context, now time.Time, limit int) (int, bool, error) {
	n, err := m.store.ExpireOffline(ctx, now.Add(-m.retention), limit)
	if err != nil {
		return n, false, fmt.Errorf("offline: expiring messages: %w", err)
	}
	return n, storage.Limited(n, limit), nil
}

// DeleteUser deletes the user's stored messages.
func (m *Module) DeleteUser(ctx context.Context, user jid.JID) error {
	u := user.Bare().String()
	unlock := m.lock(u)
	defer unlock()
	if err := m.store.DeleteOfflineUser(ctx, u); err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	return nil
}

// ExportUser writes the user's stored messages, if any, as XEP-0227 puts
// them inside <user/>: an <offline-messages/> element holding each
// message with its delay stamp.
func (m *Module) ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error {
	user = user.Bare()
	msgs, err := m.store.OfflineMessages(ctx, user.String())
	if err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	if len(msgs) == 0 {
		return nil
	}
	start := xml.StartElement{Name: xml.Name{Space: server.NSPIE, Local: "offline-messages"}}
	if err := w.EncodeToken(start); err != nil {
		return err
	}
	for _, om := range msgs {
		st, err := stanza.Unmarshal(om.Data)
		if err == nil {
			err = st.ParseRaw()
		}
		if err != nil {
			return fmt.Errorf("offline: stored message %d: %w", om.Seq, err)
		}
		st.Inner = append(st.Inner, delayTokens(user.Domain(), om.Stored)...)
		r := st.TokenReader()
		for {
			t, err := r.Token()
			if err != nil {
				break
			}
			if err := w.EncodeToken(t); err != nil {
				return err
			}
		}
	}
	return w.EncodeToken(start.End())
}

var (
	_ server.Module               = (*Module)(nil)
	_ server.Initializer          = (*Module)(nil)
	_ server.FeatureProvider      = (*Module)(nil)
	_ server.UndeliveredHandler   = (*Module)(nil)
	_ server.AvailabilityListener = (*Module)(nil)
	_ server.FilterProvider       = (*Module)(nil)
	_ server.UserDataOwner        = (*Module)(nil)
	_ server.UserDataDeclarer     = (*Module)(nil)
	_ server.Expirer              = (*Module)(nil)
)

// Package mam implements XEP-0313 Message Archive Management for user
// archives: the server keeps each account's chat messages, adds XEP-0359
// stanza IDs to the messages it delivers, and lets the owner page through
// the archive by peer, time and ID (urn:xmpp:mam:2 and #extended), read its
// metadata and set archiving preferences (XEP-0441). Its ad-hoc commands
// (XEP-0050) let users delete their archive and keep their messages for
// less time than the server does.
//
// Messages are archived synchronously: an incoming message is appended
// (durably) before it is delivered, so the stanza ID it carries is already
// valid, and an outgoing one before it is routed.
package mam

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// Namespaces the module speaks.
const (
	NS         = "urn:xmpp:mam:2"
	NSExtended = "urn:xmpp:mam:2#extended"
	NSSID      = "urn:xmpp:sid:0"
	NSRSM      = "http://jabber.org/protocol/rsm"
	NSForward  = "urn:xmpp:forward:0"
	NSDelay    = "urn:xmpp:delay"
	NSHints    = "urn:xmpp:hints"
	NSCarbons  = "urn:xmpp:carbons:2"
	// NSPIE is the XEP-0227 namespace of an exported archive.
	NSPIE = "urn:xmpp:pie:0#mam"
)

// Archiving modes for Options.Default and the prefs default attribute
// (XEP-0441 §2.1.1).
const (
	Always = "always"
	Roster = "roster"
	Never  = "never"
)

// prefsKey is the key of a user's preferences in the key-value store.
const prefsKey = "mam:prefs"

// Limits and defaults.
const (
	DefaultRetention = 30 * 24 * time.Hour
	MaxRetention     = 10 * 365 * 24 * time.Hour
	DefaultMaxPage   = 50
	// MaxMaxPage is the largest MaxPage allowed.
	MaxMaxPage = 250
	// MaxPrefsJIDs bounds each of the always and never lists.
	MaxPrefsJIDs = 1000
)

// RosterReader tells whether a contact is in a user's roster, for the
// "roster" archiving mode; *roster.Module implements it.
type RosterReader interface {
	Item(ctx context.Context, user, contact jid.JID) (storage.RosterItem, bool, error)
}

// Options configure the module.
type Options struct {
	// Default is the archiving mode for users who set no preferences:
	// Always (the default), Roster or Never.
	Default string
	// Retention is how long messages are kept (default 30 days, at most
	// 10 years). The server's janitor removes older messages (see
	// Module.Expire and server.Retention).
	Retention time.Duration
	// MaxPage is the most messages one query returns, and the page size
	// when the client gives none (default 50, at most 250).
	MaxPage int
}

// Deps are the stores and the module the archive builds on.
type Deps struct {
	// Archive keeps the messages (required).
	Archive storage.Archive
	// KV keeps each user's preferences (required), under the key
	// "mam:prefs"; it may be shared with other modules.
	KV storage.KV
	// Roster answers the "roster" mode; *roster.Module implements it.
	// Without it (leave it nil, not a nil *roster.Module) nobody is in a
	// roster: "roster" archives only the always list.
	Roster RosterReader
	// Service keeps the index of the users who set a personal retention
	// (RetentionCommand), in the namespace RetentionNamespace, so that
	// the janitor visits them and no other account. Without it users
	// cannot set one.
	Service storage.ServiceData
}

// Module implements XEP-0313 for user archives. Create it with New.
type Module struct {
	archive storage.Archive
	kv      storage.KV
	roster  RosterReader        // nil: nobody is in a roster
	service storage.ServiceData // nil: no personal retention
	opts    Options
	host    server.Host
	now     func() time.Time

	prefs prefsCache

	// retentionMu serialises changes to personal retentions and the
	// janitor's removal of stale index entries.
	retentionMu sync.Mutex
	// personalMu guards personalAfter, the last user of the index whose
	// personal retention the janitor's pass applied ("" when no pass is
	// under way).
	personalMu    sync.Mutex
	personalAfter string

	// sentCopies holds the sender's archive appends that run while the
	// same message is archived for its local recipient, keyed by the
	// message: archiveReceived waits for them, so the message is
	// durable in both archives before the sender's stream counts it
	// handled, at the cost of one storage sync instead of two.
	sentCopies sync.Map // *stanza.Stanza → *sentCopy

	metrics archiveMetrics // see metrics.go
}

// sentCopy is a sender's archive append in progress.
type sentCopy struct {
	done chan struct{}
	// data is what was archived; whole reports that it is the message
	// exactly as routed (no forged stanza ID was removed), so that the
	// recipient's copy can share it.
	data  []byte
	whole bool
}

// New returns the module keeping archives in deps.Archive and preferences
// in deps.KV. It fails without either store, or for an option out of
// range.
func New(opts Options, deps Deps) (*Module, error) {
	if deps.Archive == nil {
		return nil, errors.New("mam: no archive store")
	}
	if deps.KV == nil {
		return nil, errors.New("mam: no key-value store")
	}
	switch opts.Default {
	case "":
		opts.Default = Always
	case Always, Roster, Never:
	default:
		return nil, fmt.Errorf("mam: default mode %q is not always, roster or never", opts.Default)
	}
	switch {
	case opts.Retention == 0:
		opts.Retention = DefaultRetention
	case opts.Retention < 0 || opts.Retention > MaxRetention:
		return nil, fmt.Errorf("mam: retention %v is not within (0, 10 years]", opts.Retention)
	}
	switch {
	case opts.MaxPage == 0:
		opts.MaxPage = DefaultMaxPage
	case opts.MaxPage < 0 || opts.MaxPage > MaxMaxPage:
		return nil, fmt.Errorf("mam: max page %d is not within [1, %d]", opts.MaxPage, MaxMaxPage)
	}
	return &Module{archive: deps.Archive, kv: deps.KV, roster: deps.Roster, service: deps.Service, opts: opts, now: time.Now}, nil
}

// Name returns "mam".
func (*Module) Name() string { return "mam" }

// Init keeps the host.
func (m *Module) Init(ctx context.Context, h server.Host) error {
	m.host = h
	return nil
}

// Expire implements server.Expirer: it removes at most limit messages
// archived before now minus the retention, from every archive, and then
// applies the personal retentions (RetentionCommand), one page of their
// index per call, resuming where the previous call stopped. more reports
// that messages may still be due, or that the pass over the personal
// retentions is not over.
func (m *Module) Expire(ctx context.Context, now time.Time, limit int) (removed int, more bool, err error) {
	m.personalMu.Lock()
	inPass := m.personalAfter != ""
	m.personalMu.Unlock()
	if !inPass {
		// A pass over the personal retentions starts after the server's
		// retention is applied, and ends before it is applied again.
		n, err := m.archive.ExpireArchive(ctx, now.Add(-m.opts.Retention), limit)
		if err != nil {
			return n, false, fmt.Errorf("mam: %w", err)
		}
		if storage.Limited(n, limit) {
			return n, true, nil
		}
		removed = n
	}
	n, more, err := m.expirePersonal(ctx, now, limit-removed)
	return removed + n, more, err
}

// Features advertises MAM and stanza IDs on accounts (XEP-0313 §7), and
// MAM on the server too, as Prosody and ejabberd do: some clients
// (Profanity 0.13) look for it only in the server's disco#info before
// they fetch history from the account's archive.
func (*Module) Features(t server.Target) []string {
	switch t {
	case server.TargetBare:
		return []string{NS, NSExtended, NSSID}
	case server.TargetHost:
		return []string{NS, NSExtended}
	}
	return nil
}

// UserData names what the module keeps.
func (*Module) UserData() []string {
	return []string{"message archive", "archive preferences", "archive retention"}
}

// DeleteUser removes the user's archive, preferences and personal
// retention.
func (m *Module) DeleteUser(ctx context.Context, user jid.JID) error {
	bare := user.Bare().String()
	err1 := m.archive.DeleteArchive(ctx, bare)
	err2 := m.deletePrefs(ctx, bare)
	err3 := m.deleteRetention(ctx, bare)
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("mam: %w", err)
	}
	return nil
}

// ExportUser writes the preferences and the archive as XEP-0227 expects
// them: <archive xmlns='urn:xmpp:pie:0#mam'/> holding <prefs/> and one
// <result/> per message, as a query would return it.
func (m *Module) ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error {
	bare := user.Bare().String()
	p, stored, err := m.loadPrefs(ctx, bare)
	if err != nil {
		return err
	}
	stats, err := m.archive.ArchiveStats(ctx, bare)
	if err != nil {
		return fmt.Errorf("mam: %w", err)
	}
	if !stored && stats.Count == 0 {
		return nil
	}
	archive := xml.StartElement{Name: xml.Name{Space: NSPIE, Local: "archive"}}
	if err := w.EncodeToken(archive); err != nil {
		return err
	}
	if stored {
		if err := encodeAll(w, stanza.Resolve(p.element(), NS)); err != nil {
			return err
		}
	}
	var after uint64
	for {
		page, err := m.archive.QueryArchive(ctx, bare, storage.ArchiveQuery{After: after, Max: 500})
		if err != nil {
			return fmt.Errorf("mam: %w", err)
		}
		for _, msg := range page.Messages {
			raw, err := stanza.RawElement(msg.Data)
			var toks []xml.Token
			if err == nil {
				toks, err = stanza.ParseElement(raw)
			}
			if err != nil {
				return fmt.Errorf("mam: a stored message does not parse: %w", err)
			}
			res := xml.StartElement{Name: xml.Name{Space: NS, Local: "result"}, Attr: []xml.Attr{stanza.Attr("id", EncodeID(msg.ID))}}
			fwd := xml.StartElement{Name: xml.Name{Space: NSForward, Local: "forwarded"}}
			delay := xml.StartElement{Name: xml.Name{Space: NSDelay, Local: "delay"}, Attr: []xml.Attr{stanza.Attr("stamp", stamp(msg.ID))}}
			all := append([]xml.Token{res, fwd, delay, delay.End()}, toks...)
			all = append(all, fwd.End(), res.End())
			if err := encodeAll(w, all); err != nil {
				return err
			}
			after = msg.ID
		}
		if page.Complete || len(page.Messages) == 0 {
			break
		}
	}
	return w.EncodeToken(archive.End())
}

func encodeAll(w xmlstream.TokenWriter, toks []xml.Token) error {
	for _, t := range toks {
		if err := w.EncodeToken(t); err != nil {
			return err
		}
	}
	return nil
}

// archivable reports whether a message is worth archiving: a chat or
// normal message with content a conversation needs later, as Prosody
// decides (mod_mam's should_store): a body, a subject, an encrypted
// payload (OMEMO, XEP-0380), an XEP-0066 URL, a chat marker, a reaction or
// retraction, a MUC invitation, a Jingle call message, or an XEP-0334
// <store/> hint. Never one with a <no-store/> or <no-permanent-store/>
// hint, an archive result or a carbon copy; never chat states alone.
func archivable(st *stanza.Stanza) bool {
	if st.Kind != stanza.Message {
		return false
	}
	switch st.Type {
	case "", "normal", "chat":
	default:
		return false
	}
	c := stanza.Classify(st)
	if c&(stanza.NoStore|stanza.NoPermanentStore|stanza.Forwarded) != 0 {
		return false
	}
	return c&archivedContent != 0
}

// archivedContent are the children that make a message worth archiving.
const archivedContent = stanza.Body | stanza.Subject | stanza.Store | stanza.OMEMO | stanza.EME |
	stanza.OOB | stanza.Marker | stanza.Reaction | stanza.Retraction | stanza.Invitation | stanza.Call

// RoutePriority is the place of the archive's routes among the modules'
// message routes: before carbons (which copy the stanza id it adds) and
// before delivery and offline storage.
const RoutePriority = 200

// StanzaRoutes archives messages on both sides of their path: the
// sender's copy when a client of a local account sends one, the
// recipient's when one reaches a local account.
func (m *Module) StanzaRoutes() []server.StanzaRoute {
	return []server.StanzaRoute{
		{Side: filter.Send, Kind: stanza.Message, Priority: RoutePriority, Handler: server.RouteHandlerFunc(
			func(ctx context.Context, d *server.Delivery) error { return m.archiveSent(ctx, d.Stanza) })},
		{Side: filter.Receive, Kind: stanza.Message, Priority: RoutePriority, Handler: server.RouteHandlerFunc(
			func(ctx context.Context, d *server.Delivery) error {
				out, err := m.archiveReceived(ctx, d.Account, d.Stanza)
				d.Stanza = out
				return err
			})},
	}
}

// archiveSent archives a message a client sends, in the sender's archive
// with the recipient as the peer. Messages to the sender's own account
// are archived once, on delivery; messages to a local address that is no
// account are not archived (the router bounces them).
func (m *Module) archiveSent(ctx context.Context, st *stanza.Stanza) error {
	if st.Kind != stanza.Message || !archivable(st) {
		return nil
	}
	to, user := st.To, st.From.Bare()
	if to.Localpart() == "" || to.Bare().Equal(user) {
		return nil
	}
	if m.host.IsLocal(to.Domainpart()) && !m.host.UserExists(ctx, to.Bare()) {
		return nil
	}
	ok, err := m.archives(ctx, user.String(), to)
	if err != nil {
		m.host.Logger().Warn("reading archiving preferences failed", "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	// The sender's own archive keeps no stanza ID claiming to be its own.
	clean := stripForged(st, user)
	at, data := m.now(), stanza.Marshal(clean)
	if !m.host.IsLocal(to.Domainpart()) {
		if _, err := m.appendArchive(ctx, user.String(), at, to.String(), data); err != nil {
			m.host.Logger().Warn("archiving a sent message failed", "err", err)
		}
		return nil
	}
	// A local recipient's copy is archived in archiveReceived, which
	// waits for this one.
	sc := &sentCopy{done: make(chan struct{}), data: data, whole: clean == st}
	m.sentCopies.Store(st, sc)
	// Written while the recipient's copy is, through the host's goroutines,
	// so that shutdown waits for it; it finishes even then.
	bg := context.WithoutCancel(ctx)
	m.host.Go(func(context.Context) {
		defer func() {
			close(sc.done)
			m.sentCopies.CompareAndDelete(st, sc)
		}()
		if _, err := m.appendArchive(bg, user.String(), at, to.String(), data); err != nil {
			m.host.Logger().Warn("archiving a sent message failed", "err", err)
		}
	})
	return nil
}

// awaitSentCopy waits until the sender's copy of st, if one is being
// archived, is durable.
func (m *Module) awaitSentCopy(st *stanza.Stanza) {
	if sc, ok := m.sentCopies.LoadAndDelete(st); ok {
		<-sc.(*sentCopy).done
	}
}

// serialised returns the archive form of out, the copy of st a recipient
// gets, reusing the sender's when it is the same message.
func (m *Module) serialised(st, out *stanza.Stanza) []byte {
	if out == st {
		if sc, ok := m.sentCopies.Load(st); ok && sc.(*sentCopy).whole {
			return sc.(*sentCopy).data
		}
	}
	return stanza.Marshal(out)
}

// archiveReceived archives a message in the recipient's archive with the
// sender as the peer and returns a copy carrying its stanza ID (XEP-0313
// §3.5, XEP-0359). Stanza IDs that claim to be the account's are removed
// from every message, archived or not (XEP-0359 business rules).
func (m *Module) archiveReceived(ctx context.Context, account jid.JID, st *stanza.Stanza) (*stanza.Stanza, error) {
	if st.Kind != stanza.Message {
		return st, nil
	}
	defer m.awaitSentCopy(st)
	user := account.Bare()
	out := stripForged(st, user)
	if !archivable(st) || st.From.String() == "" {
		return out, nil
	}
	ok, err := m.archives(ctx, user.String(), st.From)
	if err != nil {
		m.host.Logger().Warn("reading archiving preferences failed", "err", err)
		return out, nil
	}
	if !ok {
		return out, nil
	}
	id, err := m.appendArchive(ctx, user.String(), m.now(), st.From.String(), m.serialised(st, out))
	if err != nil {
		m.host.Logger().Warn("archiving a received message failed", "err", err)
		return out, nil
	}
	if out == st {
		// A shallow copy: tokens are never changed in place, and the
		// stanza ID is appended to a slice of its own.
		c := *st
		c.Inner = slices.Clip(st.Inner)
		out = &c
	}
	out.AppendChild(stanza.Elem(xml.Name{Space: NSSID, Local: "stanza-id"},
		[]xml.Attr{stanza.Attr("by", user.String()), stanza.Attr("id", EncodeID(id))}))
	return out, nil
}

// stripForged returns st, or a copy without the top-level stanza-id
// elements whose by is user.
func stripForged(st *stanza.Stanza, user jid.JID) *stanza.Stanza {
	return st.WithoutChildren(func(el stanza.Element) bool {
		if el.Name.Space != NSSID || el.Name.Local != "stanza-id" {
			return false
		}
		by := el.Attr("by")
		j, err := jid.Parse(by)
		return by == user.String() || (err == nil && j.Equal(user))
	})
}

var (
	_ server.Module           = (*Module)(nil)
	_ server.Initializer      = (*Module)(nil)
	_ server.IQProvider       = (*Module)(nil)
	_ server.FeatureProvider  = (*Module)(nil)
	_ server.RouteProvider    = (*Module)(nil)
	_ server.UserDataOwner    = (*Module)(nil)
	_ server.UserDataDeclarer = (*Module)(nil)
)
var _ server.Expirer = (*Module)(nil)

// Package private implements XEP-0049 Private XML Storage
// (jabber:iq:private): each user stores XML elements on the server that
// only they can read back, one per namespace and element name, such as
// XEP-0048 bookmarks or XEP-0145 roster notes. Items are kept as the XML
// the user sent, in a storage.KV under keys "private:{namespace}local".
//
// With Deps.Bookmarks (modules/pep), XEP-0048 bookmarks
// (<storage xmlns='storage:bookmarks'/>) are not kept here but in the
// account's XEP-0402 PEP node, so that clients of either protocol see the
// same bookmarks (XEP-0402's compatibility with XEP-0049, XEP-0411).
package private

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// NS is the XEP-0049 namespace, advertised as a disco#info feature of
// the server.
const NS = "jabber:iq:private"

// KeyPrefix starts the storage.KV key of every item this module stores.
// The rest of the key is the item's name in Clark notation,
// "{namespace}local"; XML names cannot contain '}', so the key is
// unambiguous.
const KeyPrefix = "private:"

// Defaults for zero Options.
const (
	DefaultMaxSize  = 64 << 10
	DefaultMaxItems = 100
)

// Options configure the module. The zero value is ready to use.
type Options struct {
	// MaxSize is the largest item, in bytes of serialised XML, a user may
	// store; larger ones are refused with not-acceptable. Zero means
	// DefaultMaxSize.
	MaxSize int
	// MaxItems is how many items (distinct namespace and element name
	// pairs) a user may store; storing one more is refused with
	// resource-constraint. Zero means DefaultMaxItems.
	MaxItems int
}

// Deps are what the module builds on.
type Deps struct {
	// Store keeps the items (required). It may be shared with other
	// modules: this one uses only keys starting with KeyPrefix.
	Store storage.KV
	// Bookmarks, if set, keeps XEP-0048 bookmarks instead of Store: pep's
	// Module.Bookmarks, whose module must be in Config.Modules too.
	Bookmarks Bookmarks
}

// Bookmarks keeps an account's XEP-0048 bookmarks elsewhere (in its
// XEP-0402 PEP node); modules/pep's Bookmarks implements it. storage and
// the element returned are <storage xmlns='storage:bookmarks'/> elements;
// a stanza.Failure returned is the answer to the client.
type Bookmarks interface {
	// LegacyBookmarks returns user's bookmarks, from the start element to
	// the end element, namespaces explicit.
	LegacyBookmarks(ctx context.Context, user jid.JID) ([]xml.Token, error)
	// SetLegacyBookmarks makes storage user's bookmarks, removing those
	// it lacks.
	SetLegacyBookmarks(ctx context.Context, user jid.JID, storage stanza.Element) error
	// MergeLegacyBookmarks adds and updates the bookmarks of storage,
	// keeping the others.
	MergeLegacyBookmarks(ctx context.Context, user jid.JID, storage stanza.Element) error
}

// Module stores private XML. Create it with New.
type Module struct {
	maxSize   int
	maxItems  int
	store     storage.KV
	bookmarks Bookmarks
	log       *slog.Logger
	// mu makes counting a user's items and adding one atomic, so that
	// concurrent sets cannot pass MaxItems. Sets are rare.
	mu sync.Mutex
	// moved holds the accounts whose stored bookmarks were looked for
	// since the server started (see SessionStarted).
	moved sync.Map
}

// New returns the private XML storage module keeping items in
// deps.Store. It fails without a store or for negative limits.
func New(opts Options, deps Deps) (*Module, error) {
	if deps.Store == nil {
		return nil, errors.New("private: no store")
	}
	if opts.MaxSize < 0 || opts.MaxItems < 0 {
		return nil, fmt.Errorf("private: negative limit (MaxSize %d, MaxItems %d)", opts.MaxSize, opts.MaxItems)
	}
	if opts.MaxSize == 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxItems == 0 {
		opts.MaxItems = DefaultMaxItems
	}
	return &Module{maxSize: opts.MaxSize, maxItems: opts.MaxItems, store: deps.Store, bookmarks: deps.Bookmarks,
		log: slog.New(slog.DiscardHandler)}, nil
}

// Name returns "private".
func (*Module) Name() string { return "private" }

// Init keeps the logger.
func (m *Module) Init(_ context.Context, h server.Host) error {
	m.log = h.Logger()
	return nil
}

// nameBookmarks is XEP-0048's element, and bookmarksKey the key it was
// kept under before Deps.Bookmarks took it.
var (
	nameBookmarks = xml.Name{Space: "storage:bookmarks", Local: "storage"}
	bookmarksKey  = key(nameBookmarks)
)

// SessionStarted moves the bookmarks the account stored here before
// Deps.Bookmarks was set into it, at the first login of each account
// since the server started (XEP-0411 §4: before a client that reads only
// PEP can miss them); the stored item is deleted once they are.
func (m *Module) SessionStarted(ctx context.Context, s *server.Session) {
	if m.bookmarks == nil {
		return
	}
	user := s.JID().Bare()
	u := user.String()
	if _, done := m.moved.LoadOrStore(u, struct{}{}); done {
		return
	}
	data, err := m.store.Get(ctx, u, bookmarksKey)
	if errors.Is(err, storage.ErrNotFound) {
		return
	}
	if err == nil {
		err = m.moveBookmarks(ctx, user, data)
	}
	if err != nil {
		m.moved.Delete(u) // try again at the next login
		m.log.Warn("moving stored bookmarks to PEP failed", "err", err)
	}
}

func (m *Module) moveBookmarks(ctx context.Context, user jid.JID, data []byte) error {
	toks, err := stanza.ParseElement(data)
	if err != nil {
		return fmt.Errorf("private: stored bookmarks: %w", err)
	}
	for el := range stanza.Elements(toks) {
		if err := m.bookmarks.MergeLegacyBookmarks(ctx, user, el); err != nil {
			return err
		}
	}
	if err := m.store.Delete(ctx, user.String(), bookmarksKey); err != nil {
		return fmt.Errorf("private: %w", err)
	}
	return nil
}

var queryName = xml.Name{Space: NS, Local: "query"}

// IQRoutes answers <query xmlns='jabber:iq:private'/> gets and sets that
// users send to themselves (no 'to', or their own bare JID); the same
// addressed to another account are refused with forbidden (XEP-0049 §3).
func (m *Module) IQRoutes() []server.IQRoute {
	return []server.IQRoute{
		{Type: mstanza.GetIQ, Payload: queryName, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.get)},
		{Type: mstanza.SetIQ, Payload: queryName, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.set)},
		{Type: mstanza.GetIQ, Payload: queryName, To: server.TargetBare, Handler: server.IQHandlerFunc(forbidden)},
		{Type: mstanza.SetIQ, Payload: queryName, To: server.TargetBare, Handler: server.IQHandlerFunc(forbidden)},
	}
}

// Features of the bookmarks conversion, advertised on accounts with
// Deps.Bookmarks: XEP-0402's for private XML storage, and XEP-0411's
// (private XML storage and the PEP node storage:bookmarks, which pep
// serves, are one).
const (
	FeatureBookmarksCompat     = "urn:xmpp:bookmarks:1#compat"
	FeatureBookmarksConversion = "urn:xmpp:bookmarks-conversion:0"
)

// Features advertises jabber:iq:private on the server's domain, as
// Prosody does, and with Deps.Bookmarks the bookmarks conversion on
// accounts.
func (m *Module) Features(t server.Target) []string {
	switch {
	case t == server.TargetHost:
		return []string{NS}
	case t == server.TargetBare && m.bookmarks != nil:
		return []string{FeatureBookmarksCompat, FeatureBookmarksConversion}
	}
	return nil
}

// UserData names what the module keeps per user.
func (*Module) UserData() []string { return []string{"private XML"} }

// DeleteUser deletes every item of the user: the keys starting with
// KeyPrefix, and nothing else of theirs in the store.
func (m *Module) DeleteUser(ctx context.Context, user jid.JID) error {
	u := user.Bare().String()
	m.moved.Delete(u)
	keys, err := m.keys(ctx, u)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := m.store.Delete(ctx, u, k); err != nil {
			return fmt.Errorf("private: %w", err)
		}
	}
	return nil
}

// ExportUser writes the user's items, if any, inside one
// <query xmlns='jabber:iq:private'/>, as XEP-0227 puts them inside
// <user/>.
func (m *Module) ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error {
	u := user.Bare().String()
	keys, err := m.keys(ctx, u)
	if err != nil || len(keys) == 0 {
		return err
	}
	start := xml.StartElement{Name: queryName}
	if err := w.EncodeToken(start); err != nil {
		return err
	}
	for _, k := range keys {
		data, err := m.store.Get(ctx, u, k)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted since Keys
		}
		if err != nil {
			return fmt.Errorf("private: %w", err)
		}
		toks, err := stanza.ParseElement(data)
		if err != nil {
			return fmt.Errorf("private: stored item %s: %w", k, err)
		}
		for _, t := range toks {
			if err := w.EncodeToken(t); err != nil {
				return err
			}
		}
	}
	return w.EncodeToken(start.End())
}

// keys lists user's item keys.
func (m *Module) keys(ctx context.Context, user string) ([]string, error) {
	all, err := m.store.Keys(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("private: %w", err)
	}
	var keys []string
	for _, k := range all {
		if strings.HasPrefix(k, KeyPrefix) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// key returns the storage key of items named name.
func key(name xml.Name) string {
	return KeyPrefix + "{" + name.Space + "}" + name.Local
}

// item returns the one element inside the iq's query, or answers the iq
// with an error and returns ok false. XEP-0049 §3: the query holds exactly
// one element, and it must be in a namespace of its own.
func item(iq stanza.IQ, w server.ResponseWriter) (el stanza.Element, ok bool, err error) {
	query, _ := iq.PayloadElement()
	n := 0
	for el = range query.Children() {
		if n++; n > 1 {
			break
		}
	}
	if n != 1 {
		return el, false, w.Error(stanza.NewError(mstanza.Modify, mstanza.BadRequest, "the query must hold exactly one element"))
	}
	switch el.Name.Space {
	case "", stanza.NSClient, stanza.NSServer, NS:
		return el, false, w.Error(stanza.NewError(mstanza.Modify, mstanza.NotAcceptable, "private XML needs a namespace of its own"))
	}
	return el, true, nil
}

func (m *Module) get(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	req, ok, err := item(iq, w)
	if !ok {
		return err
	}
	if m.bookmarks != nil && req.Name == nameBookmarks {
		toks, err := m.bookmarks.LegacyBookmarks(ctx, iq.From.Bare())
		if err != nil {
			return err
		}
		return w.Result(stanza.Elem(queryName, nil, stanza.Tokens(toks...)))
	}
	user := iq.From.Bare().String()
	data, err := m.store.Get(ctx, user, key(req.Name))
	if errors.Is(err, storage.ErrNotFound) {
		// Nothing stored: the element as requested (XEP-0049 §2.2).
		return w.Result(stanza.Elem(queryName, nil, stanza.Tokens(req.Tokens()...)))
	}
	if err != nil {
		return fmt.Errorf("private: %w", err)
	}
	toks, err := stanza.ParseElement(data)
	if err != nil {
		return fmt.Errorf("private: stored item: %w", err)
	}
	return w.Result(stanza.Elem(queryName, nil, stanza.Tokens(toks...)))
}

func (m *Module) set(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	el, ok, err := item(iq, w)
	if !ok {
		return err
	}
	user := iq.From.Bare().String()
	k := key(el.Name)
	if m.bookmarks != nil && el.Name == nameBookmarks {
		return m.setBookmarks(ctx, iq, el, w)
	}
	// An element without attributes or content is what a get returns
	// when nothing is stored, so storing it is deleting the item; it
	// then no longer counts towards MaxItems.
	if len(el.Inner()) == 0 && len(el.Start().Attr) == 0 {
		if err := m.store.Delete(ctx, user, k); err != nil {
			return fmt.Errorf("private: %w", err)
		}
		return w.Result(nil)
	}
	var buf bytes.Buffer
	if err := stanza.WriteTokens(&buf, el.Tokens(), ""); err != nil {
		return err
	}
	if buf.Len() > m.maxSize {
		return w.Error(stanza.NewError(mstanza.Modify, mstanza.NotAcceptable, "item of "+strconv.Itoa(buf.Len())+" bytes exceeds the limit of "+strconv.Itoa(m.maxSize)))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	keys, err := m.keys(ctx, user)
	if err != nil {
		return err
	}
	if len(keys) >= m.maxItems && !slices.Contains(keys, k) {
		return w.Error(stanza.NewError(mstanza.Wait, mstanza.ResourceConstraint, "no more than "+strconv.Itoa(m.maxItems)+" private XML items per account"))
	}
	if err := m.store.Put(ctx, user, k, buf.Bytes()); err != nil {
		return fmt.Errorf("private: %w", err)
	}
	return w.Result(nil)
}

// setBookmarks hands a set of XEP-0048 bookmarks to Deps.Bookmarks.
func (m *Module) setBookmarks(ctx context.Context, iq stanza.IQ, el stanza.Element, w server.ResponseWriter) error {
	var buf bytes.Buffer
	if err := stanza.WriteTokens(&buf, el.Tokens(), ""); err != nil {
		return err
	}
	if buf.Len() > m.maxSize {
		return w.Error(stanza.NewError(mstanza.Modify, mstanza.NotAcceptable, "item of "+strconv.Itoa(buf.Len())+" bytes exceeds the limit of "+strconv.Itoa(m.maxSize)))
	}
	user := iq.From.Bare()
	if err := m.bookmarks.SetLegacyBookmarks(ctx, user, el); err != nil {
		return err
	}
	// What was stored here before, if moving it failed, is replaced.
	if err := m.store.Delete(ctx, user.String(), bookmarksKey); err != nil {
		m.log.Warn("deleting stored bookmarks failed", "err", err)
	}
	return w.Result(nil)
}

// forbidden refuses access to another user's private XML.
func forbidden(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	return w.Error(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.Forbidden})
}

var (
	_ server.Module           = (*Module)(nil)
	_ server.Initializer      = (*Module)(nil)
	_ server.SessionStarter   = (*Module)(nil)
	_ server.IQProvider       = (*Module)(nil)
	_ server.FeatureProvider  = (*Module)(nil)
	_ server.UserDataDeclarer = (*Module)(nil)
	_ server.UserDataOwner    = (*Module)(nil)
)

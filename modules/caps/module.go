// Package caps follows the XEP-0115 entity capabilities of local
// clients, and of remote contacts from their presence (remote.go): the <c xmlns='http://jabber.org/protocol/caps'/> a client
// puts in the presence it broadcasts names, by a hash, the features of
// its software. The module asks the client for the disco#info behind an
// unknown hash once, checks that it hashes to what the client claimed
// (package stanza/caps), and keeps the verified feature sets in a
// bounded cache shared by every session, so that other modules can ask
// which features a session has (PEP filters its notifications by
// "+notify" features, XEP-0163 §4) and be told when they become known.
//
// Nothing is stored: the cache and each session's caps live in memory.
package caps

import (
	"container/list"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	capsinfo "github.com/kiez-im/kiez/stanza/caps"
)

// NS is the XEP-0115 namespace.
const NS = capsinfo.NS

// Defaults of Options.
const (
	DefaultCacheSize    = 1000
	DefaultQueryTimeout = 10 * time.Second
)

// Limits that are no options.
const (
	// failureTTL is how long an account whose answer for a ver did not
	// verify (or did not come) is not asked for that ver again.
	failureTTL = time.Minute
	// maxFailures bounds the failures remembered.
	maxFailures = 1024
	// maxPending bounds the vers being asked for at once.
	maxPending = 256
	// maxAttempts is how many sessions advertising one ver are asked,
	// one after the other, before the module gives up on it until the
	// next presence (XEP-0115 §5.4: after a mismatch, ask another
	// entity).
	maxAttempts = 3
	// maxFeatures and maxFeatureBytes bound what one cached ver holds;
	// an answer with more is not cached.
	maxFeatures     = 512
	maxFeatureBytes = 16 << 10
)

// Options configure the module. Zero values take the defaults.
type Options struct {
	// CacheSize is how many verified (hash, ver) feature sets are kept,
	// the least recently used going first; default 1000.
	CacheSize int
	// QueryTimeout bounds the wait for a client's disco#info answer;
	// default 10 s.
	QueryTimeout time.Duration
}

// Deps are what the module builds on. Caps needs nothing: the type is
// there so that New has the shape of every module's constructor.
type Deps struct{}

// Features is the verified feature set of a client's caps. The zero
// Features has no feature. It is never changed once made, so it may be
// kept and shared.
type Features struct {
	vars []string // sorted, unique
}

func newFeatures(vars []string) Features {
	v := make([]string, len(vars))
	for i, s := range vars {
		v[i] = strings.Clone(s) // not the answer's memory
	}
	slices.Sort(v)
	return Features{vars: slices.Compact(v)}
}

// Has reports whether the set has feature.
func (f Features) Has(feature string) bool {
	_, ok := slices.BinarySearch(f.vars, feature)
	return ok
}

// Notify reports whether the client wants notifications of the PEP node
// node: whether it has the feature node+"+notify" (XEP-0163 §4).
func (f Features) Notify(node string) bool { return f.Has(node + "+notify") }

// All returns the features in sorted order.
func (f Features) All() iter.Seq[string] { return slices.Values(f.vars) }

// Len returns the number of features.
func (f Features) Len() int { return len(f.vars) }

// Listener is told that the features of the session full became known
// or changed (see Module.Watch).
type Listener func(ctx context.Context, full jid.JID, feats Features)

// Module follows the entity capabilities of local clients. Create it
// with New.
type Module struct {
	opts     Options
	host     server.Host
	log      *slog.Logger
	sessions server.SessionValue[*sessionCaps]
	watchers []Listener // set before Init
	// remoteWatchers are told of remote entities (remote.go); set
	// before Init.
	remoteWatchers []RemoteListener
	started        atomic.Bool

	mu    sync.Mutex
	cache lru
	// unknown holds, per ver, the sessions advertising it while its
	// features are not known; running the vers being asked for.
	unknown map[key]map[*server.Session]*sessionCaps
	running map[key]bool
	failed  map[failKey]time.Time
	remote  map[string]*remoteCaps // by remote full JID (remote.go)
	// remoteBare indexes remote by bare JID.
	remoteBare map[string][]*remoteCaps

	hooks hooks // for tests
}

// hooks let tests see queries start and end. They are called with the
// module's lock held and must not call it.
type hooks struct {
	started func(hash, ver string)                // asking for a ver begins
	done    func(hash, ver string, verified bool) // one client's answer was taken, or none came
}

// key names a verified feature set.
type key struct{ hash, ver string }

// failKey names an account whose answer for a ver failed.
type failKey struct {
	key
	account string
}

// sessionCaps is what the module knows of one session's caps. Its
// fields are guarded by Module.mu.
type sessionCaps struct {
	key   key    // the ver the session advertises; zero for none usable
	node  string // its caps node
	feats Features
	known bool // feats are key's verified features
	asked bool // the module waits for this session's answer
}

// New returns the caps module. It fails for a negative CacheSize or
// QueryTimeout.
func New(opts Options, deps Deps) (*Module, error) {
	if opts.CacheSize < 0 {
		return nil, fmt.Errorf("caps: negative CacheSize %d", opts.CacheSize)
	}
	if opts.QueryTimeout < 0 {
		return nil, fmt.Errorf("caps: negative QueryTimeout %v", opts.QueryTimeout)
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.QueryTimeout == 0 {
		opts.QueryTimeout = DefaultQueryTimeout
	}
	return &Module{
		opts:     opts,
		log:      slog.New(slog.DiscardHandler),
		sessions: server.NewSessionValue[*sessionCaps](),
		cache:    lru{max: opts.CacheSize, ll: list.New(), m: make(map[key]*list.Element)},
		unknown:  make(map[key]map[*server.Session]*sessionCaps),
		running:  make(map[key]bool),
		failed:   make(map[failKey]time.Time),
	}, nil
}

// Name returns "caps".
func (*Module) Name() string { return "caps" }

// Init keeps the host. Listeners can no longer be added afterwards.
func (m *Module) Init(ctx context.Context, h server.Host) error {
	m.host = h
	m.log = h.Logger()
	m.started.Store(true)
	return nil
}

// Watch has f told whenever the features of a local session's caps
// become known or change: at once, on the session's path, when its
// presence names a ver already verified (for a session's first
// presence, before the server counts the session as available), or
// from the module's goroutine once a client's answer for the ver
// verified (every session advertising that ver is told then). A
// session whose caps become unknown (legacy caps or caps of an
// unsupported hash, unavailable presence) is not told; Features reports
// false for it. f must not block for long. Call Watch before
// server.New; it panics afterwards.
func (m *Module) Watch(f func(ctx context.Context, full jid.JID, feats Features)) {
	if m.started.Load() {
		panic("caps: Watch called after the server was built")
	}
	m.watchers = append(m.watchers, f)
}

// Features returns the verified features of the caps that the local
// session full (a full JID) advertised in its last available presence,
// and whether they are known: false for an address without a session,
// a session that sent no caps, legacy caps or caps of an unsupported
// hash, caps not verified (yet), and after unavailable presence.
func (m *Module) Features(full jid.JID) (Features, bool) {
	if m.host == nil || full.Resourcepart() == "" {
		return Features{}, false
	}
	if !m.host.IsLocal(full.Domainpart()) {
		return m.remoteFeatures(full)
	}
	for _, s := range m.host.Sessions(full.Bare()) {
		if s.JID().Equal(full) {
			return m.SessionFeatures(s)
		}
	}
	return Features{}, false
}

// SessionFeatures is Features for a session at hand.
func (m *Module) SessionFeatures(s *server.Session) (Features, bool) {
	st, ok := m.sessions.Get(s)
	if !ok {
		return Features{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return st.feats, st.known
}

// StanzaRoutes reads the caps of the presence clients broadcast
// (available and unavailable presence without 'to'). The route never
// stops a presence.
func (m *Module) StanzaRoutes() []server.StanzaRoute {
	return []server.StanzaRoute{{
		Side: filter.Send, Kind: stanza.Presence, Types: []string{"", "unavailable"}, To: server.TargetSelf,
		Handler: server.RouteHandlerFunc(func(ctx context.Context, d *server.Delivery) error {
			m.presence(ctx, d.Session, d.Stanza)
			return nil
		}),
	}, m.remoteRoute()}
}

// SessionEnded forgets the session (its SessionValue goes by itself).
func (m *Module) SessionEnded(ctx context.Context, s *server.Session) {
	st, ok := m.sessions.Get(s)
	if !ok {
		return
	}
	m.mu.Lock()
	m.setLocked(s, st, key{}, "")
	m.mu.Unlock()
}

// presence takes a presence broadcast by sess.
func (m *Module) presence(ctx context.Context, sess *server.Session, p *stanza.Stanza) {
	if sess == nil || m.host == nil {
		return
	}
	st, ok := m.sessions.Get(sess)
	if p.Type == "unavailable" {
		if ok {
			m.mu.Lock()
			m.setLocked(sess, st, key{}, "")
			m.mu.Unlock()
		}
		return
	}
	c, found := capsinfo.FromStanza(p)
	if !found {
		return // no caps: those advertised before still stand
	}
	if !ok {
		st = m.sessions.GetOrSet(sess, &sessionCaps{})
		if _, ok := m.sessions.Get(sess); !ok {
			return // the session has ended
		}
	}
	m.mu.Lock()
	switch k := (key{c.Hash, c.Ver}); {
	case c.Legacy() || !capsinfo.Supported(c.Hash):
		// Legacy caps (no hash) cannot be verified, nor caps of a hash
		// we lack (XEP-0115 §5.4 and §12: ignore them): no features.
		m.setLocked(sess, st, key{}, "")
	case st.key != k:
		m.setLocked(sess, st, k, c.Node)
	case st.known:
		m.mu.Unlock()
		return // nothing new
	default:
		st.node = c.Node // not known yet: ask again if nothing stops it
	}
	m.mu.Unlock()
	m.update(ctx, sess)
}

// setLocked makes st advertise k (zero for nothing usable), features
// unknown.
func (m *Module) setLocked(sess *server.Session, st *sessionCaps, k key, node string) {
	if st.key != (key{}) && !st.known {
		if u := m.unknown[st.key]; u != nil {
			delete(u, sess)
			if len(u) == 0 {
				delete(m.unknown, st.key)
			}
		}
	}
	st.key, st.node, st.feats, st.known = k, node, Features{}, false
	if k != (key{}) {
		u := m.unknown[k]
		if u == nil {
			u = make(map[*server.Session]*sessionCaps)
			m.unknown[k] = u
		}
		u[sess] = st
	}
}

// update gives sess the features of the ver it advertises if they are
// known, and otherwise starts asking for them unless that runs already,
// the session is being asked for another ver (it is looked at again
// when that is over), or its account failed to answer for the ver
// lately.
func (m *Module) update(ctx context.Context, sess *server.Session) {
	st, ok := m.sessions.Get(sess)
	if !ok {
		return
	}
	m.mu.Lock()
	k := st.key
	if st.known || k == (key{}) {
		m.mu.Unlock()
		return
	}
	if f, ok := m.cache.get(k); ok {
		var told []jid.JID
		for s, sc := range m.unknown[k] {
			sc.feats, sc.known = f, true
			told = append(told, s.JID())
		}
		delete(m.unknown, k)
		m.mu.Unlock()
		m.notify(ctx, told, f)
		return
	}
	start := !m.running[k] && !st.asked && len(m.running) < maxPending && !m.failedLocked(k, sess.JID())
	if start {
		m.running[k] = true
		if m.hooks.started != nil {
			m.hooks.started(k.hash, k.ver)
		}
	}
	m.mu.Unlock()
	if start {
		m.host.Go(func(ctx context.Context) { m.run(ctx, k) })
	}
}

// run asks the sessions advertising k for its disco#info, one after the
// other, until an answer verifies (then every session advertising k
// gets the features, and the cache keeps them), maxAttempts sessions
// failed, or nobody is left to ask.
func (m *Module) run(ctx context.Context, k key) {
	tried := make(map[*server.Session]bool)
	for attempt := 0; ; attempt++ {
		m.mu.Lock()
		var target *server.Session
		var st *sessionCaps
		if attempt < maxAttempts && ctx.Err() == nil {
			for s, sc := range m.unknown[k] {
				if !tried[s] && !sc.asked && !m.failedLocked(k, s.JID()) {
					target, st = s, sc
					break
				}
			}
		}
		if target == nil {
			delete(m.running, k)
			m.mu.Unlock()
			return
		}
		tried[target] = true
		st.asked = true
		node := st.node
		m.mu.Unlock()

		feats, err := m.ask(ctx, target.JID().Domain(), target.JID(), node, k)

		m.mu.Lock()
		st.asked = false
		if m.hooks.done != nil && ctx.Err() == nil {
			m.hooks.done(k.hash, k.ver, err == nil)
		}
		if err == nil {
			m.cache.add(k, feats)
			delete(m.running, k)
			var told []jid.JID
			for s, sc := range m.unknown[k] {
				sc.feats, sc.known = feats, true
				told = append(told, s.JID())
			}
			delete(m.unknown, k)
			m.mu.Unlock()
			m.notify(ctx, told, feats)
			m.update(ctx, target) // it may advertise another ver by now
			return
		}
		if _, alive := m.sessions.Get(target); alive && ctx.Err() == nil {
			// A session that ended meanwhile did not fail to answer.
			m.failLocked(k, target.JID())
			m.log.Debug("caps not verified", "hash", k.hash, "reason", reason(err))
		}
		m.mu.Unlock()
		m.update(ctx, target)
	}
}

// Reasons a client's answer is not taken.
var (
	errRefused  = errors.New("caps: disco#info refused")
	errNoQuery  = errors.New("caps: disco#info result without <query/>")
	errMismatch = errors.New("caps: disco#info does not hash to the ver")
	errTooLarge = errors.New("caps: too many features")
)

// reason names err for the log, without anything the client wrote.
func reason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, capsinfo.ErrMalformed):
		return "ill-formed"
	case errors.Is(err, errRefused):
		return "error"
	case errors.Is(err, errNoQuery):
		return "no query"
	case errors.Is(err, errMismatch):
		return "mismatch"
	case errors.Is(err, errTooLarge):
		return "too large"
	}
	return "failed"
}

// ask sends full, from the local domain from, a disco#info query for node#ver and
// returns the features of its answer if the answer verifies.
func (m *Module) ask(ctx context.Context, from, full jid.JID, node string, k key) (Features, error) {
	ctx, cancel := context.WithTimeout(ctx, m.opts.QueryTimeout)
	defer cancel()
	iq := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Get, From: from, To: full}
	iq.AppendChild(stanza.Elem(xml.Name{Space: capsinfo.NSDiscoInfo, Local: "query"}, []xml.Attr{stanza.Attr("node", node+"#"+k.ver)}))
	res, err := m.host.Request(ctx, iq)
	if err != nil {
		return Features{}, err
	}
	if res.Type != stanza.Result {
		return Features{}, errRefused
	}
	el, ok := res.ChildElement(xml.Name{Space: capsinfo.NSDiscoInfo, Local: "query"})
	if !ok {
		return Features{}, errNoQuery
	}
	in, err := capsinfo.Parse(el)
	if err != nil {
		return Features{}, err
	}
	if !in.Verify(k.hash, k.ver) {
		return Features{}, errMismatch
	}
	size := 0
	for _, f := range in.Features {
		size += len(f)
	}
	if len(in.Features) > maxFeatures || size > maxFeatureBytes {
		return Features{}, errTooLarge
	}
	return newFeatures(in.Features), nil
}

// notify tells the listeners of each of sessions.
func (m *Module) notify(ctx context.Context, sessions []jid.JID, f Features) {
	for _, full := range sessions {
		for _, w := range m.watchers {
			w(ctx, full, f)
		}
	}
}

// failedLocked reports whether the account of full failed to answer for
// k within failureTTL.
func (m *Module) failedLocked(k key, full jid.JID) bool {
	at, ok := m.failed[failKey{k, full.Bare().String()}]
	return ok && time.Since(at) < failureTTL
}

// failLocked remembers that the account of full failed to answer for k,
// forgetting expired failures, or else the oldest, to stay within
// maxFailures.
func (m *Module) failLocked(k key, full jid.JID) {
	if len(m.failed) >= maxFailures {
		var oldest failKey
		var oldestAt time.Time
		for fk, at := range m.failed {
			switch {
			case time.Since(at) >= failureTTL:
				delete(m.failed, fk)
			case oldestAt.IsZero() || at.Before(oldestAt):
				oldest, oldestAt = fk, at
			}
		}
		if len(m.failed) >= maxFailures {
			delete(m.failed, oldest)
		}
	}
	m.failed[failKey{k, full.Bare().String()}] = time.Now()
}

// lru is the cache of verified feature sets, the most recently used
// first. It is guarded by Module.mu.
type lru struct {
	max int
	ll  *list.List // of *entry
	m   map[key]*list.Element
}

type entry struct {
	k key
	f Features
}

func (c *lru) get(k key) (Features, bool) {
	e, ok := c.m[k]
	if !ok {
		return Features{}, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*entry).f, true
}

func (c *lru) add(k key, f Features) {
	if e, ok := c.m[k]; ok {
		e.Value.(*entry).f = f
		c.ll.MoveToFront(e)
		return
	}
	c.m[k] = c.ll.PushFront(&entry{k: k, f: f})
	for c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.m, last.Value.(*entry).k)
	}
}

var (
	_ server.Module        = (*Module)(nil)
	_ server.Initializer   = (*Module)(nil)
	_ server.RouteProvider = (*Module)(nil)
)

package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/storage"
)

// ErrHandled is returned by a RouteHandler that has dealt with a stanza.
var ErrHandled = errors.New("server: stanza handled")

// ErrServerClosed is returned by the Serve methods after Shutdown.
var ErrServerClosed = errors.New("server: closed")

// ErrAlreadyAnswered is returned by a ResponseWriter used twice.
var ErrAlreadyAnswered = errors.New("server: iq already answered")

type routeKey struct {
	typ     mstanza.IQType
	payload xmlName
	to      Target
}

type xmlName struct{ space, local string }

type routeEntry struct {
	handler IQHandler
	module  string
}

// Server is an XMPP server. Create it with New.
type Server struct {
	cfg     Config
	limits  Limits
	log     *slog.Logger
	domains []jid.JID
	local   map[string]bool

	accounts storage.Accounts
	decoys   *decoys // credentials shown for unknown names; see decoy.go
	mechs    offered // SASL mechanisms offered; see sasl.go

	// Frozen tables, built by New.
	iqRoutes     map[routeKey]routeEntry
	features     []FeatureProvider
	identities   []IdentityProvider
	forms        []FormProvider
	services     map[string]*service   // full service domain → service; see service.go
	components   map[string]*component // external components by domain; see component.go
	serviceList  []Service
	streamFeats  []StreamFeature
	steps        []step          // stream negotiation; see negotiate.go
	iqSteps      [nStates]bool   // whether a state offers steps taking iqs
	featureCache [nStates][]byte // the features of states that do not depend on the connection
	httpRoutes   []HTTPRoute
	httpMux      *http.ServeMux
	caps         string // XEP-0115 verification string of the server
	starters     []SessionStarter
	resumers     []SessionResumer
	bind2        bind2Table  // XEP-0386 inline features; see bind2.go
	fast         *fastTokens // XEP-0484 tokens, nil without storage.ServiceData; see fast.go
	enders       []SessionEnder
	accountLs    []AccountListener
	filters      []filter.Filter // Config.Filters, then the modules' by priority
	undelivered  []UndeliveredHandler
	routes       [4]routeTable // StanzaRoutes by side and kind; see route.go
	availableLs  []AvailabilityListener
	nodes        []NodeProvider
	owners       []namedOwner
	closers      []Closer
	expirers     []namedExpirer // modules, then the service data; see janitor.go
	retention    Retention      // with defaults
	janitorMu    sync.Mutex     // one janitor run at a time
	metrics      serverMetrics  // nil metrics when Config.Metrics is; see metrics.go

	sessions *registry
	s2s      *federation // nil without Config.S2S; see s2s.go
	deleting sync.Map    // bare JIDs of accounts DeleteUser is deleting
	router   *router

	requests requests // iqs sent by Host.Request, waiting for answers

	smMu  sync.Mutex
	smIDs map[string]*Session // XEP-0198 resumption id → session

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // module goroutines
	connWG sync.WaitGroup // connections

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool

	getCert     func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	tlsStartTLS *tls.Config
	tlsDirect   *tls.Config
	// leafs remembers the certificate chosen in each TLS handshake, by
	// net.Conn, until the handshake ends (tls-server-end-point binding).
	leafs sync.Map
	// rateClock is the read rate limit's clock, under mu; nil is the real
	// one (tests drive their own).
	rateClock clock
}

type namedOwner struct {
	name  string
	owner UserDataOwner
}

// New validates cfg, inspects the modules and initialises them. An error
// names the module at fault.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if len(cfg.Domains) == 0 {
		return nil, errors.New("server: no domains configured")
	}
	if cfg.RemovalGrace < 0 {
		return nil, fmt.Errorf("server: negative RemovalGrace %v", cfg.RemovalGrace)
	}
	if cfg.Accounts == nil {
		return nil, errors.New("server: no account store configured")
	}
	mechs, err := offerMechanisms(cfg.SCRAMHashes)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		limits:    cfg.Limits.withDefaults(),
		log:       cfg.Logger,
		local:     make(map[string]bool),
		accounts:  cfg.Accounts,
		iqRoutes:  make(map[routeKey]routeEntry),
		services:  make(map[string]*service),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		mechs:     mechs,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = slog.New(PrivacyHandler(s.log.Handler()))
	for _, d := range cfg.Domains {
		j, err := jid.Parse(d)
		if err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
			return nil, fmt.Errorf("server: invalid domain %q", d)
		}
		if s.local[j.Domainpart()] {
			return nil, fmt.Errorf("server: domain %q listed twice", d)
		}
		s.local[j.Domainpart()] = true
		s.domains = append(s.domains, j)
	}
	if cfg.TLS != nil {
		s.getCert = certSelector(cfg.TLS)
		s.tlsConfigs()
	}
	d, err := newDecoys(ctx, cfg.Accounts, cfg.SCRAMIterations)
	if err != nil {
		return nil, err
	}
	s.decoys = d
	if s.fast, err = newFASTTokens(ctx, cfg.Accounts, cfg.FASTKey); err != nil {
		return nil, err
	}
	s.sessions = newRegistry()
	s.router = &router{srv: s}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.S2S != nil {
		if cfg.Remote != nil {
			s.cancel()
			return nil, errors.New("server: both Remote and S2S are set")
		}
		if s.s2s, err = newFederation(s, *cfg.S2S); err != nil {
			s.cancel()
			return nil, err
		}
		s.cfg.Remote = s.s2s
		s.s2s.registerMetrics(cfg.Metrics)
	}

	names := make(map[string]bool)
	for _, m := range cfg.Modules {
		if m == nil {
			return nil, errors.New("server: nil module")
		}
		name := m.Name()
		if name == "" {
			return nil, fmt.Errorf("server: module of type %T has an empty name", m)
		}
		if names[name] {
			return nil, fmt.Errorf("server: two modules are named %q", name)
		}
		names[name] = true
		if err := s.addModule(m); err != nil {
			return nil, err
		}
	}
	if err := s.addComponents(); err != nil {
		s.cancel()
		return nil, err
	}
	s.buildFilters()
	s.sortRoutes()
	s.addBuiltinRoutes()
	if err := s.buildHTTPMux(); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.keepalive(s.ctx)
	}()
	s.caps = s.capsVer()
	if err := s.buildSteps(); err != nil {
		s.cancel()
		return nil, err
	}
	if err := s.buildJanitor(); err != nil {
		s.cancel()
		return nil, err
	}
	s.buildMetrics()
	for _, m := range cfg.Modules {
		if in, ok := m.(Initializer); ok {
			if err := in.Init(ctx, &host{srv: s, module: m.Name()}); err != nil {
				s.cancel()
				return nil, fmt.Errorf("server: module %s: %w", m.Name(), err)
			}
		}
	}
	if s.retention.Interval > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.janitor(s.ctx)
		}()
	}
	return s, nil
}

func (s *Server) addModule(m Module) error {
	name := m.Name()
	if p, ok := m.(IQProvider); ok {
		for _, r := range p.IQRoutes() {
			if err := s.addRoute(name, r); err != nil {
				return err
			}
		}
	}
	if d, ok := m.(UserDataDeclarer); ok && len(d.UserData()) > 0 {
		if _, ok := m.(UserDataOwner); !ok {
			return fmt.Errorf("server: module %s keeps user data (%v) but does not implement UserDataOwner, so deleting an account would leave it behind", name, d.UserData())
		}
	}
	if o, ok := m.(UserDataOwner); ok {
		s.owners = append(s.owners, namedOwner{name: name, owner: o})
	}
	addIf(&s.features, m)
	addIf(&s.identities, m)
	addIf(&s.forms, m)
	if p, ok := m.(ServiceProvider); ok {
		for _, svc := range p.Services() {
			if err := s.addService(name, svc); err != nil {
				return err
			}
		}
	}
	if p, ok := m.(StreamFeatureProvider); ok {
		for _, f := range p.StreamFeatures() {
			for _, r := range f.IQRoutes {
				if r.Handler == nil {
					return fmt.Errorf("server: module %s: stream feature iq %s has no handler", name, r.Payload.Local)
				}
				if r.Type != mstanza.GetIQ && r.Type != mstanza.SetIQ {
					return fmt.Errorf("server: module %s: iq routes take type get or set, not %q", name, r.Type)
				}
			}
			f.module = name
			s.streamFeats = append(s.streamFeats, f)
		}
	}
	if p, ok := m.(HTTPProvider); ok {
		for _, r := range p.HTTPRoutes() {
			r.module = name
			s.httpRoutes = append(s.httpRoutes, r)
		}
	}
	addIf(&s.starters, m)
	addIf(&s.resumers, m)
	addIf(&s.bind2.enablers, m)
	addIf(&s.enders, m)
	addIf(&s.accountLs, m)
	addIf(&s.undelivered, m)
	if p, ok := m.(RouteProvider); ok {
		for _, r := range p.StanzaRoutes() {
			if err := s.addStanzaRoute(name, r); err != nil {
				return err
			}
		}
	}
	addIf(&s.availableLs, m)
	addIf(&s.nodes, m)
	addIf(&s.closers, m)
	return nil
}

// addIf appends m to dst if m implements the optional interface T.
func addIf[T any](dst *[]T, m Module) {
	if x, ok := m.(T); ok {
		*dst = append(*dst, x)
	}
}

func (s *Server) addRoute(module string, r IQRoute) error {
	return addRouteTo(s.iqRoutes, module, r)
}

// addRouteTo checks r and adds it to the table; a route already there
// is an error naming both modules.
func addRouteTo(table map[routeKey]routeEntry, module string, r IQRoute) error {
	if r.Handler == nil {
		return fmt.Errorf("server: module %s: iq route %s %s has no handler", module, r.Type, r.Payload.Local)
	}
	if r.Type != mstanza.GetIQ && r.Type != mstanza.SetIQ {
		return fmt.Errorf("server: module %s: iq routes take type get or set, not %q", module, r.Type)
	}
	if r.To < TargetHost || r.To > TargetBare {
		return fmt.Errorf("server: module %s: iq route %s has no target", module, r.Payload.Local)
	}
	k := routeKey{typ: r.Type, payload: xmlName{r.Payload.Space, r.Payload.Local}, to: r.To}
	if prev, dup := table[k]; dup {
		return fmt.Errorf("server: modules %s and %s both handle iq %s {%s}%s to %s", prev.module, module, r.Type, r.Payload.Space, r.Payload.Local, r.To)
	}
	table[k] = routeEntry{handler: r.Handler, module: module}
	return nil
}

// buildHTTPMux registers the modules' HTTP routes; a clash names both
// modules.
func (s *Server) buildHTTPMux() (err error) {
	s.httpMux = http.NewServeMux()
	owner := make(map[string]string)
	for _, r := range s.httpRoutes {
		if prev, dup := owner[r.Pattern]; dup {
			return fmt.Errorf("server: modules %s and %s both serve HTTP %q", prev, r.module, r.Pattern)
		}
		owner[r.Pattern] = r.module
		if r.Handler == nil {
			return fmt.Errorf("server: module %s: HTTP route %q has no handler", r.module, r.Pattern)
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("server: module %s: HTTP route %q: %v", r.module, r.Pattern, p)
				}
			}()
			s.httpMux.Handle(r.Pattern, r.Handler)
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// Domains returns the virtual hosts.
func (s *Server) Domains() []jid.JID { return append([]jid.JID(nil), s.domains...) }

// IsLocal reports whether domain is a virtual host of this server.
func (s *Server) IsLocal(domain string) bool { return s.local[domain] }

// Router returns the server's router.
func (s *Server) Router() Router { return s.router }

// HTTPRoutes returns the HTTP handlers modules provide, for an HTTP
// listener the embedding program runs.
func (s *Server) HTTPRoutes() []HTTPRoute { return append([]HTTPRoute(nil), s.httpRoutes...) }

// HTTPHandler returns a handler serving every module's HTTP routes, to run
// with net/http on a listener of the embedding program's choice. It is
// built by New; patterns that clash make New fail.
func (s *Server) HTTPHandler() http.Handler { return s.httpMux }

// UserDataKinds lists, per module, the kinds of per-user data it declares,
// for a privacy report.
func (s *Server) UserDataKinds() map[string][]string {
	out := make(map[string][]string)
	for _, m := range s.cfg.Modules {
		if d, ok := m.(UserDataDeclarer); ok {
			out[m.Name()] = d.UserData()
		}
	}
	return out
}

// SessionCount returns the number of bound sessions.
func (s *Server) SessionCount() int { return s.sessions.count() }

// Online reports whether the account user (a bare JID) has a bound
// session, including one waiting for its client to resume it.
func (s *Server) Online(user jid.JID) bool {
	return len(s.sessions.userSessions(user.Bare().String())) > 0
}

// Shutdown stops accepting connections, closes every stream with a
// <system-shutdown/> stream error after its queued stanzas are written,
// waits for connections and module goroutines (or ctx), then closes the
// modules in reverse order.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if s.s2s != nil {
		s.s2s.shutdown()
	}

	for _, c := range conns {
		c.shutdown(streamErr(condSystemShutdown, ""))
	}
	// Sessions waiting for resumption end now: what their clients did not
	// acknowledge is redelivered (offline storage) while modules still run.
	s.smMu.Lock()
	var waiting []*Session
	for _, sess := range s.smIDs {
		waiting = append(waiting, sess)
	}
	s.smMu.Unlock()
	for _, sess := range waiting {
		sess.qmu.Lock()
		detached := sess.conn == nil && !sess.resuming && !sess.closed
		if detached {
			sess.closed = true
		}
		sess.qmu.Unlock()
		if detached {
			s.endDetached(sess)
		}
	}
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, c := range conns {
			c.raw.Close()
		}
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		if cerr := s.closers[i].Close(ctx); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// Close closes all connections at once without waiting; see Shutdown for
// a graceful stop.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// sortedFeatures collects disco features for target t.
func (s *Server) sortedFeatures(t Target) []string {
	seen := make(map[string]bool)
	var out []string
	add := func(f string) {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, f := range builtinFeatures(t) {
		add(f)
	}
	for _, p := range s.features {
		for _, f := range p.Features(t) {
			add(f)
		}
	}
	sort.Strings(out)
	return out
}

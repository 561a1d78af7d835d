package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kiez-im/kiez/filter/ipfilter"
	"github.com/kiez-im/kiez/modules/invite"
	"github.com/kiez-im/kiez/modules/register"
	"github.com/kiez-im/kiez/server"
)

// shutdownTimeout bounds the graceful stop after SIGINT or SIGTERM.
const shutdownTimeout = 10 * time.Second

// newLogger builds the process logger, writing to w.
func newLogger(c logConfig, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.Level) // validated with the config
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// No user or client addresses in the log, whatever a library logs.
	return slog.New(server.PrivacyHandler(h))
}

// certSource is where handshakes get their certificate: PEM files
// (configured or self-signed) or ACME.
type certSource struct {
	get   func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	store *certStore // nil with ACME
	acme  *acmeCerts // nil without
	kind  string     // for the log
}

// setupTLS prepares the certificates: ACME if enabled, else the configured
// files, else self-signed ones kept under data_dir/tls.
func setupTLS(cfg *config, log *slog.Logger) (*certSource, error) {
	if cfg.TLS.ACME.Enabled {
		a := newACME(cfg)
		return &certSource{get: a.GetCertificate, acme: a, kind: "acme"}, nil
	}
	files, kind := cfg.TLS.Certificates, "files"
	if len(files) == 0 {
		var err error
		files, err = selfSignedFiles(filepath.Join(cfg.DataDir, "tls"), cfg.Domains, time.Now(), log)
		if err != nil {
			return nil, err
		}
		kind = "self-signed"
	}
	store, err := newCertStore(files)
	if err != nil {
		return nil, err
	}
	for _, w := range store.check(cfg.Domains, time.Now()) {
		log.Warn(w)
	}
	return &certSource{get: store.GetCertificate, store: store, kind: kind}, nil
}

// reload re-reads the PEM files, keeping the old certificates on failure.
func (c *certSource) reload(domains []string, log *slog.Logger) {
	if c.store == nil {
		log.Info("SIGHUP: certificates come from ACME and renew themselves; nothing to reload")
		return
	}
	if err := c.store.reload(); err != nil {
		log.Error("reloading certificates failed; still serving the previous ones", "err", err)
		return
	}
	log.Info("certificates reloaded", "count", len(c.store.files))
	for _, w := range c.store.check(domains, time.Now()) {
		log.Warn(w)
	}
}

// displayPath shows a relative path as ./path, as an admin would type it.
func displayPath(p string) string {
	if filepath.IsAbs(p) || strings.HasPrefix(p, ".") {
		return p
	}
	return "." + string(filepath.Separator) + p
}

// unwrapAll returns the innermost error, for messages that name the
// file themselves.
func unwrapAll(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// newServer builds the server from the configuration, and returns it as
// the admin commands' target: with its IP filter (the server's
// ConnFilter), for the ban commands, and its invite module, for invite.
// tlsCfg is nil for the admin commands, which do not listen. opts change
// the server.Config last: serve adds what depends on its listeners.
func newServer(ctx context.Context, cfg *config, accounts kiezStore, log *slog.Logger, tlsCfg *tls.Config, opts ...func(*server.Config)) (adminTarget, error) {
	// The upload directory is opened with the service switched off too,
	// so that the files kept from before go with their accounts and
	// expire (upload.Leftovers).
	files, err := cfg.openFiles()
	if err != nil {
		return adminTarget{}, err
	}
	fopts, err := cfg.filterOptions()
	if err != nil {
		return adminTarget{}, err
	}
	fopts.Logger = log
	ipf, err := ipfilter.New(fopts, accounts)
	if err != nil {
		return adminTarget{}, err
	}
	// Registration creates accounts through the server, which exists only
	// once New has returned; it is asked at each registration.
	var srv *server.Server
	mods, err := cfg.modules(accounts, files, func() register.Accounts { return srv }, ipf.AllowRegistration)
	if err != nil {
		return adminTarget{}, err
	}
	// The server's janitor expires the data of every module, and of the
	// switched-off ones with these; see housekeeping.go.
	mods = append(mods, leftovers(cfg, accounts)...)
	// The admin commands issue and check no FAST token (revoking deletes
	// records): they get a key of their own, thrown away, so that they
	// neither need fast.key nor make it (run as root, they would make it
	// root's, and unreadable to the kiezd user). serve sets the key of
	// fast.key (opts).
	adminKey := make([]byte, fastKeyLen)
	rand.Read(adminKey)
	sc := server.Config{
		FASTKey:         adminKey,
		ConnFilter:      ipf,
		Domains:         cfg.Domains,
		TLS:             tlsCfg,
		Accounts:        accounts,
		Modules:         mods,
		Logger:          log,
		Limits:          cfg.limits(),
		SCRAMIterations: cfg.SCRAMIterations,
		SCRAMHashes:     cfg.scramHashes(),
		RemovalGrace:    time.Duration(cfg.Registration.RemovalGrace),
		S2S:             cfg.s2sOptions(),
	}
	for _, o := range opts {
		o(&sc)
	}
	if sc.Components, err = cfg.components(); err != nil {
		return adminTarget{}, err
	}
	srv, err = server.New(ctx, sc)
	if err != nil {
		return adminTarget{}, errors.New(strings.TrimPrefix(err.Error(), "server: "))
	}
	t := adminTarget{cfg: cfg, srv: srv, accounts: accounts, filter: ipf}
	// The invite module registration redeems with, if stock built one
	// (it does whenever registration is on).
	for _, m := range mods {
		if inv, ok := m.(*invite.Module); ok {
			t.invites = inv
		}
	}
	return t, nil
}

// listen opens a TCP listener for XMPP with an error an admin can act on.
func listen(addr string) (net.Listener, error) {
	return listenWith(server.Listen, addr)
}

// listenHTTP opens a TCP listener for HTTP, with the kernel's keepalive
// probes on: an HTTP client that vanished in the middle of a request (a
// phone that lost its network) is noticed, and its request ends.
func listenHTTP(addr string) (net.Listener, error) {
	return listenWith(func(ctx context.Context, addr string) (net.Listener, error) {
		var lc net.ListenConfig
		return lc.Listen(ctx, "tcp", addr)
	}, addr)
}

func listenWith(open func(context.Context, string) (net.Listener, error), addr string) (net.Listener, error) {
	ln, err := open(context.Background(), addr)
	if err == nil {
		return ln, nil
	}
	msg := unwrapAll(err).Error()
	if errors.Is(err, syscall.EACCES) {
		msg += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
	}
	return nil, fmt.Errorf("cannot listen on %s: %s", addr, msg)
}

// listeners are everything serve accepts connections on.
type listeners struct {
	c2s, direct []net.Listener
	s2s         []net.Listener // federation
	// https and plainHTTP serve the modules' HTTP routes.
	https, plainHTTP []net.Listener
	alpn, http       net.Listener // ACME challenges, or nil
	metrics          []net.Listener
	components       []net.Listener // external components (XEP-0114)
}

func (l *listeners) all() []net.Listener {
	var all []net.Listener
	for _, lns := range [][]net.Listener{l.c2s, l.direct, l.https, l.plainHTTP, l.metrics, l.components} {
		all = append(all, lns...)
	}
	for _, ln := range []net.Listener{l.alpn, l.http} {
		if ln != nil {
			all = append(all, ln)
		}
	}
	all = append(all, l.s2s...)
	return all
}

// filter puts ipf in front of the HTTPS listeners, as the server puts it
// in front of its own. The plain HTTP listeners are left alone: they are
// for a reverse proxy, whose address is all they would see, so limits
// there would throttle every client behind it together (the proxy can
// limit by client address itself). The ACME listeners stay open to the
// certificate authority.
func (l *listeners) filter(ipf *ipfilter.Filter) {
	for i, ln := range l.https {
		l.https[i] = filteredListener{Listener: ln, filter: ipf}
	}
}

// filteredListener closes at once the connections its filter refuses,
// and tells it when the others end. HTTP clients never authenticate, so
// a connection counts as an unauthenticated one until it closes.
type filteredListener struct {
	net.Listener
	filter *ipfilter.Filter
}

func (l filteredListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var addr netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			addr = ta.AddrPort().Addr()
		}
		if ok, _ := l.filter.Admit(addr); !ok {
			c.Close()
			continue
		}
		return &filteredConn{Conn: c, closed: sync.OnceFunc(func() { l.filter.Closed(addr) })}, nil
	}
}

// filteredConn tells the filter once when it closes.
type filteredConn struct {
	net.Conn
	closed func()
}

// Close tells the filter first, then closes the connection: by the time
// the client sees the TCP connection closed, it no longer counts against
// max_unauthenticated, so a client that connects again at once is not
// refused for a connection that has ended.
func (c *filteredConn) Close() error {
	c.closed()
	return c.Conn.Close()
}

// ReadFrom keeps the TCP connection's sendfile for plain HTTP.
func (c *filteredConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

func (l *listeners) close() {
	for _, ln := range l.all() {
		ln.Close()
	}
}

// listenAll binds every configured address, or none.
func listenAll(cfg *config) (*listeners, error) {
	l := &listeners{}
	addWith := func(open func(string) (net.Listener, error), addr string) (net.Listener, error) {
		ln, err := open(addr)
		if err != nil {
			l.close()
		}
		return ln, err
	}
	add := func(addr string) (net.Listener, error) { return addWith(listen, addr) }
	for _, a := range cfg.Listen.C2S {
		ln, err := add(a)
		if err != nil {
			return nil, err
		}
		l.c2s = append(l.c2s, ln)
	}
	for _, a := range cfg.Listen.DirectTLS {
		ln, err := add(a)
		if err != nil {
			return nil, err
		}
		l.direct = append(l.direct, ln)
	}
	for _, a := range cfg.S2S.Listen {
		ln, err := add(a)
		if err != nil {
			return nil, err
		}
		l.s2s = append(l.s2s, ln)
	}
	for _, a := range cfg.Listen.HTTPS {
		ln, err := addWith(listenHTTP, a)
		if err != nil {
			return nil, err
		}
		l.https = append(l.https, ln)
	}
	for _, a := range cfg.Listen.HTTP {
		ln, err := addWith(listenHTTP, a)
		if err != nil {
			return nil, err
		}
		l.plainHTTP = append(l.plainHTTP, ln)
	}
	for _, a := range cfg.Metrics.Listen {
		ln, err := addWith(listenHTTP, a)
		if err != nil {
			return nil, err
		}
		l.metrics = append(l.metrics, ln)
	}
	if cfg.componentsOn() {
		for _, a := range cfg.Components.Listen {
			ln, err := add(a)
			if err != nil {
				return nil, err
			}
			l.components = append(l.components, ln)
		}
	}
	if a := cfg.TLS.ACME; a.Enabled {
		var err error
		if a.Listen != "" {
			if l.alpn, err = add(a.Listen); err != nil {
				return nil, err
			}
		}
		if a.HTTPListen != "" {
			if l.http, err = add(a.HTTPListen); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// serve runs the server until SIGINT, SIGTERM or ctx ends, reloading the
// certificates on SIGHUP.
func serve(ctx context.Context, cfg *config, e env) error {
	log := newLogger(cfg.Log, e.stderr)
	certs, err := setupTLS(cfg, log)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	lns, err := listenAll(cfg)
	if err != nil {
		return err
	}
	for _, w := range cfg.warnings() {
		log.Warn(w)
	}
	tlsCfg := &tls.Config{GetCertificate: certs.get}
	httpsPort := ""
	if len(lns.https) > 0 {
		_, httpsPort, _ = net.SplitHostPort(lns.https[0].Addr().String())
	}
	reg := newMetricsRegistry(cfg)
	fastKey, err := cfg.fastKey()
	if err != nil {
		return err
	}
	target, err := newServer(ctx, cfg, store, log, tlsCfg, func(c *server.Config) {
		c.FASTKey = fastKey
		c.HTTPBaseURL = cfg.httpBaseURL(httpsPort)
		c.Modules = append(c.Modules, e.modules...)
		c.Metrics = reg
	})
	if err != nil {
		lns.close()
		return err
	}
	srv, ipf := target.srv, target.filter
	lns.filter(ipf)
	ln, err := listenControl(cfg.socketPath())
	if err != nil {
		srv.Close()
		lns.close()
		return err
	}
	// The control socket bans through the very filter the server asks,
	// and invites through the invite module registration redeems with.
	ctl := &controlServer{ln: ln, path: cfg.socketPath(), target: target, log: log}
	cctx, stopControl := context.WithCancel(ctx)
	defer stopControl()
	go ctl.serve(cctx)
	hctx, stopHousekeeping := context.WithCancel(ctx)
	housekept := make(chan struct{})
	go func() {
		defer close(housekept)
		h := &housekeeper{cfg: cfg, srv: srv, store: store, log: log}
		h.run(hctx)
	}()

	var sigs <-chan os.Signal
	if e.signals != nil {
		var stop func()
		sigs, stop = e.signals()
		defer stop()
	}

	log.Info("kiezd starting", "domains", strings.Join(cfg.Domains, ","), "data_dir", cfg.DataDir, "storage", cfg.Storage.Backend, "certificates", certs.kind)
	errc := make(chan error, len(lns.all()))
	var b bound
	for _, ln := range lns.c2s {
		log.Info("listening", "for", "c2s (STARTTLS)", "addr", ln.Addr().String())
		b.C2S = append(b.C2S, ln.Addr())
		go func() { errc <- srv.ServeC2S(ln) }()
	}
	for _, ln := range lns.direct {
		log.Info("listening", "for", "c2s (direct TLS, XEP-0368)", "addr", ln.Addr().String())
		b.DirectTLS = append(b.DirectTLS, ln.Addr())
		go func() { errc <- srv.ServeDirectTLS(ln) }()
	}
	for _, ln := range lns.s2s {
		log.Info("listening", "for", "s2s (federation, STARTTLS)", "addr", ln.Addr().String())
		b.S2S = append(b.S2S, ln.Addr())
		go func() { errc <- srv.ServeS2S(ln) }()
	}
	var web *http.Server // the modules' HTTP routes
	if len(lns.https)+len(lns.plainHTTP) > 0 {
		web = newHTTPServer(cfg.HTTP, httpHandler(cfg.HTTP, srv), tlsCfg, log)
	}
	for _, ln := range lns.https {
		log.Info("listening", "for", "HTTPS (file upload and other HTTP services)", "addr", ln.Addr().String())
		b.HTTPS = append(b.HTTPS, ln.Addr())
		go func() { errc <- web.ServeTLS(ln, "", "") }()
	}
	for _, ln := range lns.plainHTTP {
		log.Info("listening", "for", "HTTP behind a reverse proxy", "addr", ln.Addr().String())
		b.HTTP = append(b.HTTP, ln.Addr())
		go func() { errc <- web.Serve(ln) }()
	}
	for _, ln := range lns.components {
		log.Info("listening", "for", "external components (XEP-0114)", "addr", ln.Addr().String())
		b.Components = append(b.Components, ln.Addr())
		go func() { errc <- srv.ServeComponents(ln) }()
	}
	var metricsSrv *http.Server
	if len(lns.metrics) > 0 {
		metricsSrv = newMetricsServer(reg, log)
	}
	for _, ln := range lns.metrics {
		log.Info("listening", "for", "metrics (GET /metrics, Prometheus text format)", "addr", ln.Addr().String())
		b.Metrics = append(b.Metrics, ln.Addr())
		go func() { errc <- metricsSrv.Serve(ln) }()
	}
	var httpSrv *http.Server
	if certs.acme != nil {
		if lns.alpn != nil {
			log.Info("listening", "for", "ACME TLS-ALPN-01 challenges", "addr", lns.alpn.Addr().String())
			b.ACMETLS = lns.alpn.Addr()
			go certs.acme.serveTLSALPN(lns.alpn)
		}
		if lns.http != nil {
			log.Info("listening", "for", "ACME HTTP-01 challenges", "addr", lns.http.Addr().String())
			b.ACMEHTTP = lns.http.Addr()
			httpSrv = certs.acme.httpServer()
			go httpSrv.Serve(lns.http)
		}
		certs.acme.prefetch(ctx, log)
	}
	log.Info("listening", "for", "admin commands (adduser, passwd, deluser, users, invite, ban, unban, bans)", "socket", ctl.path)
	if users, err := srv.Users(ctx, ""); err == nil && len(users) == 0 {
		firstStart(ctx, cfg, target, log)
	}
	if e.ready != nil {
		e.ready(b)
	}

	var runErr error
wait:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				certs.reload(cfg.Domains, log)
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			break wait
		case <-ctx.Done():
			log.Info("shutting down")
			break wait
		case err := <-errc:
			log.Error("a listener failed; shutting down", "err", err)
			runErr = fmt.Errorf("listener failed: %w", err)
			break wait
		}
	}
	ctl.close()
	stopHousekeeping()
	<-housekept
	if web != nil {
		// HTTP first: its handlers belong to modules, which close last.
		wctx, wcancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		if err := web.Shutdown(wctx); err != nil {
			log.Warn("HTTP requests still running at shutdown were cut off")
			web.Close()
		}
		wcancel()
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if lns.alpn != nil {
		lns.alpn.Close()
	}
	if httpSrv != nil {
		httpSrv.Shutdown(sctx)
	}
	if metricsSrv != nil {
		metricsSrv.Shutdown(sctx)
	}
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not finish cleanly", "err", err)
	}
	log.Info("kiezd stopped")
	return runErr
}

// firstStart tells how to create the first account of a server without
// any: with the invite policy, through a one-time invitation it creates
// for the administrator; with the open one, by registering; else with
// adduser.
func firstStart(ctx context.Context, cfg *config, t adminTarget, log *slog.Logger) {
	switch register.Policy(cfg.Registration.Policy) {
	case register.PolicyOpen:
		log.Warn("there are no accounts yet; registration is open: register the first in your client, or create it with: " + adduserHint(cfg))
		return
	case register.PolicyInvite:
		if t.invites == nil {
			break
		}
		inv, err := t.invites.Create(ctx, invite.CreateOptions{Domain: cfg.Domains[0]})
		if err != nil {
			log.Error("creating the first invitation failed", "err", err)
			break
		}
		// The URI and URL carry the domain only, no user address.
		how := "open " + inv.LandingURL + " or the URI " + inv.URI
		if inv.LandingURL == "" {
			how = "open the URI " + inv.URI
		}
		log.Warn("there are no accounts yet; create the first with a one-time invitation: "+how+" in your client, or with: "+adduserHint(cfg),
			"expires", inv.Expires.UTC().Format(banTimeLayout))
		return
	}
	log.Warn("there are no accounts yet; create the first with: " + adduserHint(cfg))
}

// adduserHint is the command that creates an account on this server, for
// the log of a first start.
func adduserHint(cfg *config) string {
	cmd := "kiezd"
	for _, f := range cfg.flags {
		if strings.ContainsAny(f, " \t'\"\\$") {
			f = "'" + strings.ReplaceAll(f, "'", `'\''`) + "'"
		}
		cmd += " " + f
	}
	return cmd + " adduser <name>@" + cfg.Domains[0] // the brackets keep it from being redacted as an address
}

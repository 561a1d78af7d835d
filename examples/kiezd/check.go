package main

// kiezd check looks at what check-config cannot see from the file alone,
// as prosodyctl check does: the certificates against every name served,
// the DNS records clients and other servers look up, the listeners of the
// running server and the clock. Each finding says what to do; errors make
// the exit status 1.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/blob"
	"github.com/kiez-im/kiez/storage/memory"
)

// checkDeps are what kiezd check asks about the world. Zero fields are
// the real ones (see withDefaults).
type checkDeps struct {
	Resolver resolver
	// Now is the clock being checked.
	Now func() time.Time
	// LocalAddrs are this machine's addresses, those DNS records should
	// point at.
	LocalAddrs func() ([]netip.Addr, error)
	// Dial connects to the listeners.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Roots are the CAs certificates are checked against; nil is the
	// system's.
	Roots *x509.CertPool
}

func (d checkDeps) withDefaults() checkDeps {
	if d.Resolver == nil {
		d.Resolver = net.DefaultResolver
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.LocalAddrs == nil {
		d.LocalAddrs = interfaceAddrs
	}
	if d.Dial == nil {
		var dl net.Dialer
		d.Dial = dl.DialContext
	}
	return d
}

// interfaceAddrs returns the addresses of the local network interfaces.
func interfaceAddrs() ([]netip.Addr, error) {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range ifas {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}

// level is how bad a finding is.
type level int

const (
	levelOK level = iota
	levelNote
	levelWarn
	levelError
)

func (l level) String() string {
	switch l {
	case levelOK:
		return "ok"
	case levelNote:
		return "note"
	case levelWarn:
		return "warning"
	}
	return "ERROR"
}

// finding is one line of the report, with what to do about it.
type finding struct {
	Level level
	Msg   string
	Fix   string
}

// checkGroup is a titled part of the report.
type checkGroup struct {
	Title    string
	Findings []finding
}

func (g *checkGroup) add(l level, msg, fix string) {
	g.Findings = append(g.Findings, finding{l, msg, fix})
}

// checkReport is what kiezd check found.
type checkReport struct {
	Groups []*checkGroup
}

func (r *checkReport) group(title string) *checkGroup {
	g := &checkGroup{Title: title}
	r.Groups = append(r.Groups, g)
	return g
}

// count returns the number of findings of level l.
func (r *checkReport) count(l level) int {
	n := 0
	for _, g := range r.Groups {
		for _, f := range g.Findings {
			if f.Level == l {
				n++
			}
		}
	}
	return n
}

// write prints the report: a group a paragraph, a finding a line, what
// to do indented below it, and a summary.
func (r *checkReport) write(w io.Writer) {
	for _, g := range r.Groups {
		fmt.Fprintln(w, g.Title)
		for _, f := range g.Findings {
			fmt.Fprintf(w, "  %-8s %s\n", f.Level, f.Msg)
			if f.Fix != "" {
				fmt.Fprintf(w, "  %-8s → %s\n", "", f.Fix)
			}
		}
		fmt.Fprintln(w)
	}
	plural := func(n int, s string) string {
		if n == 1 {
			return "1 " + s
		}
		return strconv.Itoa(n) + " " + s + "s"
	}
	errs, warns := r.count(levelError), r.count(levelWarn)
	verdict := "all good"
	switch {
	case errs > 0:
		verdict = "fix the errors"
	case warns > 0:
		verdict = "no errors; read the warnings"
	}
	fmt.Fprintf(w, "Summary: %s, %s, %s: %s.\n", plural(errs, "error"), plural(warns, "warning"), plural(r.count(levelNote), "note"), verdict)
}

// checkCommand runs kiezd check: it prints the report and fails if it
// has errors.
func checkCommand(ctx context.Context, cfg *config, e env) error {
	var deps checkDeps
	if e.check != nil {
		deps = *e.check
	}
	r := runChecks(ctx, cfg, deps.withDefaults())
	r.write(e.stdout)
	if n := r.count(levelError); n > 0 {
		return fmt.Errorf("check: %d error(s), listed above", n)
	}
	return nil
}

// checker holds what the checks share.
type checker struct {
	cfg  *config
	deps checkDeps
	now  time.Time
	// services are the service sub-domains for every domain
	// (upload.example.org), from the modules the configuration builds.
	services []string
	// components are the domains of the external components
	// ([[components.component]]).
	components []string
	// notBefore is the latest NotBefore of the certificates read, and
	// notBeforeOf its file, for the clock check.
	notBefore   time.Time
	notBeforeOf string
}

// runChecks runs every check on cfg, which has loaded without error.
func runChecks(ctx context.Context, cfg *config, deps checkDeps) *checkReport {
	c := &checker{cfg: cfg, deps: deps, now: deps.Now()}
	r := &checkReport{}
	g := r.group("Configuration")
	name := cfg.file
	if name == "" {
		name = "the built-in configuration (no kiezd.toml)"
	}
	g.add(levelOK, name+" is valid", "")
	for _, w := range cfg.warnings() {
		g.add(levelWarn, w, "")
	}
	if len(cfg.Metrics.Listen) > 0 {
		g.add(levelNote, "metrics are served on "+strings.Join(cfg.Metrics.Listen, ", ")+" (GET /metrics, without authentication)",
			"keep that port closed to other networks; it is not among the ports to open below")
	}
	var err error
	c.services, err = cfg.serviceHosts()
	if err != nil {
		g.add(levelError, "cannot build the modules: "+err.Error(), "fix the [modules] table")
	}
	for _, cc := range cfg.Components.Component {
		c.components = append(c.components, strings.ToLower(cc.Domain))
	}
	c.checkCerts(r.group("Certificates"))
	c.checkDNS(ctx, r.group("DNS"))
	c.checkListeners(ctx, r.group("Listeners"))
	c.checkClock(r.group("Clock"))
	if cfg.postgres() {
		c.checkPostgres(ctx, r.group("Database"))
	}
	return r
}

// serviceHosts returns the service sub-domains the configured modules
// serve for every domain, such as upload.example.org, from the modules
// themselves (server.ServiceProvider).
func (c *config) serviceHosts() ([]string, error) {
	mods, err := c.modules(memory.New(), noFiles{}, nil, nil)
	if err != nil {
		return nil, err
	}
	var subs []string
	for _, m := range mods {
		if p, ok := m.(server.ServiceProvider); ok {
			for _, s := range p.Services() {
				subs = append(subs, s.Subdomain)
			}
		}
	}
	var hosts []string
	for _, d := range c.Domains {
		for _, s := range subs {
			hosts = append(hosts, s+"."+d)
		}
	}
	return hosts, nil
}

// noFiles is a blob.Store that stores nothing, to build the upload
// module for its service's name only.
type noFiles struct{}

var errNoFiles = errors.New("kiezd: no file store while checking")

func (noFiles) Create(context.Context, string) (blob.Writer, error) { return nil, errNoFiles }
func (noFiles) Open(context.Context, string) (blob.File, error)     { return nil, errNoFiles }
func (noFiles) Delete(context.Context, string) error                { return errNoFiles }

// servedNames are the names certificates must cover: the domains and
// their service sub-domains.
func (c *checker) servedNames() []string {
	return append(append([]string(nil), c.cfg.Domains...), c.services...)
}

// isLocalName reports whether a domain is for this machine or a test
// only: localhost, an IP address or a name without a dot. DNS is not
// checked for it and a self-signed certificate is fine.
func isLocalName(d string) bool {
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	if _, err := netip.ParseAddr(strings.Trim(d, "[]")); err == nil {
		return true
	}
	return d == "localhost" || strings.HasSuffix(d, ".localhost") || !strings.Contains(d, ".")
}

// checkedCert is a certificate file and its chain, once read.
type checkedCert struct {
	file  string
	chain []*x509.Certificate
}

// checkCerts checks the certificates: readable, valid now and for a
// while, trusted, and covering every served name. A name none covers is
// an error: clients refuse to connect to it. A component's domain none
// covers is a warning: only other servers connect to it, and those with
// dialback still federate.
func (c *checker) checkCerts(g *checkGroup) {
	var certs []checkedCert
	names := c.servedNames()
	comps := slices.Clone(c.components)
	switch {
	case c.cfg.TLS.ACME.Enabled:
		certs = c.acmeCerts(g)
	case len(c.cfg.TLS.Certificates) > 0:
		for _, f := range c.cfg.TLS.Certificates {
			kp, err := loadKeyPair(f)
			if err != nil {
				g.add(levelError, err.Error(), "check the paths in [[tls.certificates]] and that the account kiezd runs as may read both files")
				continue
			}
			certs = append(certs, checkedCert{f.Cert, parseChain(kp.Certificate)})
		}
	default:
		dir := filepath.Join(c.cfg.DataDir, "tls")
		for _, d := range c.cfg.Domains {
			f := certConfig{Cert: filepath.Join(dir, d+".crt"), Key: filepath.Join(dir, d+".key")}
			kp, err := loadKeyPair(f)
			if err != nil && !fileExists(f.Cert) {
				g.add(levelNote, "no certificate for "+d+" yet: serve generates a self-signed one at its first start, for "+d+" and *."+d, "")
				if !isLocalName(d) {
					g.add(levelWarn, d+" will have a self-signed certificate: clients warn about it, or refuse it", "configure a certificate from a CA in [[tls.certificates]], or [tls.acme] (see kiezd.example.toml)")
				}
				// A new one covers the domain and its services (and
				// components named like them).
				generated := func(n string) bool {
					sub, ok := strings.CutSuffix(n, "."+d)
					return n == d || ok && !strings.Contains(sub, ".")
				}
				names = slices.DeleteFunc(names, generated)
				comps = slices.DeleteFunc(comps, generated)
				continue
			}
			if err != nil {
				g.add(levelError, err.Error(), "remove both files: serve makes new ones")
				continue
			}
			certs = append(certs, checkedCert{f.Cert, parseChain(kp.Certificate)})
		}
	}
	for _, cc := range certs {
		c.checkCert(g, cc)
	}
	if c.cfg.TLS.ACME.Enabled {
		// autocert asks only for the domains (HostWhitelist).
		for _, s := range c.services {
			if !coveredBy(certs, s) {
				g.add(levelWarn, "ACME certificates are for the domains only: none covers "+s,
					"clients reach "+s+" through their domain's connection, so this matters only for federation (other servers check it); or use [[tls.certificates]] with a certificate naming it")
			}
		}
		names = c.cfg.Domains
	}
	for _, n := range names {
		switch {
		case coveredBy(certs, n):
		case c.cfg.TLS.ACME.Enabled:
			g.add(levelNote, "no ACME certificate for "+n+" yet: serve obtains it at its start", "make sure "+n+" points at this machine and port 443 (or tls.acme.http_listen's) is open, or the CA cannot verify it")
		default:
			what := "domain"
			if !slices.Contains(c.cfg.Domains, n) {
				what = "service sub-domain"
			}
			g.add(levelError, fmt.Sprintf("no certificate covers %s (a %s kiezd serves): clients and servers refuse it", n, what),
				fmt.Sprintf("get a certificate naming %s (certbot: -d %s), or a wildcard *.%s, and list it in [[tls.certificates]]", n, n, parentDomain(n)))
		}
	}
	for _, n := range comps {
		if !coveredBy(certs, n) {
			g.add(levelWarn, fmt.Sprintf("no certificate covers %s (a component's domain): other servers refuse to federate with it, unless they fall back to dialback", n),
				fmt.Sprintf("clients never connect to it; for federation, add %s to the server's certificate (certbot: -d %s), or use a wildcard *.%s, in [[tls.certificates]]", n, n, parentDomain(n)))
		}
	}
}

// parentDomain returns the domain a wildcard would be for: upload.example.org
// gives example.org.
func parentDomain(n string) string {
	if _, rest, ok := strings.Cut(n, "."); ok && strings.Contains(rest, ".") {
		return rest
	}
	return n
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// parseChain parses a DER chain, skipping what does not parse (loadKeyPair
// parsed the leaf already).
func parseChain(der [][]byte) []*x509.Certificate {
	var out []*x509.Certificate
	for _, d := range der {
		if c, err := x509.ParseCertificate(d); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// coveredBy reports whether a certificate valid for name is among certs.
func coveredBy(certs []checkedCert, name string) bool {
	for _, c := range certs {
		if len(c.chain) > 0 && c.chain[0].VerifyHostname(name) == nil {
			return true
		}
	}
	return false
}

// acmeCerts reads the certificates autocert keeps in its cache, one file
// per domain named after it, with the key.
func (c *checker) acmeCerts(g *checkGroup) []checkedCert {
	dir := c.cfg.TLS.ACME.CacheDir
	if dir == "" {
		dir = filepath.Join(c.cfg.DataDir, "acme")
	}
	g.add(levelNote, "certificates come from ACME ("+c.cfg.TLS.ACME.DirectoryURL+"), kept in "+displayPath(dir), "")
	var certs []checkedCert
	for _, d := range c.cfg.Domains {
		file := filepath.Join(dir, d)
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		var der [][]byte
		for {
			var b *pem.Block
			b, data = pem.Decode(data)
			if b == nil {
				break
			}
			if b.Type == "CERTIFICATE" {
				der = append(der, b.Bytes)
			}
		}
		if chain := parseChain(der); len(chain) > 0 {
			certs = append(certs, checkedCert{file, chain})
		}
	}
	return certs
}

// checkCert checks one certificate's dates, issuer and trust.
func (c *checker) checkCert(g *checkGroup, cc checkedCert) {
	if len(cc.chain) == 0 {
		g.add(levelError, "cannot parse the certificate "+cc.file, "replace it with a PEM certificate chain")
		return
	}
	leaf := cc.chain[0]
	names := leaf.DNSNames
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = []string{leaf.Subject.CommonName}
	}
	desc := fmt.Sprintf("%s: for %s, valid until %s", displayPath(cc.file), strings.Join(names, ", "), leaf.NotAfter.UTC().Format(time.DateOnly))
	if leaf.NotBefore.After(c.notBefore) {
		c.notBefore, c.notBeforeOf = leaf.NotBefore, cc.file
	}
	switch {
	case c.now.Before(leaf.NotBefore):
		g.add(levelError, fmt.Sprintf("%s: not valid before %s, later than this machine's clock (%s)", displayPath(cc.file), leaf.NotBefore.UTC().Format(time.RFC3339), c.now.UTC().Format(time.RFC3339)),
			"set the clock right (see Clock below); clients refuse the certificate until then")
		return
	case c.now.After(leaf.NotAfter):
		g.add(levelError, fmt.Sprintf("%s: expired on %s", displayPath(cc.file), leaf.NotAfter.UTC().Format(time.DateOnly)),
			"renew it (certbot renew), then send kiezd SIGHUP (systemctl reload kiezd) to load it")
		return
	case c.now.Add(14 * 24 * time.Hour).After(leaf.NotAfter):
		g.add(levelWarn, desc+": expires within two weeks",
			"renew it (certbot renew), then send kiezd SIGHUP (systemctl reload kiezd); check that renewal runs by itself")
		return
	}
	selfSigned := bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
	public := slices.ContainsFunc(names, func(n string) bool { return !isLocalName(strings.TrimPrefix(n, "*.")) })
	switch {
	case selfSigned && public:
		g.add(levelWarn, desc+": self-signed, so clients warn about it or refuse it",
			"use a certificate from a CA such as Let's Encrypt ([tls.acme], or certbot with [[tls.certificates]])")
	case selfSigned:
		g.add(levelOK, desc+" (self-signed, fine for a local name)", "")
	default:
		inter := x509.NewCertPool()
		for _, ic := range cc.chain[1:] {
			inter.AddCert(ic)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: c.deps.Roots, Intermediates: inter, CurrentTime: c.now})
		if err != nil {
			g.add(levelWarn, desc+": not trusted by this system's CAs ("+err.Error()+")",
				"use the full chain (certbot's fullchain.pem, not cert.pem); a private CA is fine only if every client trusts it")
			return
		}
		g.add(levelOK, desc, "")
	}
}

// allListenAddrs are the configured listeners with their keys.
func (c *checker) allListenAddrs() []namedAddr {
	var all []namedAddr
	for _, l := range []struct {
		key   string
		addrs []string
	}{
		{"listen.c2s", c.cfg.Listen.C2S}, {"listen.direct_tls", c.cfg.Listen.DirectTLS},
		{"listen.https", c.cfg.Listen.HTTPS}, {"listen.http", c.cfg.Listen.HTTP},
	} {
		for _, a := range l.addrs {
			all = append(all, namedAddr{l.key, a})
		}
	}
	if a := c.cfg.TLS.ACME; a.Enabled {
		for _, l := range []namedAddr{{"tls.acme.listen", a.Listen}, {"tls.acme.http_listen", a.HTTPListen}} {
			if l.addr != "" {
				all = append(all, l)
			}
		}
	}
	if l := c.cfg.Proxy65.Listen; l != "" {
		all = append(all, namedAddr{"proxy65.listen", l}) // the SOCKS5 proxy: a port to open too
	}
	return all
}

// ports returns the ports of addrs, without 0.
func ports(addrs []string) []uint16 {
	var out []uint16
	for _, a := range addrs {
		_, p, _ := net.SplitHostPort(a)
		if n, err := strconv.Atoi(p); err == nil && n > 0 {
			out = append(out, uint16(n))
		}
	}
	return out
}

func portList(ps []uint16) string {
	var s []string
	for _, p := range ps {
		s = append(s, strconv.Itoa(int(p)))
	}
	return strings.Join(s, ", ")
}

// httpsHosts are the host names clients fetch HTTP services at (the
// file upload's URLs): external_url's, or the domains on the first
// https listener.
func (c *checker) httpsHosts() []string {
	port := ""
	if ps := ports(c.cfg.Listen.HTTPS); len(ps) > 0 {
		port = strconv.Itoa(int(ps[0]))
	}
	base := c.cfg.httpBaseURL(port)
	if base == nil {
		return nil
	}
	var hosts []string
	for _, d := range c.cfg.Domains {
		if u, err := url.Parse(base(d)); err == nil && !slices.Contains(hosts, u.Hostname()) {
			hosts = append(hosts, u.Hostname())
		}
	}
	return hosts
}

// checkListeners connects to the listeners of the running kiezd on this
// machine. Whether they are reachable from elsewhere (firewall, NAT) only
// a check from outside tells.
func (c *checker) checkListeners(ctx context.Context, g *checkGroup) {
	type probe struct {
		namedAddr
		dial string
		err  error
	}
	var probes []*probe
	for _, a := range c.allListenAddrs() {
		host, port, _ := net.SplitHostPort(a.addr)
		if port == "0" {
			g.add(levelWarn, fmt.Sprintf("%s %q: port 0 is a new port at each start, which no client can find", a.key, a.addr), "give a fixed port")
			continue
		}
		switch ip := net.ParseIP(host); {
		case host == "" || ip.IsUnspecified() && ip.To4() != nil:
			host = "127.0.0.1"
		case ip.IsUnspecified():
			host = "::1"
		}
		probes = append(probes, &probe{namedAddr: a, dial: net.JoinHostPort(host, port)})
	}
	answered := 0
	for _, p := range probes {
		p.err = c.probe(ctx, p.key, p.dial)
		if p.err == nil || !errors.Is(p.err, errNotListening) {
			answered++
		}
	}
	if answered == 0 && len(probes) > 0 {
		g.add(levelWarn, "kiezd is not running: nothing listens on "+probes[0].dial,
			"start kiezd serve and run kiezd check again to test its listeners")
	} else {
		for _, p := range probes {
			switch {
			case p.err == nil:
				g.add(levelOK, fmt.Sprintf("%s %s answers", p.key, p.addr), "")
			case errors.Is(p.err, errNotListening):
				g.add(levelError, fmt.Sprintf("%s %s: nothing listens there, though kiezd runs", p.key, p.addr),
					"is this the configuration the running kiezd uses? restart it after changing the file")
			default:
				g.add(levelError, fmt.Sprintf("%s %s: %v", p.key, p.addr, p.err),
					"another program may hold the port: see ss -tlnp")
			}
		}
	}
	var all []string
	for _, a := range c.allListenAddrs() {
		all = append(all, a.addr)
	}
	ps := portList(slices.Compact(slices.Sorted(slices.Values(ports(all)))))
	fix := ""
	if ps != "" {
		fix = fmt.Sprintf("from another network run nc -vz %s PORT for each of %s, and open them in the firewall (ufw allow %s/tcp)", c.cfg.Domains[0], ps, strings.ReplaceAll(ps, " ", ""))
	}
	g.add(levelNote, "reachability from other networks is not tested from here: firewalls and NAT are invisible from this machine", fix)
}

// errNotListening means that a connection was refused: no server.
var errNotListening = errors.New("nothing listens")

// probeTimeout bounds each listener probe.
const probeTimeout = 5 * time.Second

// probe connects to addr, the listener of key, and checks that kiezd
// answers there: a stream with STARTTLS on c2s, a TLS handshake with a
// certificate for the first domain on direct TLS and HTTPS.
func (c *checker) probe(ctx context.Context, key, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := c.deps.Dial(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: %v", errNotListening, unwrapAll(err))
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	domain := c.cfg.Domains[0]
	switch key {
	case "listen.c2s":
		fmt.Fprintf(conn, "<?xml version='1.0'?><stream:stream to='%s' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>", domain)
		var buf []byte
		b := make([]byte, 4096)
		for len(buf) < 64<<10 {
			n, err := conn.Read(b)
			buf = append(buf, b[:n]...)
			if strings.Contains(string(buf), "urn:ietf:params:xml:ns:xmpp-tls") {
				return nil
			}
			if err != nil {
				break
			}
		}
		return errors.New("answers, but not with an XMPP stream offering STARTTLS: is another program on the port?")
	case "listen.direct_tls", "listen.https":
		tc := tls.Client(conn, &tls.Config{ServerName: domain, InsecureSkipVerify: true})
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake failed: %v", unwrapAll(err))
		}
		certs := tc.ConnectionState().PeerCertificates
		if len(certs) == 0 || certs[0].VerifyHostname(domain) != nil {
			return fmt.Errorf("answers with a certificate that is not for %s: is another program on the port, or does kiezd still serve an old certificate (send it SIGHUP)?", domain)
		}
	}
	return nil
}

// clockSkew is how far ahead of the clock a file's time may be before
// the clock is suspect.
const clockSkew = 5 * time.Minute

// checkClock compares the clock with what must lie in its past: the
// certificates' start and the database's last write. A clock that runs
// ahead shows in neither.
func (c *checker) checkClock(g *checkGroup) {
	now := c.now.UTC().Format(time.RFC3339)
	bad := false
	if c.notBefore.After(c.now) {
		bad = true
		g.add(levelError, fmt.Sprintf("the clock (%s) is behind: %s is valid only from %s", now, displayPath(c.notBeforeOf), c.notBefore.UTC().Format(time.RFC3339)),
			"synchronise the clock: timedatectl set-ntp true (or install chrony), then check again")
	}
	if fi, err := os.Stat(c.cfg.dbPath()); err == nil && fi.ModTime().After(c.now.Add(clockSkew)) {
		bad = true
		g.add(levelError, fmt.Sprintf("the clock (%s) is behind: the database was last written at %s", now, fi.ModTime().UTC().Format(time.RFC3339)),
			"synchronise the clock: timedatectl set-ntp true (or install chrony), then check again")
	}
	var seen []string
	if !c.notBefore.IsZero() {
		seen = append(seen, "the certificates' start")
	}
	if fileExists(c.cfg.dbPath()) {
		seen = append(seen, "the database's last write")
	}
	switch {
	case bad:
	case len(seen) == 0:
		g.add(levelNote, "the clock reads "+now+"; no certificate or database yet to compare it with", "")
	default:
		g.add(levelOK, "the clock ("+now+") is after "+strings.Join(seen, " and "), "")
	}
	if !bad {
		g.add(levelNote, "a clock that runs ahead shows in neither: compare it with another clock",
			"timedatectl status should say \"System clock synchronized: yes\"; TLS checks certificates against the clock, on both sides")
	}
}

// checkCertFiles is check-config's look at the configured certificates:
// it prints warnings about their expiry, and fails naming the domains and
// service sub-domains no certificate covers, which clients would refuse.
func checkCertFiles(cfg *config, store *certStore, now time.Time, w io.Writer) error {
	for _, warn := range store.check(nil, now) {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	services, err := cfg.serviceHosts()
	if err != nil {
		return err
	}
	var missing []string
	for _, n := range append(append([]string(nil), cfg.Domains...), services...) {
		covered := false
		for _, c := range *store.certs.Load() {
			covered = covered || c.Leaf.VerifyHostname(n) == nil
		}
		if !covered {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no certificate in tls.certificates covers %s, which kiezd serves: clients would refuse to connect; get a certificate naming each (or a wildcard such as *.%s)",
			strings.Join(missing, ", "), parentDomain(missing[len(missing)-1]))
	}
	return nil
}

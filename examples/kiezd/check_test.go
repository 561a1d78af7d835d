package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeResolver answers kiezd check's DNS queries from maps: no network.
type fakeResolver struct {
	hosts map[string][]string
	srv   map[string][]*net.SRV // by "_service._proto.name"
}

func (r fakeResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	if a, ok := r.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (r fakeResolver) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	key := "_" + service + "._" + proto + "." + name
	if s, ok := r.srv[key]; ok {
		return key, s, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: key, IsNotFound: true}
}

// refuseAll is a Dial for which nothing listens.
func refuseAll(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// testNow is the clock of the check tests.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// goodDNS is a correct zone for example.org served at 203.0.113.5.
func goodDNS() fakeResolver {
	return fakeResolver{
		hosts: map[string][]string{
			"example.org":        {"203.0.113.5"},
			"upload.example.org": {"203.0.113.5"},
			// The group chat service (muc), on by default.
			"conference.example.org": {"203.0.113.5"},
		},
		srv: map[string][]*net.SRV{
			"_xmpp-client._tcp.example.org":  {{Target: "example.org.", Port: 5222}},
			"_xmpps-client._tcp.example.org": {{Target: "example.org.", Port: 5223}},
		},
	}
}

// publicDeps are checkDeps for a machine with the public address
// 203.0.113.5, where kiezd is not running.
func publicDeps(r resolver) *checkDeps {
	return &checkDeps{
		Resolver: r,
		Now:      func() time.Time { return testNow },
		LocalAddrs: func() ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("203.0.113.5")}, nil
		},
		Dial: refuseAll,
	}
}

// certSpec describes a test certificate.
type certSpec struct {
	names               []string
	notBefore, notAfter time.Time
	ca                  *testCA // nil: self-signed
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"},
		NotBefore: testNow.AddDate(-1, 0, 0), NotAfter: testNow.AddDate(5, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{c, key}
}

// writeCert writes a certificate and key as spec says into dir, as
// base.crt and base.key, and returns the config lines naming them.
func writeCert(t *testing.T, dir, base string, spec certSpec) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if spec.notBefore.IsZero() {
		spec.notBefore = testNow.AddDate(0, -1, 0)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = testNow.AddDate(0, 2, 0)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: spec.names[0]},
		DNSNames: spec.names, NotBefore: spec.notBefore, NotAfter: spec.notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	parent, signer := tmpl, key
	if spec.ca != nil {
		parent, signer = spec.ca.cert, spec.ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	crt, kf := filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return fmt.Sprintf("[[tls.certificates]]\ncert = %q\nkey = %q\n", crt, kf)
}

// exampleConfig writes a configuration for example.org on the standard
// ports with extra appended, and returns its file.
func exampleConfig(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "kiezd.toml")
	text := `domains = ["example.org"]
data_dir = "data"

[listen]
c2s = [":5222"]
direct_tls = [":5223"]
https = [":5281"]
` + extra
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// checkRun runs kiezd check on file with deps.
func checkRun(t *testing.T, file string, deps *checkDeps) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	code = run(context.Background(), []string{"-config", file, "check"}, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, check: deps})
	return code, out.String(), errOut.String()
}

// checkFindings runs the checks on file and returns the report.
func checkFindings(t *testing.T, file string, deps *checkDeps) *checkReport {
	t.Helper()
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	return runChecks(context.Background(), cfg, deps.withDefaults())
}

// has reports whether group holds a finding of level l containing s.
func (r *checkReport) has(group string, l level, s string) bool {
	for _, g := range r.Groups {
		for _, f := range g.Findings {
			if g.Title == group && f.Level == l && strings.Contains(f.Msg, s) {
				return true
			}
		}
	}
	return false
}

func (r *checkReport) String() string {
	var b strings.Builder
	r.write(&b)
	return b.String()
}

// A certificate that leaves out a domain or a service sub-domain is an
// error of check and check-config, with exit status 1; one covering
// everything passes.
func TestCheckCertificateCoverage(t *testing.T) {
	ca := newTestCA(t)
	deps := publicDeps(goodDNS())
	deps.Roots = x509.NewCertPool()
	deps.Roots.AddCert(ca.cert)

	dir := t.TempDir()
	file := exampleConfig(t, writeCert(t, dir, "only", certSpec{names: []string{"example.org"}, ca: ca}))
	code, stdout, stderr := checkRun(t, file, deps)
	if code != 1 || !strings.Contains(stdout, "ERROR    no certificate covers upload.example.org (a service sub-domain kiezd serves)") ||
		!strings.Contains(stdout, "→ get a certificate naming upload.example.org") ||
		!strings.Contains(stdout, "ERROR    no certificate covers conference.example.org (a service sub-domain kiezd serves)") ||
		!strings.Contains(stdout, "Summary: 2 errors,") || stderr != "kiezd: check: 2 error(s), listed above\n" {
		t.Errorf("certificate without the upload sub-domain: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = kiezd(t, "", "-config", file, "check-config")
	if code != 1 || !strings.Contains(stderr, "covers upload.example.org, conference.example.org, which kiezd serves") {
		t.Errorf("check-config, certificate without the upload sub-domain: exit %d, %q", code, stderr)
	}

	file = exampleConfig(t, writeCert(t, dir, "other", certSpec{names: []string{"example.net", "*.example.org"}, ca: ca}))
	code, stdout, _ = checkRun(t, file, deps)
	if code != 1 || !strings.Contains(stdout, "no certificate covers example.org (a domain kiezd serves)") {
		t.Errorf("certificate for another domain: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := kiezd(t, "", "-config", file, "check-config"); code != 1 || !strings.Contains(stderr, "covers example.org,") {
		t.Errorf("check-config, certificate for another domain: exit %d, %q", code, stderr)
	}

	file = exampleConfig(t, writeCert(t, dir, "all", certSpec{names: []string{"example.org", "*.example.org"}, ca: ca}))
	code, stdout, stderr = checkRun(t, file, deps)
	if code != 0 || strings.Contains(stdout, "ERROR") || !strings.Contains(stdout, "all.crt: for example.org, *.example.org, valid until 2026-08-01\n") {
		t.Errorf("certificate for everything: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := kiezd(t, "", "-config", file, "check-config"); code != 0 || !strings.Contains(stdout, "OK") {
		t.Errorf("check-config, certificate for everything: exit %d\n%s%s", code, stdout, stderr)
	}
}

// Dates, issuer and trust of a certificate.
func TestCheckCertificateValidity(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	names := []string{"example.org", "*.example.org"}
	for _, tc := range []struct {
		name  string
		spec  certSpec
		now   time.Time
		roots bool
		group string
		level level
		want  string
	}{
		{"trusted", certSpec{names: names, ca: ca}, testNow, true, "Certificates", levelOK, "valid until 2026-08-01"},
		{"untrusted CA", certSpec{names: names, ca: ca}, testNow, false, "Certificates", levelWarn, "not trusted by this system's CAs"},
		{"self-signed", certSpec{names: names}, testNow, true, "Certificates", levelWarn, "self-signed, so clients warn"},
		{"expires soon", certSpec{names: names, ca: ca}, testNow.AddDate(0, 2, -10), true, "Certificates", levelWarn, "expires within two weeks"},
		{"expired", certSpec{names: names, ca: ca}, testNow.AddDate(0, 3, 0), true, "Certificates", levelError, "expired on 2026-08-01"},
		{"clock behind", certSpec{names: names, ca: ca, notBefore: testNow.Add(48 * time.Hour)}, testNow, true, "Clock", levelError, "the clock (2026-06-01T12:00:00Z) is behind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := exampleConfig(t, writeCert(t, dir, strings.ReplaceAll(tc.name, " ", "-"), tc.spec))
			deps := publicDeps(goodDNS())
			deps.Now = func() time.Time { return tc.now }
			if tc.roots {
				deps.Roots = x509.NewCertPool()
				deps.Roots.AddCert(ca.cert)
			}
			r := checkFindings(t, file, deps)
			if !r.has(tc.group, tc.level, tc.want) {
				t.Errorf("no %s %q in %s:\n%s", tc.level, tc.want, tc.group, r)
			}
		})
	}
}

// DNS records with a fake resolver: each mistake is found, with its
// level.
func TestCheckDNS(t *testing.T) {
	type edit func(r *fakeResolver, d *checkDeps)
	nat := func(r *fakeResolver, d *checkDeps) {
		d.LocalAddrs = func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("10.0.0.5")}, nil }
	}
	for _, tc := range []struct {
		name   string
		listen string // replaces c2s = [":5222"]
		edit   edit
		level  level
		want   string
	}{
		{"good", "", func(*fakeResolver, *checkDeps) {}, levelOK, "example.org → 203.0.113.5 (this machine)"},
		{"good srv", "", func(*fakeResolver, *checkDeps) {}, levelOK, "_xmpps-client._tcp.example.org (example.org port 5223) → 203.0.113.5 (this machine)"},
		{"srv port", "", func(r *fakeResolver, _ *checkDeps) {
			r.srv["_xmpp-client._tcp.example.org"] = []*net.SRV{{Target: "example.org.", Port: 5269}}
		}, levelError, "_xmpp-client._tcp.example.org points at port 5269, but kiezd listens on 5222 (listen.c2s)"},
		{"direct tls srv port", "", func(r *fakeResolver, _ *checkDeps) {
			r.srv["_xmpps-client._tcp.example.org"] = []*net.SRV{{Target: "example.org.", Port: 443}}
		}, levelError, "points at port 443, but kiezd listens on 5223 (listen.direct_tls)"},
		{"elsewhere", "", func(r *fakeResolver, _ *checkDeps) { r.hosts["example.org"] = []string{"198.51.100.9"} },
			levelError, "example.org (the domain) points at 198.51.100.9, not at this machine (203.0.113.5)"},
		{"partly elsewhere", "", func(r *fakeResolver, _ *checkDeps) { r.hosts["example.org"] = []string{"203.0.113.5", "2001:db8::1"} },
			levelWarn, "of which 2001:db8::1 are not this machine's"},
		{"behind NAT", "", func(r *fakeResolver, d *checkDeps) { nat(r, d); r.hosts["example.org"] = []string{"198.51.100.9"} },
			levelWarn, "this machine has only private addresses"},
		{"loopback", "", func(r *fakeResolver, _ *checkDeps) { r.hosts["example.org"] = []string{"127.0.0.1"} },
			levelError, "a loopback address"},
		{"no A record", "", func(r *fakeResolver, _ *checkDeps) { delete(r.hosts, "example.org") },
			levelError, "example.org (the domain) has no A or AAAA record: no such name"},
		{"srv target unresolved", "", func(r *fakeResolver, _ *checkDeps) {
			r.srv["_xmpp-client._tcp.example.org"] = []*net.SRV{{Target: "xmpp.example.org.", Port: 5222}}
		}, levelError, "points at xmpp.example.org, which has no A or AAAA record"},
		{"srv dot", "", func(r *fakeResolver, _ *checkDeps) {
			r.srv["_xmpp-client._tcp.example.org"] = []*net.SRV{{Target: ".", Port: 0}}
		}, levelError, "says the service is not available"},
		{"no srv, standard port", "", func(r *fakeResolver, _ *checkDeps) { delete(r.srv, "_xmpp-client._tcp.example.org") },
			levelOK, "clients connect to example.org port 5222, where kiezd listens"},
		{"no srv, other port", `c2s = [":5322"]`, func(r *fakeResolver, _ *checkDeps) { delete(r.srv, "_xmpp-client._tcp.example.org") },
			levelError, "clients try port 5222, but kiezd listens on 5322"},
		{"no direct tls srv", "", func(r *fakeResolver, _ *checkDeps) { delete(r.srv, "_xmpps-client._tcp.example.org") },
			levelNote, "clients do not find direct TLS (XEP-0368) on port 5223"},
		{"server srv", "", func(r *fakeResolver, _ *checkDeps) {
			r.srv["_xmpp-server._tcp.example.org"] = []*net.SRV{{Target: "example.org.", Port: 5269}}
		}, levelOK, "_xmpp-server._tcp.example.org (example.org port 5269)"},
		{"no server srv", "", func(r *fakeResolver, _ *checkDeps) {},
			levelOK, "other servers connect to example.org port 5269, where kiezd listens"},
		{"no service record", "", func(r *fakeResolver, _ *checkDeps) { delete(r.hosts, "upload.example.org") },
			levelWarn, "upload.example.org (a service sub-domain; only federation and ACME look it up) has no A or AAAA record"},
		{"https host", "", func(r *fakeResolver, _ *checkDeps) {}, levelOK, "files.example.org → 203.0.113.5"},
		{"https host missing", "", func(r *fakeResolver, _ *checkDeps) { delete(r.hosts, "files.example.org") },
			levelError, "files.example.org (the HTTPS host of file upload (http.external_url)) has no A or AAAA record"},
		{"https host behind a proxy", `http = ["127.0.0.1:5280"]`, func(r *fakeResolver, _ *checkDeps) { r.hosts["files.example.org"] = []string{"198.51.100.9"} },
			levelWarn, "if your reverse proxy runs on another machine, pointing there is right) points at 198.51.100.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := writeCert(t, t.TempDir(), "c", certSpec{names: []string{"example.org", "*.example.org"}})
			if strings.HasPrefix(tc.name, "https host") {
				extra += "[http]\nexternal_url = \"https://files.example.org/\"\n"
			}
			file := exampleConfig(t, extra)
			if tc.listen != "" {
				data, _ := os.ReadFile(file)
				old := `c2s = [":5222"]`
				if !strings.HasPrefix(tc.listen, "c2s") {
					old = `https = [":5281"]` // the https listener stays, beside the new one
					tc.listen = old + "\n" + tc.listen
				}
				os.WriteFile(file, []byte(strings.Replace(string(data), old, tc.listen, 1)), 0o600)
			}
			r := goodDNS()
			r.hosts["files.example.org"] = []string{"203.0.113.5"}
			deps := publicDeps(r)
			tc.edit(&r, deps)
			rep := checkFindings(t, file, deps)
			if !rep.has("DNS", tc.level, tc.want) {
				t.Errorf("no %s %q:\n%s", tc.level, tc.want, rep)
			}
			if tc.level != levelError && rep.has("DNS", levelError, "") {
				t.Errorf("an error besides:\n%s", rep)
			}
		})
	}
}

// The listeners of a running kiezd answer; a port held by something else,
// or closed, is an error; with nothing running, a warning says to start
// it.
func TestCheckListeners(t *testing.T) {
	file, _ := testConfig(t, "")
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve ended: %s", d.stderr)
	}
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen.C2S = []string{d.bound.C2S[0].String()}
	cfg.Listen.DirectTLS = []string{d.bound.DirectTLS[0].String()}
	cfg.Listen.HTTPS = []string{d.bound.HTTPS[0].String()}
	deps := checkDeps{Resolver: fakeResolver{}}.withDefaults()

	r := runChecks(context.Background(), cfg, deps)
	for _, want := range []string{"listen.c2s " + cfg.Listen.C2S[0] + " answers", "listen.direct_tls " + cfg.Listen.DirectTLS[0] + " answers", "listen.https " + cfg.Listen.HTTPS[0] + " answers"} {
		if !r.has("Listeners", levelOK, want) {
			t.Errorf("no %q:\n%s", want, r)
		}
	}
	if !r.has("Listeners", levelNote, "reachability from other networks is not tested from here") || r.count(levelError) != 0 {
		t.Errorf("running server:\n%s", r)
	}

	// Something else on the c2s port, and a closed HTTPS port.
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closed.Close()
	cfg.Listen.C2S = []string{other.Addr().String()}
	cfg.Listen.HTTPS = []string{closed.Addr().String()}
	r = runChecks(context.Background(), cfg, deps)
	if !r.has("Listeners", levelError, "not with an XMPP stream offering STARTTLS") || !r.has("Listeners", levelError, "nothing listens there, though kiezd runs") {
		t.Errorf("wrong program and closed port:\n%s", r)
	}

	d.stop(t)
	cfg.Listen.C2S = []string{d.bound.C2S[0].String()}
	r = runChecks(context.Background(), cfg, deps)
	if !r.has("Listeners", levelWarn, "kiezd is not running") || r.has("Listeners", levelError, "") {
		t.Errorf("stopped server:\n%s", r)
	}
}

// A database written later than the clock says it is now shows a clock
// that is behind.
func TestCheckClockDatabase(t *testing.T) {
	file, dir := testConfig(t, "")
	fi, err := os.Stat(filepath.Join(dir, "data", "kiez.db"))
	if err != nil {
		t.Fatal(err)
	}
	deps := publicDeps(fakeResolver{})
	deps.Now = func() time.Time { return fi.ModTime().Add(time.Hour) }
	if r := checkFindings(t, file, deps); r.has("Clock", levelError, "") || !r.has("Clock", levelOK, "is after the database's last write") {
		t.Errorf("database written before now:\n%s", r)
	}
	deps.Now = func() time.Time { return fi.ModTime().Add(-time.Hour) }
	if r := checkFindings(t, file, deps); !r.has("Clock", levelError, "is behind: the database was last written at") {
		t.Errorf("database written an hour after now:\n%s", r)
	}
}

// With ACME, check reads the certificates autocert keeps; one not
// obtained yet is a note, and the service sub-domains, which autocert is
// not asked for, a warning.
func TestCheckACME(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	cache := filepath.Join(dir, "acme")
	os.MkdirAll(cache, 0o700)
	file := exampleConfig(t, "[tls.acme]\nenabled = true\ncache_dir = \""+cache+"\"\n")
	deps := publicDeps(goodDNS())
	deps.Roots = x509.NewCertPool()
	deps.Roots.AddCert(ca.cert)

	r := checkFindings(t, file, deps)
	if !r.has("Certificates", levelNote, "no ACME certificate for example.org yet") ||
		!r.has("Certificates", levelWarn, "ACME certificates are for the domains only: none covers upload.example.org") || r.count(levelError) != 0 {
		t.Errorf("empty cache:\n%s", r)
	}

	// autocert's cache file: the key, then the chain.
	writeCert(t, dir, "ex", certSpec{names: []string{"example.org"}, ca: ca})
	key, _ := os.ReadFile(filepath.Join(dir, "ex.key"))
	crt, _ := os.ReadFile(filepath.Join(dir, "ex.crt"))
	os.WriteFile(filepath.Join(cache, "example.org"), append(key, crt...), 0o600)
	r = checkFindings(t, file, deps)
	if !r.has("Certificates", levelOK, "acme/example.org: for example.org, valid until") || r.has("Certificates", levelNote, "no ACME certificate") {
		t.Errorf("cached certificate:\n%s", r)
	}
}

// A component's domain that no certificate covers, or without an
// address, is a warning of check: only other servers reach it.
func TestCheckComponents(t *testing.T) {
	ca := newTestCA(t)
	component := func(domain string) string {
		return "\n[[components.component]]\ndomain = \"" + domain + "\"\nsecret = \"s3cret\"\n"
	}
	for _, tc := range []struct {
		name, certNames, domain string
		wantCert, wantDNS       string // a warning expected, or none if ""
	}{
		{"covered by a wildcard", "example.org *.example.org", "bridge.example.org", "", ""},
		{"not covered", "example.org upload.example.org conference.example.org", "irc.example.org",
			"no certificate covers irc.example.org (a component's domain)", ""},
		{"under another domain", "example.org *.example.org", "gateway.example.net",
			"no certificate covers gateway.example.net (a component's domain)",
			"gateway.example.net (a component's domain; only federation looks it up) has no A or AAAA record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deps := publicDeps(goodDNS())
			deps.Roots = x509.NewCertPool()
			deps.Roots.AddCert(ca.cert)
			r := deps.Resolver.(fakeResolver)
			r.hosts["bridge.example.org"] = []string{"203.0.113.5"}
			r.hosts["irc.example.org"] = []string{"203.0.113.5"}
			cert := writeCert(t, t.TempDir(), "c", certSpec{names: strings.Fields(tc.certNames), ca: ca})
			rep := checkFindings(t, exampleConfig(t, cert+component(tc.domain)), deps)
			for _, w := range []struct{ group, want string }{{"Certificates", tc.wantCert}, {"DNS", tc.wantDNS}} {
				switch {
				case w.want != "" && !rep.has(w.group, levelWarn, w.want):
					t.Errorf("no warning %q:\n%s", w.want, rep)
				case w.want == "" && rep.has(w.group, levelWarn, tc.domain):
					t.Errorf("a %s warning about %s:\n%s", w.group, tc.domain, rep)
				}
			}
			if rep.has("Certificates", levelError, "") || rep.has("DNS", levelError, "") {
				t.Errorf("an error:\n%s", rep)
			}
		})
	}
}

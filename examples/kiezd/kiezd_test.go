package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
)

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"frobnicate"}, 2, "kiezd: unknown command \"frobnicate\"\n"},
		{[]string{"adduser"}, 2, "kiezd: adduser: wrong number of arguments\n"},
		{[]string{"users", "a", "b"}, 2, "kiezd: users: wrong number of arguments\n"},
		{[]string{"-nope"}, 2, "kiezd: flag provided but not defined: -nope\n"},
		{[]string{"-config", "/nonexistent/kiezd.toml", "check-config"}, 1, "kiezd: config /nonexistent/kiezd.toml: no such file or directory\n"},
		{[]string{"check-config", "-config", "testdata/bad-duration.toml"}, 1, "kiezd: config testdata/bad-duration.toml:4: limits.ping_after: \"4 minutes\" is not a duration such as \"60s\", \"4m\" or \"30d\"\n"},
	} {
		code, _, stderr := kiezd(t, "", tc.args...)
		first, _, _ := strings.Cut(stderr, "Run 'kiezd -h'")
		if code != tc.code || first != tc.err {
			t.Errorf("kiezd %s: exit %d, stderr %q; want %d, %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.err)
		}
	}
	code, stdout, _ := kiezd(t, "", "-h")
	if code != 0 || !strings.Contains(stdout, "adduser JID") {
		t.Errorf("-h: exit %d, %q", code, stdout)
	}
}

func TestCheckConfig(t *testing.T) {
	file, _ := testConfig(t, "")
	code, stdout, stderr := kiezd(t, "", "-config", file, "check-config")
	if code != 0 || !strings.Contains(stdout, "config "+file+": OK") || !strings.Contains(stdout, "self-signed") {
		t.Errorf("good config: exit %d\n%s%s", code, stdout, stderr)
	}

	// Configured certificates are read: a missing one is reported.
	file, _ = testConfig(t, "[[tls.certificates]]\ncert = \"missing.crt\"\nkey = \"missing.key\"\n")
	code, _, stderr = kiezd(t, "", "-config", file, "check-config")
	want := "kiezd: cannot read certificate " + filepath.Join(filepath.Dir(file), "missing.crt") + ": no such file or directory\n"
	if code != 1 || stderr != want {
		t.Errorf("missing certificate: exit %d, %q; want %q", code, stderr, want)
	}

	// The HTTP keys are checked with the file's line; a plain HTTP
	// listener open to the network is a warning.
	file, _ = testConfig(t, "http = [\":0\"]\n[http]\nexternal_url = \"https://upload.example.org/\"\n")
	code, stdout, stderr = kiezd(t, "", "-config", file, "check-config")
	if code != 0 || !strings.Contains(stdout, `warning: listen.http ":0" is reachable from other machines`) || !strings.Contains(stdout, "  HTTP URLs:    https://upload.example.org/\n") {
		t.Errorf("plain HTTP on all interfaces: exit %d\n%s%s", code, stdout, stderr)
	}
	file, _ = testConfig(t, "[http]\nrequest_timeout = \"1h\"\nexternal_url = \"example.org\"\n")
	code, _, stderr = kiezd(t, "", "-config", file, "check-config")
	want = "kiezd: config " + file + ":11: http.external_url: \"example.org\" is not an https URL"
	if code != 1 || !strings.HasPrefix(stderr, want) {
		t.Errorf("bad external_url: exit %d, %q; want %q...", code, stderr, want)
	}

	for _, bad := range []string{"testdata/unknown-key.toml", "testdata/bad-domain.toml", "testdata/syntax.toml"} {
		code, stdout, stderr := kiezd(t, "", "-config", bad, "check-config")
		if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "kiezd: config "+bad+":") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", bad, code, stdout, stderr)
		}
	}
}

// verify checks a password against the stored SCRAM keys, as a login
// would, by opening the database directly.
func verify(t *testing.T, dbPath, user, password string) bool {
	t.Helper()
	st, err := bbolt.Open(dbPath, bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := st.Account(context.Background(), user)
	if errors.Is(err, storage.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return scram.VerifyPlain(a.Keys[storage.SHA256], storage.SHA256, password)
}

// TestUserCommands runs the account commands on the database without a
// server, and on a running server through its control socket: the same
// answers either way, and live changes take effect at once.
func TestUserCommands(t *testing.T) {
	pinBackend(t, backendBbolt) // the bbolt file itself
	for _, live := range []bool{false, true} {
		name := "direct"
		if live {
			name = "live"
		}
		t.Run(name, func(t *testing.T) { testUserCommands(t, live) })
	}
}

func testUserCommands(t *testing.T, live bool) {
	file, dir := testConfig(t, "")
	db := filepath.Join(dir, "data", "kiez.db")
	var d *daemon
	if live {
		d = startServe(t, nil, "-config", file)
		if d.ended {
			t.Fatalf("serve exited with %d:\n%s", d.code, d.stderr)
		}
	}
	// checkPassword verifies a password as a login would: on the
	// database, or by logging in to the running server.
	checkPassword := func(user, password string) bool {
		t.Helper()
		if !live {
			return verify(t, db, user, password)
		}
		sess, err := login(t, d.bound.C2S[0], false, user, password)
		if err != nil {
			return false
		}
		logout(sess)
		return true
	}
	today := time.Now().UTC().Format(time.DateOnly) // the test could span midnight; then it fails once
	k := func(stdin string, args ...string) (int, string, string) {
		return kiezd(t, stdin, append([]string{"-config", file}, args...)...)
	}
	last := "never" // logged in to by checkPassword when live
	if live {
		last = today
	}
	tooShort := "kiezd: the password is too short: it needs at least 8 characters\n"
	steps := []struct {
		stdin          string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"s3cret pass\n", []string{"adduser", "alice@localhost"}, 0, "created alice@localhost\n", ""},
		{"other pass\r\n", []string{"adduser", "Bob@LOCALHOST"}, 0, "created bob@localhost\n", ""},
		{"x\n", []string{"adduser", "alice@localhost"}, 1, "", "kiezd: alice@localhost already exists\n"},
		{"x\n", []string{"adduser", "carol@example.org"}, 1, "", "kiezd: example.org is not a configured domain (domains: localhost)\n"},
		{"x\n", []string{"adduser", "localhost"}, 2, "", "kiezd: \"localhost\" is not a user address such as alice@localhost\nRun 'kiezd -h' for usage.\n"},
		{"", []string{"adduser", "carol@localhost"}, 1, "", "kiezd: no password on standard input (give it as one line, or run in a terminal to be asked)\n"},
		{"\n", []string{"adduser", "carol@localhost"}, 1, "", "kiezd: no password on standard input (give it as one line, or run in a terminal to be asked)\n"},
		{"x\n", []string{"adduser", "carol@localhost"}, 1, "", tooShort},
		{"1234567\n", []string{"adduser", "carol@localhost"}, 1, "", tooShort},
		{"", []string{"users"}, 0, "alice@localhost  created " + today + "  last login " + last + "\nbob@localhost    created " + today + "  last login " + last + "\n", ""},
		{"", []string{"users", "localhost"}, 0, "alice@localhost  created " + today + "  last login " + last + "\nbob@localhost    created " + today + "  last login " + last + "\n", ""},
		{"", []string{"users", "example.org"}, 1, "", "kiezd: example.org is not a configured domain (domains: localhost)\n"},
		{"x", []string{"passwd", "alice@localhost"}, 1, "", tooShort},
		{"n3w pass", []string{"passwd", "alice@localhost"}, 0, "changed the password of alice@localhost\n", ""},
		{"x\n", []string{"passwd", "carol@localhost"}, 1, "", "kiezd: there is no account carol@localhost\n"},
		{"", []string{"revoke-tokens", "alice@localhost"}, 0, "revoked the FAST tokens of alice@localhost: its devices log in with the password again\n", ""},
		{"", []string{"revoke-tokens", "carol@localhost"}, 1, "", "kiezd: there is no account carol@localhost\n"},
		{"", []string{"deluser", "bob@localhost"}, 0, "deleted bob@localhost and all its data\n", ""},
		{"", []string{"deluser", "bob@localhost"}, 1, "", "kiezd: there is no account bob@localhost\n"},
	}
	for _, s := range steps {
		code, stdout, stderr := k(s.stdin, s.args...)
		if code != s.code || stdout != s.stdout || stderr != s.stderr {
			t.Errorf("kiezd %s <<< %q:\n exit %d, stdout %q, stderr %q\nwant %d, %q, %q",
				strings.Join(s.args, " "), s.stdin, code, stdout, stderr, s.code, s.stdout, s.stderr)
		}
		if s.args[0] == "adduser" && s.code == 0 {
			if !checkPassword(strings.ToLower(s.args[1]), strings.TrimRight(s.stdin, "\r\n")) {
				t.Errorf("after %v the password does not verify", s.args)
			}
		}
	}
	if checkPassword("alice@localhost", "s3cret pass") || !checkPassword("alice@localhost", "n3w pass") {
		t.Error("passwd did not replace the password")
	}
	if checkPassword("bob@localhost", "other pass") {
		t.Error("bob can log in after deluser")
	}
	if code, stdout, stderr := k("", "users"); code != 0 || stdout != "alice@localhost  created "+today+"  last login "+last+"\n" {
		t.Errorf("users at the end: exit %d, %q, %q", code, stdout, stderr)
	}
	if live {
		if code := d.stop(t); code != 0 {
			t.Errorf("serve exited with %d:\n%s", code, d.stderr)
		}
		if !verify(t, db, "alice@localhost", "n3w pass") {
			t.Error("the password set live is not in the database after the stop")
		}
	}
	// The flags may also follow the command, and -data-dir overrides
	// data_dir.
	other := t.TempDir()
	createDB(t, other)
	if code, _, stderr := kiezd(t, "password\n", "adduser", "-config", file, "-data-dir", other, "dave@localhost"); code != 0 {
		t.Fatalf("adduser with -data-dir: %s", stderr)
	}
	if !verify(t, filepath.Join(other, "kiez.db"), "dave@localhost", "password") {
		t.Error("adduser with -data-dir did not use that directory")
	}
}

func TestServeAndLogin(t *testing.T) { onBothBackends(t, testServeAndLogin) }

func testServeAndLogin(t *testing.T) {
	file, dir := testConfig(t, "")
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited with %d:\n%s", d.code, d.stderr)
	}
	for _, tc := range []struct {
		name   string
		addr   net.Addr
		direct bool
	}{
		{"STARTTLS", d.bound.C2S[0], false},
		{"direct TLS", d.bound.DirectTLS[0], true},
	} {
		sess, err := login(t, tc.addr, tc.direct, "alice@localhost", "password")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := sess.LocalAddr().Bare().String(); got != "alice@localhost" {
			t.Errorf("%s: bound as %s", tc.name, got)
		}
		logout(sess)
		if _, err := login(t, tc.addr, tc.direct, "alice@localhost", "wrong"); err == nil {
			t.Errorf("%s: logged in with a wrong password", tc.name)
		}
	}

	// While it runs, the admin commands go through its control socket,
	// and a second server finds the database locked.
	if code, _, stderr := kiezd(t, "bob's password\n", "-config", file, "adduser", "bob@localhost"); code != 0 {
		t.Errorf("adduser while serving: exit %d, %q", code, stderr)
	}
	if sess, err := login(t, d.bound.C2S[0], false, "bob@localhost", "bob's password"); err != nil {
		t.Errorf("login with the account created while serving: %v", err)
	} else {
		logout(sess)
	}
	wantLocked := "kiezd: the database " + filepath.Join(dir, "data", "kiez.db") + " is in use by another process (is kiezd running?)\n"
	if testBackend(t) == backendPostgres {
		cfg, err := loadConfig(file)
		if err != nil {
			t.Fatal(err)
		}
		wantLocked = "kiezd: the " + cfg.databaseName() + " is in use by another kiezd\n"
	}
	var stderr2 syncBuffer
	d2 := startServe(t, &stderr2, "-config", file)
	if !d2.ended || d2.code != 1 || !strings.HasSuffix(stderr2.String(), wantLocked) {
		t.Errorf("second serve: ended %v, exit %d, stderr %q", d2.ended, d2.code, stderr2.String())
	}

	if code := d.stop(t); code != 0 {
		t.Errorf("serve exited with %d:\n%s", code, d.stderr)
	}
	if !strings.Contains(d.stderr.String(), `msg="kiezd stopped"`) {
		t.Errorf("no stop line in the log:\n%s", d.stderr)
	}
}

func TestServePortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	file, _ := testConfig(t, "")
	data, _ := os.ReadFile(file)
	data = bytes.Replace(data, []byte(`direct_tls = ["127.0.0.1:0"]`), fmt.Appendf(nil, "direct_tls = [%q]", busy.Addr()), 1)
	os.WriteFile(file, data, 0o600)

	var stderr syncBuffer
	d := startServe(t, &stderr, "-config", file)
	want := fmt.Sprintf("kiezd: cannot listen on %s: address already in use\n", busy.Addr())
	if !d.ended || d.code != 1 || !strings.HasSuffix(stderr.String(), want) {
		t.Errorf("ended %v, exit %d, stderr %q; want it to end with %q", d.ended, d.code, stderr.String(), want)
	}
	// The first listener was closed again and the database released.
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Errorf("database still locked: %s", stderr)
	}
}

func TestServeBadCertificate(t *testing.T) {
	file, dir := testConfig(t, "[[tls.certificates]]\ncert = \"c.pem\"\nkey = \"k.pem\"\n")
	os.WriteFile(filepath.Join(dir, "c.pem"), []byte("not a certificate"), 0o600)
	os.WriteFile(filepath.Join(dir, "k.pem"), []byte("not a key"), 0o600)
	var stderr syncBuffer
	d := startServe(t, &stderr, "-config", file)
	want := "kiezd: cannot load certificate " + filepath.Join(dir, "c.pem") + " with key " + filepath.Join(dir, "k.pem") + ": tls: failed to find any PEM data in certificate input\n"
	if !d.ended || d.code != 1 || stderr.String() != want {
		t.Errorf("ended %v, exit %d, stderr %q; want %q", d.ended, d.code, stderr.String(), want)
	}
}

// peerCert returns the DER certificate a direct TLS listener presents.
func peerCert(t *testing.T, addr net.Addr) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", addr.String(), clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// pemDER decodes the first PEM block of a file.
func pemDER(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	return b.Bytes
}

func TestSelfSignedKeptAcrossRestarts(t *testing.T) {
	file, dir := testConfig(t, "")
	crt := filepath.Join(dir, "data", "tls", "localhost.crt")
	key := filepath.Join(dir, "data", "tls", "localhost.key")

	d := startServe(t, nil, "-config", file)
	first, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if !bytes.Equal(peerCert(t, d.bound.DirectTLS[0]), pemDER(t, crt)) {
		t.Error("the server does not present the certificate it wrote")
	}
	if !strings.Contains(d.stderr.String(), "generated a self-signed certificate") {
		t.Errorf("no warning about the generated certificate:\n%s", d.stderr)
	}
	d.stop(t)

	d = startServe(t, nil, "-config", file)
	second, _ := os.ReadFile(crt)
	if !bytes.Equal(first, second) {
		t.Error("the second start replaced the certificate")
	}
	if !bytes.Equal(peerCert(t, d.bound.DirectTLS[0]), pemDER(t, crt)) {
		t.Error("the second start presents another certificate")
	}
	if strings.Contains(d.stderr.String(), "generated") {
		t.Errorf("the second start generated again:\n%s", d.stderr)
	}
}

// writePair writes a fresh self-signed certificate for domain.
func writePair(t *testing.T, certPath, keyPath, domain string) []byte {
	t.Helper()
	c, certPEM, keyPEM, err := server.SelfSigned(domain)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return c.Certificate[0]
}

func TestCertStoreReload(t *testing.T) {
	dir := t.TempDir()
	f := certConfig{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "k.pem")}
	g := certConfig{Cert: filepath.Join(dir, "g.pem"), Key: filepath.Join(dir, "gk.pem")}
	old := writePair(t, f.Cert, f.Key, "example.org")
	otherDom := writePair(t, g.Cert, g.Key, "example.net")
	s, err := newCertStore([]certConfig{f, g})
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) []byte {
		c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			t.Fatal(err)
		}
		return c.Certificate[0]
	}
	if !bytes.Equal(get("example.org"), old) || !bytes.Equal(get("example.net"), otherDom) || !bytes.Equal(get(""), old) {
		t.Fatal("certificates not chosen by server name")
	}
	if w := s.check([]string{"example.org", "example.com"}, time.Now()); len(w) != 1 || !strings.Contains(w[0], "example.com") {
		t.Errorf("check = %q, want a warning about example.com", w)
	}

	renewed := writePair(t, f.Cert, f.Key, "example.org")
	if err := s.reload(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(get("example.org"), renewed) {
		t.Error("reload did not pick up the renewed certificate")
	}

	// A broken file fails the reload and keeps the previous set.
	os.WriteFile(f.Key, []byte("garbage"), 0o600)
	if err := s.reload(); err == nil || !strings.Contains(err.Error(), f.Key) {
		t.Errorf("reload with a broken key: %v", err)
	}
	if !bytes.Equal(get("example.org"), renewed) {
		t.Error("a failed reload dropped the certificate")
	}
}

// SIGHUP makes a running server present renewed certificates; a broken
// file is logged and the old certificate stays.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	file, dir := testConfig(t, "[[tls.certificates]]\ncert = \"c.pem\"\nkey = \"k.pem\"\n")
	crt, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	first := writePair(t, crt, key, "localhost")
	d := startServe(t, nil, "-config", file)
	if !bytes.Equal(peerCert(t, d.bound.DirectTLS[0]), first) {
		t.Fatal("not serving the configured certificate")
	}
	waitLog := func(s string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(d.stderr.String(), s); {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", s, d.stderr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	second := writePair(t, crt, key, "localhost")
	d.sigs <- syscall.SIGHUP
	waitLog("certificates reloaded")
	for _, a := range []net.Addr{d.bound.DirectTLS[0], d.bound.HTTPS[0]} {
		if !bytes.Equal(peerCert(t, a), second) {
			t.Errorf("SIGHUP did not load the renewed certificate on %s", a)
		}
	}
	os.WriteFile(crt, []byte("truncated"), 0o600)
	d.sigs <- syscall.SIGHUP
	waitLog("reloading certificates failed")
	for _, a := range []net.Addr{d.bound.DirectTLS[0], d.bound.HTTPS[0]} {
		if !bytes.Equal(peerCert(t, a), second) {
			t.Errorf("a failed reload changed the certificate on %s", a)
		}
	}
	if code := d.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// With ACME, kiezd answers challenges on its own listeners and asks the
// CA for certificates at start; a CA that fails is logged, not fatal.
func TestServeACME(t *testing.T) {
	ca := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NotFound(w, r) // not an ACME CA: fails at once, without retries
	}))
	defer ca.Close()
	file, dir := testConfig(t, fmt.Sprintf(`[tls.acme]
enabled = true
directory_url = %q
listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
`, ca.URL))
	data, _ := os.ReadFile(file)
	os.WriteFile(file, bytes.Replace(data, []byte(`"localhost"`), []byte(`"chat.example"`), 1), 0o600)

	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("exit %d:\n%s", d.code, d.stderr)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get("http://" + d.bound.ACMEHTTP.String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
		t.Errorf("GET / = %s, Location %q; want a redirect to https", resp.Status, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest("GET", "http://"+d.bound.ACMEHTTP.String()+"/.well-known/acme-challenge/unknown", nil)
	req.Host = "chat.example"
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown challenge: %s", resp.Status)
	}
	c, err := net.Dial("tcp", d.bound.ACMETLS.String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(d.stderr.String(), "acme: cannot obtain a certificate"); {
		if time.Now().After(deadline) {
			t.Fatalf("the CA failure was not logged:\n%s", d.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := d.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "tls")); err == nil {
		t.Error("a self-signed certificate was made although ACME is on")
	}
}

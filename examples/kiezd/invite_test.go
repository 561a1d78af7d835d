package main

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// registerToken registers user with password in-band (XEP-0077) with the
// invitation token in the registration data form, and returns the
// answer's type and inner XML.
func registerToken(t *testing.T, addr, user, password, token string) (typ, inner string) {
	t.Helper()
	c, _ := registerStream(t, addr)
	c.send(`<iq type='set' id='reg'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>`+
		`<field var='FORM_TYPE' type='hidden'><value>jabber:iq:register</value></field>`+
		`<field var='username'><value>%s</value></field>`+
		`<field var='password'><value>%s</value></field>`+
		`<field var='token'><value>%s</value></field>`+
		`</x></query></iq>`, user, password, token)
	return c.answer(t)
}

var (
	inviteURIRe = regexp.MustCompile(`(?m)^xmpp:localhost\?register;preauth=([A-Za-z0-9_-]{24})$`)
	inviteURLRe = regexp.MustCompile(`(?m)^https://localhost:(\d+)/invite/([A-Za-z0-9_-]{24})$`)
)

// tokenOf returns the token of the URI invite printed.
func tokenOf(t *testing.T, out string) string {
	t.Helper()
	m := inviteURIRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no invitation URI in %q", out)
	}
	return m[1]
}

// kiezd invite on a running server prints an invitation of its own invite
// module: the landing page answers, the token registers one account,
// which logs in, and only once. A first start without accounts logs a
// one-time invitation of the same kind.
func TestInviteLive(t *testing.T) {
	file, _ := testConfig(t, "\n[filter]\nregistration_rate = 100\n")
	logs := new(syncBuffer)
	d := startServe(t, logs, "-config", file)
	if d.ended {
		t.Fatalf("serve exited with %d:\n%s", d.code, logs)
	}
	c2s := d.bound.C2S[0].String()
	// The first start's log line names the URI and the landing URL.
	lm := regexp.MustCompile(`one-time invitation: open https://localhost:\d+/invite/([A-Za-z0-9_-]{24}) or the URI xmpp:localhost\?register;preauth=([A-Za-z0-9_-]{24}) `).FindStringSubmatch(logs.String())
	if lm == nil || lm[1] != lm[2] {
		t.Fatalf("the first start logs no invitation:\n%s", logs)
	}
	first := lm[1]
	if typ, inner := registerToken(t, c2s, "boss", "a long password", first); typ != "result" {
		t.Errorf("registering with the first start's invitation: %s %s", typ, inner)
	}

	code, stdout, stderr := kiezd(t, "", "-config", file, "invite", "--for", "2d")
	if code != 0 {
		t.Fatalf("invite: exit %d, %s", code, stderr)
	}
	token := tokenOf(t, stdout)
	m := inviteURLRe.FindStringSubmatch(stdout)
	if m == nil || m[2] != token {
		t.Fatalf("no landing URL of the token in %q", stdout)
	}
	if _, port, _ := net.SplitHostPort(d.bound.HTTPS[0].String()); m[1] != port {
		t.Errorf("landing URL on port %s, HTTPS listens on %s", m[1], port)
	}
	if !strings.Contains(stdout, "creates one account on localhost, once, until ") {
		t.Errorf("invite: %q", stdout)
	}
	resp, _ := get(t, webClient(t, false), "https://"+d.bound.HTTPS[0].String()+"/invite/"+token)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the landing page: %s", resp.Status)
	}
	if typ, inner := registerToken(t, c2s, "newbie", "a long password", token); typ != "result" {
		t.Fatalf("registering with the invitation: %s %s", typ, inner)
	}
	sess, err := login(t, d.bound.C2S[0], false, "newbie@localhost", "a long password")
	if err != nil {
		t.Fatalf("login after registering: %v", err)
	}
	logout(sess)
	if typ, inner := registerToken(t, c2s, "second", "a long password", token); typ != "error" || !strings.Contains(inner, "not-allowed") {
		t.Errorf("a second use of the invitation: %s %s", typ, inner)
	}

	// --user fixes the username.
	code, stdout, stderr = kiezd(t, "", "-config", file, "invite", "--user", "carol")
	if code != 0 || !strings.Contains(stdout, "xmpp:carol@localhost?register;preauth=") || !strings.Contains(stdout, "the account carol@localhost") {
		t.Fatalf("invite --user carol: exit %d, %q, %s", code, stdout, stderr)
	}
	token = regexp.MustCompile(`preauth=([A-Za-z0-9_-]+)`).FindStringSubmatch(stdout)[1]
	if typ, _ := registerToken(t, c2s, "dave", "a long password", token); typ != "error" {
		t.Errorf("another name registered with carol's invitation")
	}
	if typ, inner := registerToken(t, c2s, "carol", "a long password", token); typ != "result" {
		t.Errorf("registering carol: %s %s", typ, inner)
	}

	for _, args := range [][]string{{"--for", "91d"}, {"--for", "0s"}, {"extra"}} {
		if code, _, _ := kiezd(t, "", append([]string{"-config", file, "invite"}, args...)...); code != 2 {
			t.Errorf("invite %v: exit %d, want 2", args, code)
		}
	}
	d.stop(t)
}

// Without a running server, invite writes the invitation to the database;
// the next serve redeems it.
func TestInviteOffline(t *testing.T) { onBothBackends(t, testInviteOffline) }

func testInviteOffline(t *testing.T) {
	file, _ := testConfig(t, "")
	code, stdout, stderr := kiezd(t, "", "-config", file, "invite")
	if code != 0 {
		t.Fatalf("invite: exit %d, %s", code, stderr)
	}
	token := tokenOf(t, stdout)
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited with %d:\n%s", d.code, d.stderr)
	}
	if typ, inner := registerToken(t, d.bound.C2S[0].String(), "newbie", "a long password", token); typ != "result" {
		t.Errorf("registering with the offline invitation: %s %s", typ, inner)
	}
	d.stop(t)
}

// With registration closed, invite refuses, and a first start gives the
// adduser hint; with it open, the first start says so.
func TestInviteClosed(t *testing.T) {
	file, _ := testConfig(t, "\n[registration]\npolicy = \"closed\"\n")
	code, stdout, stderr := kiezd(t, "", "-config", file, "invite")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "registration is closed") {
		t.Errorf("invite with registration closed: exit %d, %q, %q", code, stdout, stderr)
	}
	logs := new(syncBuffer)
	d := startServe(t, logs, "-config", file)
	if code, _, stderr := kiezd(t, "", "-config", file, "invite"); code != 1 || !strings.Contains(stderr, "registration is closed") {
		t.Errorf("live invite with registration closed: exit %d, %q", code, stderr)
	}
	d.stop(t)
	if s := logs.String(); !strings.Contains(s, "adduser <name>@localhost") || strings.Contains(s, "preauth") {
		t.Errorf("first start with registration closed:\n%s", s)
	}

	open, _ := testConfig(t, "\n[registration]\npolicy = \"open\"\n")
	logs = new(syncBuffer)
	d = startServe(t, logs, "-config", open)
	d.stop(t)
	if s := logs.String(); !strings.Contains(s, "registration is open") || strings.Contains(s, "preauth") {
		t.Errorf("first start with registration open:\n%s", s)
	}
}

// The IP filter stands in front of the HTTPS listener: a banned address
// gets no answer, an allowed one does; open connections count against
// max_unauthenticated until they close.
func TestHTTPSFiltered(t *testing.T) {
	file, _ := testConfig(t, "\n[filter]\nmax_unauthenticated = 3\nconn_rate = 1000\n")
	d := startServe(t, nil, "-config", file)
	addr := d.bound.HTTPS[0].String()
	// fetch asks for a page on a connection of its own, and returns once
	// the server has closed the TCP connection: kiezd releases a
	// connection's count before it closes it, so when fetch returns, the
	// connection no longer counts. (An HTTP client returns as soon as it
	// has the answer, which may be before the server closed.)
	fetch := func() error {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(raw, clientTLS())
		if _, err := io.WriteString(tc, "GET /invite/nothing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return serverClosed(raw)
	}
	if err := fetch(); err != nil {
		t.Fatalf("an allowed address: %v", err)
	}
	if code, _, stderr := kiezd(t, "", "-config", file, "ban", "127.0.0.1"); code != 0 {
		t.Fatal(stderr)
	}
	if err := fetch(); err == nil {
		t.Error("a banned address got an HTTPS answer")
	}
	if code, _, stderr := kiezd(t, "", "-config", file, "unban", "127.0.0.1"); code != 0 {
		t.Fatal(stderr)
	}
	// More requests than max_unauthenticated, each on its own
	// connection: ended connections do not count.
	for i := range 10 {
		if err := fetch(); err != nil {
			t.Fatalf("request %d after unban: %v", i, err)
		}
	}
	// Connections held open do, until they close.
	var held []*tls.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		// A finished handshake means the listener accepted (and counted)
		// the connection.
		tc := tls.Client(c, clientTLS())
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		held = append(held, tc)
	}
	if err := fetch(); err == nil {
		t.Error("an HTTPS answer beyond max_unauthenticated open connections")
	}
	// The client ends each held connection (TLS close_notify); the
	// server, waiting for a request, closes its end then.
	for _, tc := range held {
		if err := tc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if err := serverClosed(tc.NetConn()); err != nil {
			t.Fatal(err)
		}
		tc.Close()
	}
	if err := fetch(); err != nil {
		t.Errorf("no HTTPS answer after the held connections closed: %v", err)
	}
	d.stop(t)
}

// serverClosed reads what is left on a connection until the server
// closes it.
func serverClosed(raw net.Conn) error {
	_, err := io.Copy(io.Discard, raw)
	return err
}

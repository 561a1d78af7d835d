package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/xml"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

func TestS2SBidi(t *testing.T) {
	noBidi := fedOptions{s2s: server.S2SConfig{NoBidi: true}}
	for _, tc := range []struct {
		name         string
		a, b         fedOptions
		wantA, wantB int64 // connections accepted by a.test and b.test
	}{
		// One connection, a.test's, carries the stanzas both ways.
		{"sasl", fedOptions{}, fedOptions{}, 0, 1},
		// b.test verifies a.test's dialback key on a connection of its
		// own, then answers on a.test's.
		{"dialback", fedOptions{certNames: []string{"other.test"}}, fedOptions{}, 1, 1},
		// Without bidi on either side, each server opens its own.
		{"not offered", fedOptions{}, noBidi, 1, 1},
		{"not asked for", noBidi, fedOptions{}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := federate(t, tc.a, tc.b)
			_, bob, ca, cb := fedUsers(t, a, b)
			exchange(ca, cb, bob, "to bob", "to alice")
			// An iq from b.test and its answer.
			disco := xml.Name{Space: "http://jabber.org/protocol/disco#info", Local: "query"}
			cb.Send(&stanza.Stanza{Kind: stanza.IQKind, ID: "bdisco", Type: stanza.Get, To: jid.MustParse("a.test"),
				Inner: []xml.Token{xml.StartElement{Name: disco}, xml.EndElement{Name: disco}}})
			if res := cb.Expect(servertest.ByID("bdisco")); res.Type != stanza.Result {
				t.Fatalf("disco#info of a.test: %s (%s)", res.Type, errorCondition(res))
			}
			exchange(ca, cb, bob, "again", "again back")
			if gotA, gotB := a.Accepted.Load(), b.Accepted.Load(); gotA != tc.wantA || gotB != tc.wantB {
				t.Fatalf("connections accepted by a.test %d, b.test %d; want %d, %d", gotA, gotB, tc.wantA, tc.wantB)
			}
		})
	}
}

// fakePeer is the receiving server of one s2s stream, played by a test.
type fakePeer struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// until reads up to and including want and returns what it read.
func (p *fakePeer) until(want string) string {
	p.t.Helper()
	var got strings.Builder
	for !strings.HasSuffix(got.String(), want) {
		b, err := p.br.ReadByte()
		if err != nil {
			p.t.Fatalf("waiting for %q, got %q: %v", want, got.String(), err)
		}
		got.WriteByte(b)
	}
	return got.String()
}

func (p *fakePeer) send(s string) {
	p.t.Helper()
	if _, err := p.nc.Write([]byte(s)); err != nil {
		p.t.Fatal(err)
	}
}

// fakeOpen is b.test's opening of its stream to a.test, with id.
func fakeOpen(id string) string {
	return strings.Replace(s2sOpen("b.test", "a.test"), " version=", " id='"+id+"' version=", 1)
}

// acceptFake accepts a.test's stream on ln as b.test with the
// certificate cert, negotiates STARTTLS and offers features.
func acceptFake(t *testing.T, ln *net.TCPListener, cert tls.Certificate, features string) *fakePeer {
	t.Helper()
	ln.SetDeadline(time.Now().Add(30 * time.Second))
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	p := &fakePeer{t: t, nc: nc, br: bufio.NewReader(nc)}
	p.until("version='1.0'>")
	p.send(fakeOpen("fake1") + `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`)
	p.until("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	p.send(`<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	tc := tls.Server(nc, &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	p.nc, p.br = tc, bufio.NewReader(tc)
	p.until("version='1.0'>")
	p.send(fakeOpen("fake2") + `<stream:features>` + features + `</stream:features>`)
	return p
}

// startFakeFederation starts a.test, with a certificate for certName and
// cfg, whose stanzas for b.test go to a listener the test plays b.test
// on.
func startFakeFederation(t *testing.T, certName string, cfg server.S2SConfig) (a *servertest.Server, aS2S string, fake *net.TCPListener, ca *testCA) {
	t.Helper()
	ca = newTestCA(t)
	fake, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	cfg.Hosts, cfg.RootCAs = map[string]string{"b.test": fake.Addr().String()}, ca.pool
	lnA, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a = servertest.Start(t, server.Config{Domains: []string{"a.test"},
		TLS: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, certName)}},
		S2S: &cfg})
	go a.ServeS2S(lnA)
	return a, lnA.Addr().String(), fake, ca
}

func TestS2SBidiForgedFrom(t *testing.T) {
	a, _, fake, ca := startFakeFederation(t, "a.test", server.S2SConfig{})
	alice := a.AddUser(t, "alice", "pw")
	c := a.Connect(t, alice, "pw")
	c.Send(presence())
	c.Sync()
	c.Send(message(jid.MustParse("bob@b.test"), "f1", "hello b"))

	p := acceptBidi(t, fake, ca)
	p.until("hello b</body></message>")

	// b.test's stanzas on a.test's stream: from b.test, delivered.
	p.send(`<message from='bob@b.test/r' to='alice@a.test' type='chat' id='g1'><body>genuine</body></message>`)
	if got := c.Expect(servertest.Body("genuine")); got.From.String() != "bob@b.test/r" {
		t.Fatalf("from %s", got.From)
	}
	// From another domain: the stream ends with invalid-from.
	p.send(`<message from='mallory@c.test/r' to='alice@a.test' type='chat' id='g2'><body>forged</body></message>`)
	if got := p.until("</stream:stream>"); !strings.Contains(got, "<invalid-from") {
		t.Fatalf("after a forged from: %q", got)
	}
	c.SyncNone(servertest.Body("forged"))
}

// acceptBidi accepts a.test's stream as b.test with a certificate from
// ca, offering bidi and SASL EXTERNAL, and authenticates it.
func acceptBidi(t *testing.T, fake *net.TCPListener, ca *testCA) *fakePeer {
	t.Helper()
	p := acceptFake(t, fake, ca.issue(t, "b.test"),
		`<bidi xmlns='urn:xmpp:features:bidi'/><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>`)
	if got := p.until("</auth>"); !strings.Contains(got, "<bidi xmlns='urn:xmpp:bidi'/>") {
		t.Fatalf("no <bidi/> before authentication: %q", got)
	}
	p.send(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
	p.until("version='1.0'>")
	p.send(fakeOpen("fake3") + `<stream:features/>`)
	return p
}

// TestS2SBidiReadRate: the peer's side of a bidirectional stream a.test
// opened is read at S2SConfig.ReadRate, as the streams the peer opens
// are: a flood of it waits for the clock the test holds.
func TestS2SBidiReadRate(t *testing.T) {
	a, _, fake, ca := startFakeFederation(t, "a.test", server.S2SConfig{ReadRate: 4 << 10})
	clk := server.NewRateClock()
	a.SetRateClock(clk)
	alice := a.AddUser(t, "alice", "pw")
	c := a.Connect(t, alice, "pw")
	c.Send(message(jid.MustParse("bob@b.test"), "r1", "hello b"))
	p := acceptBidi(t, fake, ca)
	p.until("hello b</body></message>")
	go func() {
		// Presence to no account is dropped; far more than a burst.
		status := strings.Repeat("x", 8<<10)
		for range 100 {
			if _, err := p.nc.Write([]byte(`<presence from='bob@b.test/r' to='nobody@a.test'><status>` + status + `</status></presence>`)); err != nil {
				return
			}
		}
	}()
	pollFor(t, "the peer's stanzas to be throttled", func() bool { return clk.Sleeping() == 1 })
	shutdownAdvancing(t, a.Server, clk)
}

func TestS2SExternalRefusedThenDialback(t *testing.T) {
	// a.test's certificate does not cover a.test: b.test (played by the
	// test) refuses SASL EXTERNAL, and a.test authenticates by dialback
	// on the same stream, which b.test verifies with a.test.
	a, aS2S, fake, ca := startFakeFederation(t, "other.test", server.S2SConfig{})
	alice := a.AddUser(t, "alice", "pw")
	c := a.Connect(t, alice, "pw")
	c.Send(message(jid.MustParse("bob@b.test"), "e1", "after dialback"))

	bCert := ca.issue(t, "b.test")
	p := acceptFake(t, fake, bCert,
		`<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>`)
	p.until("</auth>")
	cs := p.nc.(*tls.Conn).ConnectionState()
	if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].VerifyHostname("a.test") == nil {
		t.Fatal("a.test's certificate should not cover a.test")
	}
	p.send(`<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>`)
	req := p.until("</db:result>")
	body := strings.TrimSuffix(req, "</db:result>")
	key := body[strings.LastIndex(body, ">")+1:]
	if !strings.Contains(req, "from='a.test'") || key == "" {
		t.Fatalf("dialback request %q", req)
	}

	// b.test asks a.test, its authoritative server, about the key.
	// Dialback does not rely on the authoritative server's certificate.
	cfg := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{bCert}}
	v, _ := dialS2S(t, aS2S, "b.test", "a.test", cfg)
	v.send(`<db:verify from='b.test' to='a.test' id='fake2'>` + key + `</db:verify>`)
	if got := v.until("/>"); !strings.Contains(got, "type='valid'") {
		t.Fatalf("verification: %q", got)
	}
	v.send(`</stream:stream>`)
	// A wrong key (its first hex digit changed) is not valid.
	wrong := "0" + key[1:]
	if key[0] == '0' {
		wrong = "1" + key[1:]
	}
	v2, _ := dialS2S(t, aS2S, "b.test", "a.test", cfg)
	v2.send(`<db:verify from='b.test' to='a.test' id='fake2'>` + wrong + `</db:verify>`)
	if got := v2.until("/>"); !strings.Contains(got, "type='invalid'") {
		t.Fatalf("verification of a wrong key: %q", got)
	}

	p.send(`<db:result from='b.test' to='a.test' type='valid'/>`)
	p.until("after dialback</body></message>")
}

// dialS2S opens a stream from the domain from to to at addr with
// STARTTLS as cfg says, without authenticating, and returns it with the
// stream features after TLS.
func dialS2S(t *testing.T, addr, from, to string, cfg *tls.Config) (p *fakePeer, features string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	p = &fakePeer{t: t, nc: nc, br: bufio.NewReader(nc)}
	p.send(s2sOpen(from, to))
	p.until("</stream:features>")
	p.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	p.until("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	tc := tls.Client(nc, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	p.nc, p.br = tc, bufio.NewReader(tc)
	p.send(s2sOpen(from, to))
	return p, p.until("</stream:features>")
}

// s2sOpen is the opening of a stream from the domain from to to.
func s2sOpen(from, to string) string {
	return `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='` + from + `' to='` + to + `' version='1.0'>`
}

func TestS2SPairNotAuthenticated(t *testing.T) {
	// b.test serves two domains; a.test's stream is authenticated for
	// the pair (a.test, b.test) only.
	ca := newTestCA(t)
	addr, cb := receiving(t, ca, "b.test", "b2.test")
	nc, br := rawS2S(t, addr, "a.test", "b.test", ca.issue(t, "a.test"), ca.pool)
	nc.Write([]byte(`<message from='alice@a.test/x' to='bob@b.test' id='p1'><body>for the pair</body></message>`))
	cb.Expect(servertest.Body("for the pair"))
	nc.Write([]byte(`<message from='alice@a.test/x' to='bob@b2.test' id='p2'><body>other pair</body></message>`))
	p := &fakePeer{t: t, nc: nc, br: br}
	if got := p.until("</stream:stream>"); !strings.Contains(got, "<invalid-from") {
		t.Fatalf("for a pair not authenticated: %q", got)
	}
}

func TestS2SDialbackEachPair(t *testing.T) {
	// The test plays a.test, whose certificate does not cover it: on
	// its stream to b.test (serving b.test and b2.test) each domain
	// pair is verified with a.test's authoritative server, also played
	// by the test, before it may carry stanzas.
	ca := newTestCA(t)
	auth, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := servertest.Start(t, server.Config{Domains: []string{"b.test", "b2.test"},
		TLS: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "b.test", "b2.test")}},
		S2S: &server.S2SConfig{RootCAs: ca.pool, Hosts: map[string]string{"a.test": auth.Addr().String()}}})
	go b.ServeS2S(ln)
	bob := b.AddUser(t, "bob", "pw")
	cb := b.Connect(t, bob, "pw")
	cb.Send(presence())
	cb.Sync()

	aCert := ca.issue(t, "other.test")
	p, features := dialS2S(t, ln.Addr().String(), "a.test", "b.test", &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{aCert}})
	if strings.Contains(features, "EXTERNAL") {
		t.Fatalf("SASL EXTERNAL offered for a certificate of another name: %q", features)
	}
	// verify answers b.test's verification of key as a.test's
	// authoritative server, valid only for "good".
	verify := func() {
		t.Helper()
		v := acceptFake(t, auth, ca.issue(t, "a.test"), "")
		req := v.until("</db:verify>")
		_, id, _ := strings.Cut(req, "id='")
		id, _, _ = strings.Cut(id, "'")
		typ := "invalid"
		if strings.Contains(req, ">good</db:verify>") {
			typ = "valid"
		}
		v.send(`<db:verify from='a.test' to='b.test' id='` + id + `' type='` + typ + `'/>`)
	}
	p.send(`<db:result from='a.test' to='b.test'>good</db:result>`)
	verify()
	if got := p.until("/>"); !strings.Contains(got, "type='valid'") {
		t.Fatalf("dialback for (a.test, b.test): %q", got)
	}
	// Another pair with the same originating domain is verified too.
	p.send(`<db:result from='a.test' to='b2.test'>bad</db:result>`)
	verify()
	if got := p.until("/>"); !strings.Contains(got, "type='invalid'") {
		t.Fatalf("dialback for (a.test, b2.test) with a wrong key: %q", got)
	}
	p.send(`<message from='alice@a.test/x' to='bob@b.test' id='e1'><body>for the pair</body></message>`)
	cb.Expect(servertest.Body("for the pair"))
	p.send(`<message from='alice@a.test/x' to='bob@b2.test' id='e2'><body>other pair</body></message>`)
	if got := p.until("</stream:stream>"); !strings.Contains(got, "<invalid-from") {
		t.Fatalf("for a pair not verified: %q", got)
	}
}

// TestS2SBidiOutDialbackAnswered: on a bidirectional stream a.test
// opened, the peer's dialback requests are answered: a pair to
// authenticate on it is refused with resource-constraint, so the peer
// opens a stream of its own at once, and a key is verified.
func TestS2SBidiOutDialbackAnswered(t *testing.T) {
	a, _, fake, ca := startFakeFederation(t, "a.test", server.S2SConfig{})
	alice := a.AddUser(t, "alice", "pw")
	c := a.Connect(t, alice, "pw")
	c.Send(message(jid.MustParse("bob@b.test"), "d1", "hello b"))
	p := acceptBidi(t, fake, ca)
	p.until("hello b</body></message>")

	p.send(`<db:result from='b2.test' to='a.test'>key</db:result>`)
	got := p.until("</db:result>")
	if !strings.Contains(got, "<db:result from='a.test' to='b2.test' type='error'>") || !strings.Contains(got, "<resource-constraint ") {
		t.Fatalf("answer to a dialback request: %q", got)
	}
	p.send(`<db:verify from='b.test' to='a.test' id='x1'>wrong</db:verify>`)
	if got := p.until("/>"); !strings.Contains(got, "<db:verify from='a.test' to='b.test' id='x1' type='invalid'/>") {
		t.Fatalf("answer to a verification: %q", got)
	}
	// The stream goes on.
	c.Send(message(jid.MustParse("bob@b.test"), "d2", "still there"))
	p.until("still there</body></message>")
}

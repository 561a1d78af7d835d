package server_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	cert, key := server.NewTestIssuer(t, nil, nil)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a certificate for the names, for servers and clients.
func (ca *testCA) issue(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	sans := make([]server.SANName, len(names))
	for i, n := range names {
		sans[i] = server.SANName{Kind: "dns", Value: n}
	}
	return server.CertWithNames(t, ca.cert, ca.key, names[0], sans...)
}

// fedServer is one of two federating test servers.
type fedServer struct {
	*servertest.Server
	S2SAddr  string
	Accepted *atomic.Int64 // connections accepted by its s2s listener
}

// countingListener counts the connections it accepted.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// fedOptions change one side of a federation test.
type fedOptions struct {
	certNames []string // the names of the server's certificate; nil: its domain
	// sans, if set, are the certificate's subjectAltNames instead, with
	// an empty subject.
	sans []server.SANName
	s2s  server.S2SConfig
}

// federate starts servers for a.test and b.test on 127.0.0.1, with
// certificates from a test CA, each reaching the other through
// S2SConfig.Hosts.
func federate(t testing.TB, optA, optB fedOptions) (a, b *fedServer) {
	t.Helper()
	ca := newTestCA(t)
	lnA, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnB, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	start := func(domain string, ln net.Listener, peer string, peerAddr string, opt fedOptions) *fedServer {
		names := opt.certNames
		if names == nil {
			names = []string{domain}
		}
		cert := ca.issue(t, names...)
		if opt.sans != nil {
			cert = server.CertWithNames(t, ca.cert, ca.key, "", opt.sans...)
		}
		cfg := opt.s2s
		if cfg.Hosts == nil {
			cfg.Hosts = map[string]string{peer: peerAddr}
		}
		cfg.RootCAs = ca.pool
		srv := servertest.Start(t, server.Config{
			Domains: []string{domain},
			TLS:     &tls.Config{Certificates: []tls.Certificate{cert}},
			S2S:     &cfg,
		})
		n := new(atomic.Int64)
		go srv.ServeS2S(countingListener{ln, n})
		return &fedServer{Server: srv, S2SAddr: ln.Addr().String(), Accepted: n}
	}
	a = start("a.test", lnA, "b.test", lnB.Addr().String(), optA)
	b = start("b.test", lnB, "a.test", lnA.Addr().String(), optB)
	return a, b
}

// fedUsers adds alice to a and bob to b, connects their clients and
// makes them available.
func fedUsers(t testing.TB, a, b *fedServer) (alice, bob jid.JID, ca, cb *servertest.Client) {
	t.Helper()
	alice = a.AddUser(t, "alice", "pw")
	bob = b.AddUser(t, "bob", "pw")
	ca, cb = a.Connect(t, alice, "pw"), b.Connect(t, bob, "pw")
	ca.Send(presence())
	cb.Send(presence())
	cb.Sync()
	return alice, bob, ca, cb
}

// exchange sends the message there from ca to bob, and bob's answer
// back from cb to where it came from, and waits for both.
func exchange(ca, cb *servertest.Client, bob jid.JID, there, back string) {
	ca.Send(message(bob, there, there))
	got := cb.Expect(servertest.Body(there))
	cb.Send(message(got.From, back, back))
	ca.Expect(servertest.Body(back))
}

func TestS2SMessagesAndIQ(t *testing.T) {
	a, b := federate(t, fedOptions{}, fedOptions{})
	_, bob, ca, cb := fedUsers(t, a, b)
	ca.Send(message(bob, "m1", "hello bob"))
	got := cb.Expect(servertest.Body("hello bob"))
	if !got.From.Equal(ca.LocalAddr()) {
		t.Fatalf("from = %s, want %s", got.From, ca.LocalAddr())
	}
	cb.Send(message(got.From, "m2", "hello alice"))
	got = ca.Expect(servertest.Body("hello alice"))
	if !got.From.Equal(cb.LocalAddr()) {
		t.Fatalf("from = %s, want %s", got.From, cb.LocalAddr())
	}

	// disco#info of the remote domain: the iq goes over a.test → b.test,
	// the answer over b.test → a.test.
	iq := &stanza.Stanza{Kind: stanza.IQKind, ID: "disco1", Type: stanza.Get, To: jid.MustParse("b.test"),
		Inner: []xml.Token{
			xml.StartElement{Name: xml.Name{Space: "http://jabber.org/protocol/disco#info", Local: "query"}},
			xml.EndElement{Name: xml.Name{Space: "http://jabber.org/protocol/disco#info", Local: "query"}},
		}}
	ca.Send(iq)
	res := ca.Expect(servertest.ByID("disco1"))
	if res.Type != stanza.Result || res.From.String() != "b.test" {
		t.Fatalf("disco answer: type %s from %s (%s)", res.Type, res.From, errorCondition(res))
	}
	// To an account of b.test that does not exist: b.test's answer.
	ca.Send(message(jid.MustParse("nobody@b.test"), "m3", "anyone?"))
	if e := ca.Expect(servertest.ByID("m3")); errorCondition(e) != "service-unavailable" {
		t.Fatalf("to a missing remote account: %q, want service-unavailable", errorCondition(e))
	}
}

func TestS2SDialback(t *testing.T) {
	for _, tc := range []struct {
		name       string
		noDialback bool
		want       string // "" delivered, else the bounce's condition
	}{
		{"dialback on", false, ""},
		{"dialback off", true, "remote-server-not-found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// a.test presents a certificate for another name: b.test offers
			// no SASL EXTERNAL, only dialback (if on), which it verifies
			// with a.test over a stream of its own.
			a, b := federate(t, fedOptions{certNames: []string{"other.test"}},
				fedOptions{s2s: server.S2SConfig{NoDialback: tc.noDialback}})
			_, bob, ca, cb := fedUsers(t, a, b)
			if tc.want == "" {
				exchange(ca, cb, bob, "via dialback", "back")
				return
			}
			ca.Send(message(bob, "d1", "via dialback"))
			if got := errorCondition(ca.Expect(servertest.ByID("d1"))); got != tc.want {
				t.Fatalf("bounce %q, want %q", got, tc.want)
			}
		})
	}
}

// TestS2SXmppAddrAndSRVID federates a.test, whose certificate names it
// by an XmppAddr only, and b.test, whose certificate names it by the
// SRV-ID _xmpp-server.b.test only, without dialback: each accepts the
// other's certificate for SASL EXTERNAL, as the receiving server and as
// the initiating one. An XmppAddr for another domain is refused.
func TestS2SXmppAddrAndSRVID(t *testing.T) {
	xmppA := fedOptions{sans: []server.SANName{{Kind: "xmpp", Value: "a.test"}}}
	srvB := fedOptions{sans: []server.SANName{{Kind: "srv", Value: "_xmpp-server.b.test"}}}
	for _, noBidi := range []bool{false, true} {
		t.Run(fmt.Sprintf("noBidi=%v", noBidi), func(t *testing.T) {
			optA, optB := xmppA, srvB
			optA.s2s = server.S2SConfig{NoDialback: true, NoBidi: noBidi}
			optB.s2s = server.S2SConfig{NoDialback: true, NoBidi: noBidi}
			a, b := federate(t, optA, optB)
			_, bob, ca, cb := fedUsers(t, a, b)
			exchange(ca, cb, bob, "to an SRV-ID", "to an XmppAddr")
		})
	}
	t.Run("XmppAddr of another domain", func(t *testing.T) {
		a, b := federate(t, fedOptions{sans: []server.SANName{{Kind: "xmpp", Value: "c.test"}}},
			fedOptions{s2s: server.S2SConfig{NoDialback: true}})
		_, bob, ca, _ := fedUsers(t, a, b)
		ca.Send(message(bob, "x1", "from a certificate for c.test"))
		if got := errorCondition(ca.Expect(servertest.ByID("x1"))); got != "remote-server-not-found" {
			t.Fatalf("bounce %q, want remote-server-not-found", got)
		}
	})
}

func TestS2SPeerDown(t *testing.T) {
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	srv := servertest.Start(t, server.Config{Domains: []string{"a.test"},
		S2S: &server.S2SConfig{Hosts: map[string]string{"b.test": closed}}})
	alice := srv.AddUser(t, "alice", "pw")
	c := srv.Connect(t, alice, "pw")
	c.Send(message(jid.MustParse("bob@b.test"), "x1", "anyone?"))
	if got := errorCondition(c.Expect(servertest.ByID("x1"))); got != "remote-server-not-found" {
		t.Fatalf("message bounce %q", got)
	}
	c.Send(&stanza.Stanza{Kind: stanza.IQKind, ID: "x2", Type: stanza.Get, To: jid.MustParse("b.test"),
		Inner: []xml.Token{
			xml.StartElement{Name: xml.Name{Space: "urn:xmpp:ping", Local: "ping"}},
			xml.EndElement{Name: xml.Name{Space: "urn:xmpp:ping", Local: "ping"}},
		}})
	if got := errorCondition(c.Expect(servertest.ByID("x2"))); got != "remote-server-not-found" {
		t.Fatalf("iq bounce %q", got)
	}
	// The next stanza, within the retry back-off, bounces too.
	c.Send(message(jid.MustParse("bob@b.test"), "x3", "again"))
	c.Expect(servertest.ByID("x3"))
}

func TestS2SQueueBound(t *testing.T) {
	// A peer that accepts connections and never says a word: the
	// stanzas wait for the stream, up to QueueSize.
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	srv := servertest.Start(t, server.Config{Domains: []string{"a.test"},
		S2S: &server.S2SConfig{Hosts: map[string]string{"b.test": ln.Addr().String()}, QueueSize: 2}})
	alice := srv.AddUser(t, "alice", "pw")
	c := srv.Connect(t, alice, "pw")
	bob := jid.MustParse("bob@b.test")
	c.Send(message(bob, "q1", "1"))
	c.Send(message(bob, "q2", "2"))
	c.Send(message(bob, "q3", "3"))
	if got := errorCondition(c.Expect(servertest.ByID("q3"))); got != "resource-constraint" {
		t.Fatalf("third message: %q, want resource-constraint", got)
	}
}

// rawS2S opens a stream to addr as from, with STARTTLS and the
// certificate cert, and authenticates with SASL EXTERNAL.
func rawS2S(t *testing.T, addr, from, to string, cert tls.Certificate, roots *x509.CertPool) (net.Conn, *bufio.Reader) {
	t.Helper()
	p, features := dialS2S(t, addr, from, to, &tls.Config{ServerName: to, RootCAs: roots, Certificates: []tls.Certificate{cert}})
	if !strings.Contains(features, "EXTERNAL") {
		t.Fatalf("no SASL EXTERNAL: %q", features)
	}
	p.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>` + base64.StdEncoding.EncodeToString([]byte(from)) + `</auth>`)
	p.until("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
	p.send(s2sOpen(from, to))
	p.until("</stream:features>")
	return p.nc, p.br
}

// receiving starts a server for domains, with a certificate from ca for
// them, serving s2s on loopback, and connects bob of the first domain;
// it returns the s2s address and bob's client.
func receiving(t *testing.T, ca *testCA, domains ...string) (string, *servertest.Client) {
	t.Helper()
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := servertest.Start(t, server.Config{Domains: domains,
		TLS: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, domains...)}},
		S2S: &server.S2SConfig{RootCAs: ca.pool}})
	go b.ServeS2S(ln)
	bob := b.AddUser(t, "bob", "pw")
	cb := b.Connect(t, bob, "pw")
	cb.Send(presence())
	cb.Sync()
	return ln.Addr().String(), cb
}

func TestS2SForgedFrom(t *testing.T) {
	ca := newTestCA(t)
	addr, cb := receiving(t, ca, "b.test")
	nc, br := rawS2S(t, addr, "a.test", "b.test", ca.issue(t, "a.test"), ca.pool)
	// From the authenticated domain: delivered.
	nc.Write([]byte(`<message from='alice@a.test/x' to='bob@b.test' id='ok'><body>genuine</body></message>`))
	got := cb.Expect(servertest.Body("genuine"))
	if got.From.String() != "alice@a.test/x" {
		t.Fatalf("from = %s", got.From)
	}
	// From another domain: the stream ends with invalid-from.
	nc.Write([]byte(`<message from='mallory@c.test' to='bob@b.test' id='forged'><body>forged</body></message>`))
	rest := readToClose(br)
	if !strings.Contains(rest, "<invalid-from") {
		t.Fatalf("after a forged from: %q", rest)
	}
	cb.SyncNone(servertest.Body("forged"))
}

// TestS2SPeerStreamError: a peer ending its stream with a stream error
// (system-shutdown) gets the closing tag, not a stream error of ours.
func TestS2SPeerStreamError(t *testing.T) {
	ca := newTestCA(t)
	addr, _ := receiving(t, ca, "b.test")
	nc, br := rawS2S(t, addr, "a.test", "b.test", ca.issue(t, "a.test"), ca.pool)
	nc.Write([]byte(`<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`))
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest := readToClose(br)
	if !strings.Contains(rest, "</stream:stream>") || strings.Contains(rest, "error") {
		t.Fatalf("after the peer's stream error: %q", rest)
	}
}

// readToClose reads br until the closing tag of the stream or an error,
// and returns what it read.
func readToClose(br *bufio.Reader) string {
	var rest strings.Builder
	buf := make([]byte, 512)
	for !strings.Contains(rest.String(), "</stream:stream>") {
		n, err := br.Read(buf)
		rest.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return rest.String()
}

// srvResolver answers SRV lookups from a table, without DNS.
type srvResolver map[string][]*net.SRV

func (r srvResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	if srvs, ok := r["_"+service+"._"+proto+"."+name]; ok {
		return "", srvs, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func TestS2SDirectTLSBySRV(t *testing.T) {
	// a.test finds b.test by its _xmpps-server._tcp record (XEP-0368),
	// which points at b.test's direct TLS listener; b.test finds a.test
	// by _xmpp-server._tcp (STARTTLS).
	ca := newTestCA(t)
	lnA, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnB, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := func(ln net.Listener) []*net.SRV {
		return []*net.SRV{{Target: "127.0.0.1", Port: uint16(ln.Addr().(*net.TCPAddr).Port)}}
	}
	res := srvResolver{"_xmpps-server._tcp.b.test": srv(lnB), "_xmpp-server._tcp.a.test": srv(lnA)}
	a := servertest.Start(t, server.Config{Domains: []string{"a.test"},
		TLS: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "a.test")}},
		S2S: &server.S2SConfig{Resolver: res, RootCAs: ca.pool}})
	b := servertest.Start(t, server.Config{Domains: []string{"b.test"},
		TLS: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "b.test")}},
		S2S: &server.S2SConfig{Resolver: res, RootCAs: ca.pool}})
	go a.ServeS2S(lnA)
	go b.ServeS2SDirectTLS(lnB)
	alice := a.AddUser(t, "alice", "pw")
	bob := b.AddUser(t, "bob", "pw")
	ca1, cb := a.Connect(t, alice, "pw"), b.Connect(t, bob, "pw")
	ca1.Send(presence())
	cb.Send(presence())
	cb.Sync()
	ca1.Send(message(bob, "t1", "over direct TLS"))
	got := cb.Expect(servertest.Body("over direct TLS"))
	cb.Send(message(got.From, "t2", "over STARTTLS"))
	ca1.Expect(servertest.Body("over STARTTLS"))
}

func TestS2SAllowDeny(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  server.S2SConfig
	}{
		{"deny", server.S2SConfig{Deny: []string{"b.test"}}},
		{"allow", server.S2SConfig{Allow: []string{"c.test"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// a.test refuses b.test both ways: its users' stanzas bounce,
			// and b.test's stream is refused, so b.test bounces too.
			a, b := federate(t, fedOptions{s2s: tc.cfg}, fedOptions{})
			alice := a.AddUser(t, "alice", "pw")
			bob := b.AddUser(t, "bob", "pw")
			ca, cb := a.Connect(t, alice, "pw"), b.Connect(t, bob, "pw")
			ca.Send(message(bob, "n1", "no"))
			if got := errorCondition(ca.Expect(servertest.ByID("n1"))); got != "remote-server-not-found" {
				t.Errorf("to a refused domain: %q", got)
			}
			cb.Send(message(alice, "n2", "no"))
			if got := errorCondition(cb.Expect(servertest.ByID("n2"))); got != "remote-server-not-found" {
				t.Errorf("from a refused domain: %q", got)
			}
		})
	}
}

func TestS2SIdleStreamsReopen(t *testing.T) {
	// Streams idle for a millisecond close (both ways); whatever comes
	// after, or while one closes, goes on a new stream.
	idle := server.S2SConfig{IdleTimeout: time.Millisecond}
	a, b := federate(t, fedOptions{s2s: idle}, fedOptions{s2s: idle})
	_, bob, ca, cb := fedUsers(t, a, b)
	for _, body := range []string{"one", "two", "three", "four", "five"} {
		exchange(ca, cb, bob, body, body+" back")
	}
}

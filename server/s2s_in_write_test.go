package server_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

// bidiIn starts b.test, b2.test and the domains more with limits and
// s2s, and authenticates the test, playing a.test, on an incoming stream by SASL EXTERNAL after
// asking for a bidirectional one (XEP-0288). It returns the stream and
// bob@b.test's client.
func bidiIn(t *testing.T, limits server.Limits, s2s server.S2SConfig, more ...string) (*fakePeer, *servertest.Client) {
	t.Helper()
	ca := newTestCA(t)
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s2s.RootCAs = ca.pool
	b := servertest.Start(t, server.Config{Domains: append([]string{"b.test", "b2.test"}, more...), Limits: limits,
		TLS: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "b.test", "b2.test")}},
		S2S: &s2s})
	go b.ServeS2S(ln)
	bob := b.AddUser(t, "bob", "pw")
	cb := b.Connect(t, bob, "pw")
	cb.Send(presence())
	cb.Sync()
	p, features := dialS2S(t, ln.Addr().String(), "a.test", "b.test",
		&tls.Config{ServerName: "b.test", RootCAs: ca.pool, Certificates: []tls.Certificate{ca.issue(t, "a.test")}})
	if !strings.Contains(features, "EXTERNAL") || !strings.Contains(features, "urn:xmpp:features:bidi") {
		t.Fatalf("features %q", features)
	}
	p.send(`<bidi xmlns='urn:xmpp:bidi'/><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>` + base64.StdEncoding.EncodeToString([]byte("a.test")) + `</auth>`)
	p.until("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
	p.send(s2sOpen("a.test", "b.test"))
	p.until("</stream:features>")
	return p, cb
}

// TestS2SBidiInAnswerAfterWriteTimeout: on a bidirectional incoming
// stream, the answers to the peer's dialback requests are written after
// Limits.WriteTimeout has passed since the last stanza went out on it.
func TestS2SBidiInAnswerAfterWriteTimeout(t *testing.T) {
	p, cb := bidiIn(t, server.Limits{WriteTimeout: time.Second}, server.S2SConfig{})
	cb.Send(message(jid.MustParse("alice@a.test"), "w1", "to alice"))
	p.until("to alice</body></message>")
	// Longer than WriteTimeout since that stanza was written.
	time.Sleep(1500 * time.Millisecond)
	p.send(`<db:result from='a.test' to='b2.test'>key</db:result>`)
	if got := p.until("/>"); !strings.Contains(got, "<db:result from='b2.test' to='a.test' type='valid'/>") {
		t.Fatalf("dialback answer: %q", got)
	}
}

// TestS2SInPairLimit: one incoming stream authenticates at most 64 domain
// pairs; a dialback request for one more is answered with the dialback
// error resource-constraint, and the stream goes on.
func TestS2SInPairLimit(t *testing.T) {
	var more []string
	for i := range 64 {
		more = append(more, fmt.Sprintf("d%d.test", i))
	}
	p, cb := bidiIn(t, server.Limits{}, server.S2SConfig{}, more...)
	// (b.test, a.test) by SASL, 63 more by dialback: a.test's
	// certificate proves it, no key is verified.
	for _, d := range more[:63] {
		p.send(`<db:result from='a.test' to='` + d + `'>key</db:result>`)
		if got := p.until("/>"); !strings.Contains(got, "type='valid'") {
			t.Fatalf("pair with %s: %q", d, got)
		}
	}
	p.send(`<db:result from='a.test' to='d63.test'>key</db:result>`)
	got := p.until("</db:result>")
	if !strings.Contains(got, "type='error'") || !strings.Contains(got, "<resource-constraint ") {
		t.Fatalf("the 65th pair: %q", got)
	}
	p.send(`<message from='alice@a.test/x' to='bob@b.test' id='l1'><body>still open</body></message>`)
	cb.Expect(servertest.Body("still open"))
}

// TestS2SInDialbackFailureLimit: after 8 dialback requests that failed
// to verify, the next one ends the stream with policy-violation.
func TestS2SInDialbackFailureLimit(t *testing.T) {
	hosts := map[string]string{}
	for i := range 9 {
		// Nothing listens there: each verification fails at once.
		hosts[fmt.Sprintf("c%d.test", i)] = "127.0.0.1:1"
	}
	p, _ := bidiIn(t, server.Limits{}, server.S2SConfig{Hosts: hosts})
	for i := range 8 {
		p.send(fmt.Sprintf(`<db:result from='c%d.test' to='b.test'>key</db:result>`, i))
		if got := p.until("/>"); !strings.Contains(got, "type='invalid'") {
			t.Fatalf("request %d: %q", i, got)
		}
	}
	p.send(`<db:result from='c8.test' to='b.test'>key</db:result>`)
	if got := p.until("</stream:stream>"); !strings.Contains(got, "<policy-violation ") {
		t.Fatalf("the 9th failed request: %q", got)
	}
}

package server_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

// bidiIn starts b.test and b2.test with limits and s2s, and authenticates
// the test, playing a.test, on an incoming stream by SASL EXTERNAL after
// asking for a bidirectional one (XEP-0288). It returns the stream and
// bob@b.test's client.
func bidiIn(t *testing.T, limits server.Limits, s2s server.S2SConfig) (*fakePeer, *servertest.Client) {
	t.Helper()
	ca := newTestCA(t)
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s2s.RootCAs = ca.pool
	b := servertest.Start(t, server.Config{Domains: []string{"b.test", "b2.test"}, Limits: limits,
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

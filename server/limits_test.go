package server_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/metrics"
	"github.com/kiez-im/kiez/server/servertest"
)

// TestSlowClientIsDisconnected: a client that stops reading fills its
// queue and is disconnected, while the sender is never held up.
func TestSlowClientIsDisconnected(t *testing.T) {
	reg := metrics.NewRegistry()
	cfg := server.Config{Limits: server.Limits{QueueSize: 32, WriteTimeout: time.Second}, Metrics: reg}
	srv := servertest.Start(t, cfg)
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "slow", "pw")
	a := srv.Connect(t, alice, "pw")
	r := dialRaw(t, srv.Addr)
	r.login("slow", "pw")
	r.send(`<presence/>`)
	// The slow client never reads again. Alice sends far more than the
	// socket buffers hold.
	body := strings.Repeat("x", 32<<10)
	slow := jid.MustParse("slow@localhost")
	deadline := time.Now().Add(20 * time.Second)
	sent := 0
	for srv.SessionCount() == 2 && time.Now().Before(deadline) && sent < 5000 {
		a.Send(message(slow, "", body))
		sent++
		if sent%16 == 0 {
			// Once the slow session is closing, each message bounces;
			// let alice read those, or her own small queue overflows.
			a.Sync()
		}
	}
	for srv.SessionCount() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.SessionCount(); n != 1 {
		t.Fatalf("%d sessions after %d messages: the slow client is still connected", n, sent)
	}
	// Alice's session is unharmed.
	a.Sync()
	// Closed for a full queue or a write that timed out, whichever came
	// first.
	text, got := scrape(t, reg)
	if n := got["kiez_queue_overflows_total"] + got["kiez_write_timeouts_total"]; n != 1 {
		t.Errorf("%v queue overflows and write timeouts, want 1\n%s", n, text)
	}
}

// TestKeepalive: the server pings a silent session and closes it when the
// ping goes unanswered; a client that answers stays.
func TestKeepalive(t *testing.T) {
	// The answer timeout is generous so that a loaded CI machine cannot
	// make the answering client look silent.
	cfg := server.Config{Limits: server.Limits{PingAfter: 200 * time.Millisecond, PingTimeout: time.Second}}
	srv := servertest.Start(t, cfg)
	srv.AddUser(t, "mute", "pw")
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw") // mellium answers pings by itself
	r := dialRaw(t, srv.Addr)
	r.login("mute", "pw")
	got := r.expect(`urn:xmpp:ping`)
	if !strings.Contains(got, `type="get"`) {
		t.Fatalf("expected a ping iq, got %q", got)
	}
	r.streamError("connection-timeout")
	time.Sleep(500 * time.Millisecond) // more pings to alice meanwhile
	select {
	case err := <-a.Done():
		t.Fatalf("a client answering pings was disconnected: %v", err)
	default:
	}
	a.Sync()
}

// TestVirtualHostsBySNI: two domains, each with its own certificate,
// chosen by the name the client asks for.
func TestVirtualHostsBySNI(t *testing.T) {
	certA, _, _, err := server.SelfSigned("a.test")
	if err != nil {
		t.Fatal(err)
	}
	certB, _, _, err := server.SelfSigned("b.test")
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{
		Domains: []string{"a.test", "b.test"},
		TLS:     &tls.Config{Certificates: []tls.Certificate{certA, certB}},
	})
	for _, domain := range []string{"a.test", "b.test"} {
		cfg := &tls.Config{ServerName: domain, InsecureSkipVerify: true, NextProtos: []string{"xmpp-client"}}
		conn, err := tls.Dial("tcp", srv.TLSAddr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if err := leaf.VerifyHostname(domain); err != nil {
			t.Errorf("SNI %s: served certificate for %v", domain, leaf.DNSNames)
		}
	}
	// Accounts live per domain.
	if err := srv.CreateUser(t.Context(), jid.MustParse("bob@b.test"), "pw"); err != nil {
		t.Fatal(err)
	}
	if users, _ := srv.Users(t.Context(), "a.test"); len(users) != 0 {
		t.Fatalf("a.test has users %v", users)
	}
}

package server_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"mellium.im/sasl"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsKeepPrivacy runs whole sessions with debug logging and checks
// the log never holds an IP address, a password, a message body, or a
// user's address (which, with the log's timestamps, would be a login time).
func TestLogsKeepPrivacy(t *testing.T) {
	var logs syncBuffer
	cfg := server.Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	srv := servertest.Start(t, cfg)
	alice := srv.AddUser(t, "alice", "s3cret-alice")
	bob := srv.AddUser(t, "bob", "s3cret-bob")
	a := srv.Connect(t, alice, "s3cret-alice")
	b := srv.Connect(t, bob, "s3cret-bob", sasl.Plain)
	a.Send(presence())
	b.Send(presence())
	b.Sync()
	a.Send(message(bob, "m", "the secret body"))
	b.Expect(servertest.Body("the secret body"))
	if _, err := srv.Login(t.Context(), alice, "wrong-guess"); err == nil {
		t.Fatal("wrong password accepted")
	}
	// A client that drops the connection mid-negotiation.
	r := dialRaw(t, srv.Addr)
	r.send(header)
	r.c.Close()
	a.Session.Close()
	b.Session.Close()
	// Shutdown waits for every connection, so their logs are written.
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	if out == "" {
		t.Fatal("no logs captured: the test would prove nothing")
	}
	for _, secret := range []string{"127.0.0.1", "s3cret-alice", "s3cret-bob", "wrong-guess", "the secret body", "alice", "bob"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
}

package server_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

// flakyNet dials for a test server: it counts the attempts and refuses
// them while down, on a clock the test moves.
type flakyNet struct {
	mu    sync.Mutex
	down  bool
	dials int
	now   time.Time
}

func (n *flakyNet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	n.dials++
	down := n.down
	n.mu.Unlock()
	if down {
		return nil, fmt.Errorf("flaky: %w", syscall.ECONNREFUSED)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (n *flakyNet) clock() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.now
}

func (n *flakyNet) advance(d time.Duration) {
	n.mu.Lock()
	n.now = n.now.Add(d)
	n.mu.Unlock()
}

func (n *flakyNet) setDown(down bool) {
	n.mu.Lock()
	n.down = down
	n.mu.Unlock()
}

func (n *flakyNet) attempts() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dials
}

// TestS2SRetryBackoff: after b.test could not be reached, stanzas for it
// bounce at once with remote-server-not-found and no new connection is
// tried for a second, then two (the delay doubles); once b.test is
// reachable and the back-off over, a message gets through.
func TestS2SRetryBackoff(t *testing.T) {
	fn := &flakyNet{down: true, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, b := federate(t, fedOptions{s2s: server.S2SConfig{Dial: fn.dial, Now: fn.clock}}, fedOptions{})
	alice := a.AddUser(t, "alice", "pw")
	bob := b.AddUser(t, "bob", "pw")
	ca := a.Connect(t, alice, "pw")
	cb := b.Connect(t, bob, "pw")
	cb.Send(presence())
	cb.Sync()

	bounce := func(id string, tries bool) {
		t.Helper()
		before := fn.attempts()
		ca.Send(message(bob, id, "anyone?"))
		if got := errorCondition(ca.Expect(servertest.ByID(id))); got != "remote-server-not-found" {
			t.Fatalf("%s: bounce %q, want remote-server-not-found", id, got)
		}
		switch after := fn.attempts(); {
		case tries && after == before:
			t.Fatalf("%s: no connection tried", id)
		case !tries && after != before:
			t.Fatalf("%s: %d connections tried during the back-off", id, after-before)
		}
	}
	bounce("x1", true)  // fails: back-off 1 s
	bounce("x2", false) // at once
	fn.advance(time.Second)
	bounce("x3", true) // fails again: back-off 2 s
	fn.advance(time.Second)
	bounce("x4", false)
	fn.advance(time.Second)
	fn.setDown(false)
	ca.Send(message(bob, "x5", "through"))
	cb.Expect(servertest.Body("through"))
}

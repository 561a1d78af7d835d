package server_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

// flood sends whitespace and <active/> (XEP-0352), which the server reads
// and answers with nothing, as fast as r's connection takes it, until the
// connection ends.
func flood(r *rawClient) {
	chunk := strings.Repeat(strings.Repeat(" ", 1000)+"<active xmlns='urn:xmpp:csi:0'/>", 16)
	go func() {
		for {
			if _, err := io.WriteString(r.c, chunk); err != nil {
				return
			}
		}
	}()
}

// pollFor polls cond; the bound only keeps a broken server from hanging
// the test.
func pollFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
	}
}

// TestReadRateFlood: a client flooding its authenticated stream is read
// at its rate, exactly, on a clock the test moves, while other clients log
// in and talk undisturbed.
func TestReadRateFlood(t *testing.T) {
	const rate = 64 << 10
	cfg := serverConfig()
	cfg.Limits.ReadRateAuthenticated = rate
	srv := servertest.Start(t, cfg)
	clk := server.NewRateClock()
	srv.SetRateClock(clk)
	srv.AddUser(t, "flood", "pw")
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")

	r := dialRaw(t, srv.Addr)
	r.login("flood", "pw")
	r.c.SetWriteDeadline(time.Time{})
	flood(r)
	// The burst, a maximal stanza and its TLS overhead, goes through at
	// once; then the reader waits for the clock, having read all but less
	// than a read's worth (rate/16) of it.
	burst := server.ReadBurst(rate, 256<<10)
	want := int64(rate / 16)
	check := func(elapsed time.Duration) {
		t.Helper()
		pollFor(t, "the flood to be throttled", func() bool { return clk.Sleeping() == 1 })
		budget := burst + rate*int64(elapsed)/int64(time.Second)
		if n := srv.MaxRateRead(); n > budget || n <= budget-want {
			t.Fatalf("after %v: read %d bytes, want (%d, %d]", elapsed, n, budget-want, budget)
		}
	}
	check(0)

	// Others are not held up.
	a := srv.Connect(t, alice, "pw")
	b := srv.Connect(t, bob, "pw")
	a.Send(presence())
	b.Send(presence())
	b.Sync()
	a.Send(message(bob, "m1", "hello"))
	b.Expect(servertest.Body("hello"))
	if n := clk.Sleeping(); n != 1 {
		t.Fatalf("%d reads throttled, want only the flood's", n)
	}

	var elapsed time.Duration
	for _, d := range []time.Duration{time.Second, 250 * time.Millisecond, 3 * time.Second} {
		clk.Advance(d)
		elapsed += d
		check(elapsed)
	}
	shutdownAdvancing(t, srv.Server, clk)
}

// TestReadRateShutdown: a throttled read does not hold up Shutdown.
func TestReadRateShutdown(t *testing.T) {
	cfg := serverConfig()
	cfg.Limits.ReadRateAuthenticated = 1 << 10
	srv := servertest.Start(t, cfg)
	clk := server.NewRateClock() // never advanced: the flood stays throttled
	srv.SetRateClock(clk)
	srv.AddUser(t, "flood", "pw")
	r := dialRaw(t, srv.Addr)
	r.login("flood", "pw")
	r.c.SetWriteDeadline(time.Time{})
	flood(r)
	pollFor(t, "the flood to be throttled", func() bool { return clk.Sleeping() == 1 })
	shutdownAdvancing(t, srv.Server, clk)
}

// shutdownAdvancing shuts srv down while moving clk on. Shutdown gives a
// client 2 s to close its stream after the server's closing tag, which
// must pass on the clock too. The bound is a hang guard.
func shutdownAdvancing(t *testing.T, srv *server.Server, clk *server.RateClock) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			return
		case <-tick.C:
			clk.Advance(100 * time.Millisecond)
		}
	}
}

// TestReadRateOff: a negative rate reads without limit.
func TestReadRateOff(t *testing.T) {
	cfg := serverConfig()
	cfg.Limits.ReadRateAuthenticated = -1
	srv := servertest.Start(t, cfg)
	clk := server.NewRateClock()
	srv.SetRateClock(clk)
	srv.AddUser(t, "alice", "pw")
	r := dialRaw(t, srv.Addr)
	r.login("alice", "pw")
	// Far more than any burst, and never a throttled read.
	chunk := strings.Repeat(strings.Repeat(" ", 1000)+"<active xmlns='urn:xmpp:csi:0'/>", 64)
	for range 16 {
		r.send(chunk)
	}
	r.send(`<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	r.expect("p1")
	if n := clk.Sleeping(); n != 0 {
		t.Fatalf("%d reads throttled with the limit off", n)
	}
}

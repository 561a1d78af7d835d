package server

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// instantClock sleeps by moving on at once, recording the time slept.
type instantClock struct{ t, slept int64 }

func (c *instantClock) now() int64              { return c.t }
func (c *instantClock) nanos(t time.Time) int64 { return c.t + int64(time.Until(t)) }
func (c *instantClock) sleep(d time.Duration, _ <-chan struct{}) bool {
	c.t += int64(d)
	c.slept += int64(d)
	return true
}

func TestTokenBucket(t *testing.T) {
	const s = int64(time.Second)
	var b tokenBucket
	b.set(1000, 3000, 0)
	for _, step := range []struct {
		now     int64 // nanoseconds
		take    int64
		want    int64 // tokens after refill
		waitFor time.Duration
	}{
		{0, 3000, 3000, 0},           // full at the start
		{s / 2, 0, 500, 0},           // half a second: 500 bytes
		{s/2 + 999_999, 0, 500, 0},   // less than a byte's worth is kept...
		{s/2 + 1_000_000, 0, 501, 0}, // ...and counted when it adds up
		{s, 0, 1000, 0},
		{10 * s, 2000, 3000, 0}, // capped at the burst
		{10 * s, 0, 1000, time.Second},
		{10 * s, 1000, 1000, 0},
		{10 * s, 0, 0, 1234 * time.Millisecond},
	} {
		b.refill(step.now)
		if b.tokens != step.want {
			t.Fatalf("at %v: %d tokens, want %d", time.Duration(step.now), b.tokens, step.want)
		}
		b.tokens -= step.take
		if step.waitFor != 0 {
			if got := b.waitFor(b.tokens + int64(step.waitFor/time.Millisecond)); got != step.waitFor {
				t.Fatalf("at %v: waitFor = %v, want %v", time.Duration(step.now), got, step.waitFor)
			}
		}
	}
	// The wait rounds up: at 3 bytes a second, one byte takes 333.33… ms.
	b.set(3, 3, 0)
	b.tokens = 0
	if got := b.waitFor(1); got != 333333334 {
		t.Fatalf("waitFor = %d ns, want 333333334", got)
	}
	// Off, and huge values clamped so that the arithmetic cannot overflow.
	b.set(0, 100, 0)
	if b.rate != 0 {
		t.Fatal("rate 0 is not off")
	}
	b.set(1<<62, 1<<62, 0)
	b.tokens = 0
	b.refill(1 << 62)
	if b.tokens != b.burst || b.burst != maxBurst {
		t.Fatalf("huge bucket: %d of %d tokens", b.tokens, b.burst)
	}
}

// endless is a connection that always has data.
type endless struct{ net.Conn }

func (endless) Read(p []byte) (int, error)         { return len(p), nil }
func (endless) SetDeadline(time.Time) error        { return nil }
func (endless) SetReadDeadline(time.Time) error    { return nil }
func (endless) Close() error                       { return nil }
func (endless) Write(p []byte) (int, error)        { return len(p), nil }
func (endless) SetWriteDeadline(t time.Time) error { return nil }

// TestRateConnBudget: reading a flood takes exactly the time the rate
// gives it, and no read exceeds what the bucket holds.
func TestRateConnBudget(t *testing.T) {
	clk := &instantClock{}
	const rate, burst = 10 << 10, 16 << 10
	c := newRateConn(endless{}, rate, burst, clk)
	buf := make([]byte, 4096)
	var total int64
	for total < 1<<20 {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		total += int64(n)
		if budget := burst + rate*clk.t/int64(time.Second); total > budget {
			t.Fatalf("read %d bytes by %v, budget %d", total, time.Duration(clk.t), budget)
		}
	}
	// 1 MiB less the burst at 10 KiB/s, rounded up per wait.
	want := (total - burst) * int64(time.Second) / rate
	if clk.slept < want || clk.slept > want+int64(time.Millisecond) {
		t.Fatalf("slept %v for %d bytes, want %v", time.Duration(clk.slept), total, time.Duration(want))
	}
	if got := c.read.Load(); got != total {
		t.Fatalf("counted %d bytes, read %d", got, total)
	}
	// Authentication sets a new rate with a full bucket.
	c.setRate(1<<20, 300<<10)
	start := clk.t
	if n, _ := c.Read(make([]byte, 300<<10)); n != 300<<10 || clk.t != start {
		t.Fatalf("after setRate: read %d bytes, slept %v", n, time.Duration(clk.t-start))
	}
}

// TestRateConnWakes: a throttled read ends at its deadline, and at once
// when the deadline moves into the past or the connection closes, on the
// real clock (the bounds are hang guards).
func TestRateConnWakes(t *testing.T) {
	newThrottled := func() *rateConn {
		c := newRateConn(endless{}, 1, 1, nil)
		if _, err := c.Read(make([]byte, 1)); err != nil { // empties it: the next byte is 1 s away
			t.Fatal(err)
		}
		return c
	}
	read := func(c *rateConn) <-chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			ch <- err
		}()
		return ch
	}
	await := func(ch <-chan error, want error) {
		t.Helper()
		select {
		case err := <-ch:
			if !errors.Is(err, want) {
				t.Fatalf("read: %v, want %v", err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("throttled read not woken")
		}
	}

	c := newThrottled()
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	await(read(c), os.ErrDeadlineExceeded)

	c = newThrottled()
	c.SetDeadline(time.Now().Add(time.Hour))
	ch := read(c)
	c.SetReadDeadline(time.Now()) // as Shutdown wakes a negotiating reader
	await(ch, os.ErrDeadlineExceeded)

	c = newThrottled()
	c.bucket.set(1, 1, c.now()) // a fresh hour-long wait
	c.bucket.tokens = 0
	c.bucket.rate = 1
	ch = read(c)
	c.Close()
	await(ch, net.ErrClosed)

	// A throttled read that is only woken reads on when the bucket fills.
	c = newRateConn(endless{}, 1000, 100, nil)
	c.Read(make([]byte, 100))
	ch = read(c)
	c.SetDeadline(time.Time{})
	await(ch, nil)
}

// BenchmarkRateConnRead is the cost of a read under the limit, through
// the bucket but never waiting (its tokens are topped up: no socket is as
// fast as this one), against a read without it. It must not allocate.
func BenchmarkRateConnRead(b *testing.B) {
	buf := make([]byte, 512)
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		var c net.Conn = endless{}
		for b.Loop() {
			c.Read(buf)
		}
	})
	b.Run("limited", func(b *testing.B) {
		b.ReportAllocs()
		c := newRateConn(endless{}, 256<<10, 300<<10, nil)
		for b.Loop() {
			c.Read(buf)
			c.bucket.tokens = c.bucket.burst
		}
	})
	// Each read finding the bucket low reads the clock and refills.
	b.Run("refill", func(b *testing.B) {
		b.ReportAllocs()
		c := newRateConn(endless{}, 256<<10, 300<<10, nil)
		for b.Loop() {
			c.Read(buf)
			c.bucket.tokens = 0
			c.bucket.last -= int64(time.Second)
		}
	})
}

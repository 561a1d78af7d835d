package server

import (
	"net"
	"os"
	"sync/atomic"
	"time"
)

// rateConn is a client's connection with a token bucket on the bytes read
// from it (Limits.ReadRate, Limits.ReadRateAuthenticated), as Prosody's
// mod_limits: a client that sends faster than its rate is read more slowly,
// so that its flood fills its own socket buffers and the kernel's TCP
// window pushes back on it, while the server spends nothing on it but a
// sleeping reader.
//
// It sits under TLS and so counts bytes on the wire: the handshake, record
// overhead and what TLS discards are paid for too, and the bucket is the
// only reader of the socket, so no layer above can read around it. The
// bursts leave room for a maximal element in TLS records.
//
// Only the connection's reader goroutine calls Read and setRate; the
// deadline and closing are set from any goroutine and wake a throttled
// Read, which honours them as a read of the socket would: Shutdown and the
// pre-authentication deadline end a throttled read at once. An idle
// connection costs nothing more: its timer exists only after a read was
// throttled and runs only while one waits.
type rateConn struct {
	net.Conn
	bucket tokenBucket
	clock  clock // nil: the real clock

	read     atomic.Int64 // bytes read since the rate was set
	deadline atomic.Int64 // the read deadline, in clock nanoseconds; 0 is none
	closed   atomic.Bool
	kick     chan struct{} // a deadline change or close wakes a throttled read
	timer    *time.Timer
}

// clock is the time a rateConn reads; tests drive it.
type clock interface {
	// now returns monotonic nanoseconds.
	now() int64
	// sleep returns after d, or early (false) when wake receives.
	sleep(d time.Duration, wake <-chan struct{}) bool
	// nanos converts a deadline to now's scale.
	nanos(t time.Time) int64
}

// epoch is the origin of the real clock's monotonic nanoseconds.
var epoch = time.Now()

func newRateConn(nc net.Conn, rate, burst int64, clk clock) *rateConn {
	c := &rateConn{Conn: nc, clock: clk, kick: make(chan struct{}, 1)}
	c.bucket.set(rate, burst, c.now())
	return c
}

func (c *rateConn) now() int64 {
	if c.clock != nil {
		return c.clock.now()
	}
	return int64(time.Since(epoch))
}

// setRate changes the rate, as when the client authenticates; the bucket
// starts full at the new burst.
func (c *rateConn) setRate(rate, burst int64) {
	c.bucket.set(rate, burst, c.now())
	c.read.Store(0)
}

// Read reads at most what the bucket holds, first waiting until it holds
// a useful amount.
func (c *rateConn) Read(p []byte) (int, error) {
	b := &c.bucket
	if b.rate <= 0 || len(p) == 0 {
		return c.Conn.Read(p)
	}
	// Waiting for a few tokens at a time would turn a flood into many
	// tiny reads; wait for about 1/16 s worth, or what p wants.
	want := min(int64(len(p)), max(b.rate/16, 1), b.burst)
	// The clock is read only when the tokens run low.
	for b.tokens < want {
		now := c.now()
		b.refill(now)
		if b.tokens >= want {
			break
		}
		if err := c.wait(b.waitFor(want), now); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > b.tokens {
		p = p[:b.tokens]
	}
	n, err := c.Conn.Read(p)
	b.tokens -= int64(n)
	c.read.Add(int64(n))
	return n, err
}

// wait sleeps for d unless the connection is closed, its read deadline
// passes first (a timeout, as from the socket) or either changes.
func (c *rateConn) wait(d time.Duration, now int64) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	if dl := c.deadline.Load(); dl != 0 {
		if dl <= now {
			return os.ErrDeadlineExceeded
		}
		d = min(d, time.Duration(dl-now))
	}
	if c.clock != nil {
		c.clock.sleep(d, c.kick)
		return nil
	}
	if c.timer == nil {
		c.timer = time.NewTimer(d)
	} else {
		c.timer.Reset(d)
	}
	select {
	case <-c.timer.C:
	case <-c.kick:
		c.timer.Stop()
	}
	return nil
}

func (c *rateConn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *rateConn) toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	var n int64
	if c.clock != nil {
		n = c.clock.nanos(t)
	} else {
		n = int64(t.Sub(epoch))
	}
	return max(n, 1) // 0 means none
}

func (c *rateConn) SetDeadline(t time.Time) error {
	c.deadline.Store(c.toNanos(t))
	c.wake()
	return c.Conn.SetDeadline(t)
}

func (c *rateConn) SetReadDeadline(t time.Time) error {
	c.deadline.Store(c.toNanos(t))
	c.wake()
	return c.Conn.SetReadDeadline(t)
}

func (c *rateConn) Close() error {
	c.closed.Store(true)
	c.wake()
	return c.Conn.Close()
}

// tokenBucket holds up to burst bytes and gains rate of them a second;
// rate 0 disables it.
type tokenBucket struct {
	rate   int64 // bytes a second
	burst  int64 // bytes
	tokens int64 // bytes, 0..burst
	last   int64 // nanoseconds: tokens are counted up to here
}

// maxBurst bounds burst and rate so that burst·10⁹ + rate fits an int64.
const maxBurst = 1 << 32

func (b *tokenBucket) set(rate, burst int64, now int64) {
	if rate <= 0 {
		*b = tokenBucket{}
		return
	}
	rate = min(rate, maxBurst)
	burst = min(max(burst, 1), maxBurst)
	*b = tokenBucket{rate: rate, burst: burst, tokens: burst, last: now}
}

// refill adds the tokens earned since last. The nanoseconds that earned
// less than a token are kept for the next refill.
func (b *tokenBucket) refill(now int64) {
	elapsed := now - b.last
	if elapsed <= 0 {
		return
	}
	if b.tokens >= b.burst || elapsed >= (b.burst-b.tokens)*int64(time.Second)/b.rate+1 {
		b.tokens = b.burst
		b.last = now
		return
	}
	// elapsed·rate < (burst−tokens+rate)·10⁹: no overflow.
	add := elapsed * b.rate / int64(time.Second)
	b.tokens += add
	b.last += add * int64(time.Second) / b.rate
	if b.tokens >= b.burst {
		b.tokens = b.burst
		b.last = now
	}
}

// waitFor is how long until the bucket holds want tokens, rounded up.
func (b *tokenBucket) waitFor(want int64) time.Duration {
	need := want - b.tokens
	if need <= 0 {
		return 0
	}
	return time.Duration((need*int64(time.Second) + b.rate - 1) / b.rate)
}

// readBurst is the burst for rate with elements of up to limit bytes: a
// second's worth, and at least one maximal element with room for its TLS
// records (at most 29 bytes of overhead per 16 KiB) and what surrounds it.
func readBurst(rate int64, limit int) int64 {
	return max(rate, int64(limit)+int64(limit)/8+4096)
}

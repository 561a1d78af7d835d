package server

import (
	"sync"
	"time"
)

// RateClock is a clock for the read rate limit that only the test moves:
// a throttled read sleeps until Advance passes its time.
type RateClock struct {
	mu       sync.Mutex
	t        int64
	base     time.Time // real time at t = 0, for deadlines
	sleepers []fakeSleeper
}

type fakeSleeper struct {
	until int64
	ch    chan struct{}
}

// NewRateClock returns a clock at 0.
func NewRateClock() *RateClock { return &RateClock{base: time.Now()} }

func (c *RateClock) now() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// nanos maps a real deadline onto the clock: as far ahead of its now as it
// is ahead of the real now.
func (c *RateClock) nanos(t time.Time) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t + int64(time.Until(t))
}

func (c *RateClock) sleep(d time.Duration, wake <-chan struct{}) bool {
	c.mu.Lock()
	s := fakeSleeper{until: c.t + int64(d), ch: make(chan struct{})}
	c.sleepers = append(c.sleepers, s)
	c.mu.Unlock()
	select {
	case <-s.ch:
		return true
	case <-wake:
		c.mu.Lock()
		for i, o := range c.sleepers {
			if o.ch == s.ch {
				c.sleepers = append(c.sleepers[:i], c.sleepers[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
		return false
	}
}

// Advance moves the clock by d and wakes the reads it was holding.
func (c *RateClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t += int64(d)
	kept := c.sleepers[:0]
	for _, s := range c.sleepers {
		if s.until <= c.t {
			close(s.ch)
		} else {
			kept = append(kept, s)
		}
	}
	c.sleepers = kept
}

// Sleeping is how many reads wait for the clock.
func (c *RateClock) Sleeping() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sleepers)
}

// SetRateClock makes the connections accepted from now on throttle their
// reads by clk.
func (s *Server) SetRateClock(clk *RateClock) {
	s.mu.Lock()
	s.rateClock = clk
	s.mu.Unlock()
}

// MaxRateRead is the most bytes a connection has read since its rate was
// last set (at connection or authentication).
func (s *Server) MaxRateRead() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for c := range s.conns {
		if c.rc != nil {
			n = max(n, c.rc.read.Load())
		}
	}
	return n
}

// ReadBurst is the burst of a rate with elements of up to limit bytes.
func ReadBurst(rate int64, limit int) int64 { return readBurst(rate, limit) }

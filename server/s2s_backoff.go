package server

import (
	"sync"
	"time"
)

// Defaults of the retry back-off for unreachable domains.
const (
	defaultRetryMin = time.Second
	defaultRetryMax = 5 * time.Minute
	// maxBackoffs bounds the domains remembered as unreachable; beyond
	// it, expired entries go, then the one retried soonest.
	maxBackoffs = 4096
)

// backoff remembers, per remote domain, that an outgoing stream failed
// to be established, and until when no new attempt is made: the delay
// starts at min after a failure and doubles with each further one up
// to max; a stream established forgets the domain. It is safe for
// concurrent use.
type backoff struct {
	now      func() time.Time
	min, max time.Duration

	mu sync.Mutex
	m  map[string]backoffEntry
}

type backoffEntry struct {
	until time.Time
	delay time.Duration
}

func newBackoff(now func() time.Time, min, max time.Duration) *backoff {
	if now == nil {
		now = time.Now
	}
	if min <= 0 {
		min = defaultRetryMin
	}
	if max <= 0 {
		max = defaultRetryMax
	}
	if max < min {
		max = min
	}
	return &backoff{now: now, min: min, max: max, m: make(map[string]backoffEntry)}
}

// waiting reports whether no attempt to reach domain is to be made yet.
func (b *backoff) waiting(domain string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[domain]
	return ok && b.now().Before(e.until)
}

// failed records a failed attempt to reach domain.
func (b *backoff) failed(domain string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	e, ok := b.m[domain]
	switch {
	case !ok:
		e.delay = b.min
	default:
		e.delay = min(2*e.delay, b.max)
	}
	e.until = now.Add(e.delay)
	if !ok && len(b.m) >= maxBackoffs {
		var soonest string
		var soonestAt time.Time
		for d, x := range b.m {
			switch {
			case !now.Before(x.until):
				delete(b.m, d)
			case soonest == "" || x.until.Before(soonestAt):
				soonest, soonestAt = d, x.until
			}
		}
		if len(b.m) >= maxBackoffs {
			delete(b.m, soonest)
		}
	}
	b.m[domain] = e
}

// succeeded forgets domain's failures.
func (b *backoff) succeeded(domain string) {
	b.mu.Lock()
	delete(b.m, domain)
	b.mu.Unlock()
}

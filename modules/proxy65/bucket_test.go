package proxy65

import (
	"testing"
	"time"
)

// The bucket lets a burst through, then makes the sender wait as long as
// the rate says; idle time refills it up to the burst.
func TestBucket(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := newBucket(1<<20, t0) // 1 MiB/s, burst 1 MiB
	if d := b.take(t0, 1<<20); d != 0 {
		t.Fatalf("burst waited %v", d)
	}
	if d := b.take(t0, 1<<19); d != 500*time.Millisecond {
		t.Fatalf("half a MiB beyond the burst waits %v, want 500ms", d)
	}
	if d := b.take(t0.Add(10*time.Second), 1<<20); d != 0 {
		t.Fatalf("after a rest the burst waited %v", d)
	}
	if d := newBucket(-1, t0).take(t0, 1<<30); d != 0 {
		t.Fatalf("unbounded bucket waited %v", d)
	}
}

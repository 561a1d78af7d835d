package server

import (
	"testing"
	"time"
)

func TestBackoffDoublesAndResets(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBackoff(func() time.Time { return now }, time.Second, 4*time.Second)
	step := func(d time.Duration, want bool) {
		t.Helper()
		now = now.Add(d)
		if got := b.waiting("b.test"); got != want {
			t.Fatalf("at +%v: waiting %v, want %v", d, got, want)
		}
	}
	step(0, false)
	b.failed("b.test") // 1 s
	step(0, true)
	step(999*time.Millisecond, true)
	step(time.Millisecond, false)
	b.failed("b.test") // 2 s
	step(1999*time.Millisecond, true)
	step(time.Millisecond, false)
	b.failed("b.test") // 4 s
	b.failed("b.test") // still 4 s: the maximum
	step(3999*time.Millisecond, true)
	step(time.Millisecond, false)
	if b.waiting("c.test") {
		t.Fatal("c.test waits without having failed")
	}
	b.succeeded("b.test")
	b.failed("b.test") // 1 s again
	step(time.Second, false)
}

package server

import (
	"slices"
	"testing"
)

func TestBareTargets(t *testing.T) {
	mk := func(available bool, prio int32) *Session {
		s := &Session{}
		s.available.Store(available)
		s.priority.Store(prio)
		return s
	}
	top1, top2, low, negative, away := mk(true, 5), mk(true, 5), mk(true, 1), mk(true, -1), mk(false, 9)
	all := []*Session{top1, low, negative, away, top2}
	for _, tc := range []struct {
		name     string
		sessions []*Session
		typ      string
		want     []*Session
	}{
		{"chat to the highest priority", all, "chat", []*Session{top1, top2}},
		{"normal too", all, "", []*Session{top1, top2}},
		{"headline to every non-negative", all, "headline", []*Session{top1, low, top2}},
		{"only negative: undelivered", []*Session{negative, away}, "chat", nil},
		{"none", nil, "chat", nil},
	} {
		if got := BareTargets(nil, tc.sessions, tc.typ); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %d sessions %v, want %v", tc.name, len(got), got, tc.want)
		}
	}
}

package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// TestOffline checks an implementation of storage.Offline. newStore must
// return a fresh, empty store each time it is called; it may use t to
// register cleanup. Every subtest gets its own store.
func TestOffline(t *testing.T, newStore func(t *testing.T) storage.Offline) {
	tests := []struct {
		name string
		test func(t *testing.T, s storage.Offline)
	}{
		{"Empty", testOfflineEmpty},
		{"Order", testOfflineOrder},
		{"Limit", testOfflineLimit},
		{"DeleteUpTo", testOfflineDeleteUpTo},
		{"Expire", testOfflineExpire},
		{"ExpireLimit", testOfflineExpireLimit},
		{"DeleteUser", testOfflineDeleteUser},
		{"Isolated", testOfflineIsolated},
		{"Copies", testOfflineCopies},
		{"Invalid", testOfflineInvalid},
		{"Concurrent", testOfflineConcurrent},
		{"ConcurrentLimit", testOfflineConcurrentLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, newStore(t))
		})
	}
}

// offlineBase is the time the offline tests store messages at.
var offlineBase = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func offlineMsg(i int) storage.OfflineMessage {
	return storage.OfflineMessage{
		Stored: offlineBase.Add(time.Duration(i) * time.Minute),
		Data:   fmt.Appendf(nil, "<message id='m%d'><body>%d</body></message>", i, i),
	}
}

func mustPush(t *testing.T, s storage.Offline, user string, msg storage.OfflineMessage) {
	t.Helper()
	if err := s.PushOffline(t.Context(), user, msg, 0); err != nil {
		t.Fatalf("PushOffline(%q): %v", user, err)
	}
}

func mustOffline(t *testing.T, s storage.Offline, user string) []storage.OfflineMessage {
	t.Helper()
	msgs, err := s.OfflineMessages(t.Context(), user)
	if err != nil {
		t.Fatalf("OfflineMessages(%q): %v", user, err)
	}
	return msgs
}

// checkOffline fails unless user's queue holds exactly the messages want
// (compared by Data and Stored), with strictly increasing Seqs, and
// CountOffline agrees.
func checkOffline(t *testing.T, s storage.Offline, user string, want []storage.OfflineMessage) []storage.OfflineMessage {
	t.Helper()
	got := mustOffline(t, s, user)
	if len(want) == 0 && got != nil {
		t.Errorf("OfflineMessages(%q) = %d messages (non-nil), want nil", user, len(got))
	}
	if len(got) != len(want) {
		t.Fatalf("OfflineMessages(%q) = %d messages, want %d", user, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].Data, want[i].Data) {
			t.Errorf("OfflineMessages(%q)[%d].Data = %s, want %s", user, i, abbrev(got[i].Data), abbrev(want[i].Data))
		}
		if w := want[i].Stored.Truncate(time.Second); !got[i].Stored.Equal(w) {
			t.Errorf("OfflineMessages(%q)[%d].Stored = %v, want %v", user, i, got[i].Stored, w)
		}
		if i > 0 && got[i].Seq <= got[i-1].Seq {
			t.Errorf("OfflineMessages(%q): Seq %d after %d", user, got[i].Seq, got[i-1].Seq)
		}
	}
	n, err := s.CountOffline(t.Context(), user)
	if err != nil || n != len(want) {
		t.Errorf("CountOffline(%q) = %d, %v; want %d", user, n, err, len(want))
	}
	return got
}

func testOfflineEmpty(t *testing.T, s storage.Offline) {
	ctx := t.Context()
	checkOffline(t, s, oUser, nil)
	if err := s.DeleteOffline(ctx, oUser, 10); err != nil {
		t.Errorf("DeleteOffline of an empty queue: %v", err)
	}
	if err := s.DeleteOfflineUser(ctx, oUser); err != nil {
		t.Errorf("DeleteOfflineUser of an empty queue: %v", err)
	}
	if n, err := s.ExpireOffline(ctx, offlineBase.Add(time.Hour), 0); n != 0 || err != nil {
		t.Errorf("ExpireOffline of an empty store = %d, %v; want 0", n, err)
	}
	checkOffline(t, s, oUser, nil)
}

const (
	oUser  = "alice@example.org"
	oOther = "bob@example.org"
)

func testOfflineOrder(t *testing.T, s storage.Offline) {
	var want []storage.OfflineMessage
	for i := range 20 {
		m := offlineMsg(i)
		// Sub-second parts are dropped; the Seq given is ignored.
		m.Stored = m.Stored.Add(time.Duration(i) * 37 * time.Millisecond)
		m.Seq = uint64(100 - i)
		if i == 7 {
			m.Data = big(100 << 10)
		}
		if i == 8 {
			m.Data = nil
		}
		want = append(want, m)
		mustPush(t, s, oUser, m)
	}
	got := checkOffline(t, s, oUser, want)
	// Reading does not remove.
	again := checkOffline(t, s, oUser, want)
	for i := range got {
		if got[i].Seq != again[i].Seq {
			t.Errorf("message %d: Seq %d, then %d", i, got[i].Seq, again[i].Seq)
		}
	}
	// A time in another zone is the same instant.
	loc := time.FixedZone("UTC+5", 5*3600)
	m := storage.OfflineMessage{Stored: offlineBase.In(loc), Data: []byte("zoned")}
	mustPush(t, s, oUser, m)
	checkOffline(t, s, oUser, append(want, m))
}

func testOfflineLimit(t *testing.T, s storage.Offline) {
	ctx := t.Context()
	var want []storage.OfflineMessage
	for i := range 3 {
		m := offlineMsg(i)
		if err := s.PushOffline(ctx, oUser, m, 3); err != nil {
			t.Fatalf("PushOffline %d with limit 3: %v", i, err)
		}
		want = append(want, m)
	}
	for _, limit := range []int{3, 2, 1} {
		err := s.PushOffline(ctx, oUser, offlineMsg(9), limit)
		if !errors.Is(err, storage.ErrFull) {
			t.Errorf("PushOffline to a queue of 3 with limit %d = %v, want ErrFull", limit, err)
		}
	}
	checkOffline(t, s, oUser, want)
	// Other users have their own queue.
	if err := s.PushOffline(ctx, oOther, offlineMsg(0), 3); err != nil {
		t.Errorf("PushOffline for another user: %v", err)
	}
	// No limit.
	for _, limit := range []int{0, -1} {
		m := offlineMsg(10 + len(want))
		if err := s.PushOffline(ctx, oUser, m, limit); err != nil {
			t.Errorf("PushOffline with limit %d: %v", limit, err)
		}
		want = append(want, m)
	}
	got := checkOffline(t, s, oUser, want)
	// Delivering makes room again.
	if err := s.DeleteOffline(ctx, oUser, got[len(got)-2].Seq); err != nil {
		t.Fatalf("DeleteOffline: %v", err)
	}
	m := offlineMsg(50)
	if err := s.PushOffline(ctx, oUser, m, 2); err != nil {
		t.Errorf("PushOffline to a queue of 1 with limit 2: %v", err)
	}
	checkOffline(t, s, oUser, []storage.OfflineMessage{want[len(want)-1], m})
}

func testOfflineDeleteUpTo(t *testing.T, s storage.Offline) {
	ctx := t.Context()
	var want []storage.OfflineMessage
	for i := range 5 {
		want = append(want, offlineMsg(i))
		mustPush(t, s, oUser, want[i])
	}
	delivered := checkOffline(t, s, oUser, want)
	// Messages arrive while the first five are being delivered.
	for i := 5; i < 8; i++ {
		want = append(want, offlineMsg(i))
		mustPush(t, s, oUser, want[i])
	}
	if err := s.DeleteOffline(ctx, oUser, delivered[2].Seq); err != nil {
		t.Fatalf("DeleteOffline: %v", err)
	}
	checkOffline(t, s, oUser, want[3:])
	if err := s.DeleteOffline(ctx, oUser, delivered[4].Seq); err != nil {
		t.Fatalf("DeleteOffline: %v", err)
	}
	rest := checkOffline(t, s, oUser, want[5:])
	// Deleting up to an older Seq again changes nothing.
	if err := s.DeleteOffline(ctx, oUser, delivered[1].Seq); err != nil {
		t.Fatalf("DeleteOffline again: %v", err)
	}
	checkOffline(t, s, oUser, want[5:])
	// Emptying the queue does not let Seqs start again: a delivery that
	// read the old messages must not delete new ones.
	if err := s.DeleteOffline(ctx, oUser, rest[len(rest)-1].Seq); err != nil {
		t.Fatalf("DeleteOffline all: %v", err)
	}
	checkOffline(t, s, oUser, nil)
	m := offlineMsg(20)
	mustPush(t, s, oUser, m)
	got := checkOffline(t, s, oUser, []storage.OfflineMessage{m})
	if got[0].Seq <= rest[len(rest)-1].Seq {
		t.Errorf("Seq after emptying the queue = %d, not above the last one, %d", got[0].Seq, rest[len(rest)-1].Seq)
	}
	if err := s.DeleteOffline(ctx, oUser, rest[len(rest)-1].Seq); err != nil {
		t.Fatalf("DeleteOffline: %v", err)
	}
	checkOffline(t, s, oUser, []storage.OfflineMessage{m})
	// The largest Seq deletes everything.
	if err := s.DeleteOffline(ctx, oUser, ^uint64(0)); err != nil {
		t.Fatalf("DeleteOffline(max): %v", err)
	}
	checkOffline(t, s, oUser, nil)
}

func testOfflineExpire(t *testing.T, s storage.Offline) {
	ctx := t.Context()
	users := []string{oUser, oOther, "carol@example.net", "dave@example.org"}
	wants := make(map[string][]storage.OfflineMessage)
	for u, user := range users {
		// User u has messages at minutes u .. u+9.
		for i := u; i < u+10; i++ {
			m := offlineMsg(i)
			mustPush(t, s, user, m)
			wants[user] = append(wants[user], m)
		}
	}
	// Everything stored before minute 5 goes: 5 + 4 + 3 + 2 messages. A
	// message stored exactly at t stays.
	n, err := s.ExpireOffline(ctx, offlineBase.Add(5*time.Minute), 0)
	if err != nil || n != 14 {
		t.Errorf("ExpireOffline = %d, %v; want 14", n, err)
	}
	for u, user := range users {
		checkOffline(t, s, user, wants[user][5-u:])
	}
	if n, err := s.ExpireOffline(ctx, offlineBase.Add(5*time.Minute), 0); n != 0 || err != nil {
		t.Errorf("ExpireOffline again = %d, %v; want 0", n, err)
	}
	// Expiring everything leaves empty queues that take new messages.
	if n, err := s.ExpireOffline(ctx, offlineBase.Add(time.Hour), 0); n != 26 || err != nil {
		t.Errorf("ExpireOffline of everything = %d, %v; want 26", n, err)
	}
	for _, user := range users {
		checkOffline(t, s, user, nil)
	}
	m := offlineMsg(0)
	mustPush(t, s, oUser, m)
	checkOffline(t, s, oUser, []storage.OfflineMessage{m})
}

// testOfflineExpireLimit checks ExpireOffline's limit: a call removes at
// most limit messages, the oldest of a queue first, removing limit reports
// that more may be left, and repeated calls finish the job.
func testOfflineExpireLimit(t *testing.T, s storage.Offline) {
	ctx := t.Context()
	users := []string{oUser, oOther, "carol@example.net"}
	for _, user := range users {
		for i := range 10 {
			mustPush(t, s, user, offlineMsg(i))
		}
	}
	cut := offlineBase.Add(7 * time.Minute) // 7 of each queue's 10 are due
	total, calls := 0, 0
	for {
		n, err := s.ExpireOffline(ctx, cut, 4)
		if err != nil {
			t.Fatalf("ExpireOffline(limit 4): %v", err)
		}
		if n > 4 {
			t.Fatalf("ExpireOffline(limit 4) removed %d", n)
		}
		total += n
		calls++
		for _, user := range users {
			msgs := mustOffline(t, s, user)
			if len(msgs) < 3 || !msgs[len(msgs)-1].Stored.Equal(offlineMsg(9).Stored) {
				t.Fatalf("ExpireOffline(limit 4) removed a newer message of %q", user)
			}
		}
		if !storage.Limited(n, 4) {
			break
		}
		if calls > 10 {
			t.Fatalf("ExpireOffline(limit 4) still reports more after %d calls", calls)
		}
	}
	if total != 21 || calls < 6 {
		t.Errorf("ExpireOffline(limit 4) removed %d in %d calls; want 21 in at least 6", total, calls)
	}
	for _, user := range users {
		if msgs := mustOffline(t, s, user); len(msgs) != 3 || !msgs[0].Stored.Equal(offlineMsg(7).Stored) {
			t.Errorf("after ExpireOffline(limit 4), %q has %d messages, want the last 3", user, len(msgs))
		}
	}
}

func testOfflineDeleteUser(t *testing.T, s storage.Offline) {
	ctx := t.Context()
	others := []string{"alice@example.net", "alice@example.org.evil", "malice@example.org", oOther}
	for _, u := range append([]string{oUser}, others...) {
		for i := range 3 {
			mustPush(t, s, u, offlineMsg(i))
		}
	}
	if err := s.DeleteOfflineUser(ctx, oUser); err != nil {
		t.Fatalf("DeleteOfflineUser: %v", err)
	}
	checkOffline(t, s, oUser, nil)
	for _, u := range others {
		checkOffline(t, s, u, []storage.OfflineMessage{offlineMsg(0), offlineMsg(1), offlineMsg(2)})
	}
	if err := s.DeleteOfflineUser(ctx, oUser); err != nil {
		t.Errorf("second DeleteOfflineUser: %v", err)
	}
	mustPush(t, s, oUser, offlineMsg(7))
	checkOffline(t, s, oUser, []storage.OfflineMessage{offlineMsg(7)})
}

func testOfflineIsolated(t *testing.T, s storage.Offline) {
	users := []string{oUser, "alice@example.org.evil", "alic@example.org", "alice@example.or", "example.org"}
	for u, user := range users {
		for i := range u + 1 {
			mustPush(t, s, user, storage.OfflineMessage{Stored: offlineBase, Data: fmt.Appendf(nil, "%s %d", user, i)})
		}
	}
	for u, user := range users {
		var want []storage.OfflineMessage
		for i := range u + 1 {
			want = append(want, storage.OfflineMessage{Stored: offlineBase, Data: fmt.Appendf(nil, "%s %d", user, i)})
		}
		checkOffline(t, s, user, want)
	}
	// Deleting up to a Seq touches one user only.
	if err := s.DeleteOffline(t.Context(), users[1], ^uint64(0)); err != nil {
		t.Fatal(err)
	}
	checkOffline(t, s, users[1], nil)
	if n, err := s.CountOffline(t.Context(), users[4]); n != 5 || err != nil {
		t.Errorf("CountOffline(%q) = %d, %v; want 5", users[4], n, err)
	}
}

func testOfflineCopies(t *testing.T, s storage.Offline) {
	in := []byte("original")
	mustPush(t, s, oUser, storage.OfflineMessage{Stored: offlineBase, Data: in})
	copy(in, "SCRIBBLE")
	want := []storage.OfflineMessage{{Stored: offlineBase, Data: []byte("original")}}
	got := checkOffline(t, s, oUser, want)
	copy(got[0].Data, "SCRIBBLE")
	_ = append(got[0].Data[:2], "appended past the end"...)
	checkOffline(t, s, oUser, want)
}

func testOfflineInvalid(t *testing.T, s storage.Offline) {
	ctx := t.Context()
	if err := s.PushOffline(ctx, "", offlineMsg(0), 0); err == nil {
		t.Error("PushOffline with an empty user succeeded")
	}
	checkOffline(t, s, "", nil)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.PushOffline(cancelled, oUser, offlineMsg(0), 0); err == nil {
		t.Error("PushOffline with a cancelled context succeeded")
	}
	checkOffline(t, s, oUser, nil)
	if _, err := s.OfflineMessages(cancelled, oUser); err == nil {
		t.Error("OfflineMessages with a cancelled context succeeded")
	}
}

func testOfflineConcurrent(t *testing.T, s storage.Offline) {
	ctx := t.Context()
	const (
		workers = 8
		rounds  = 25
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				m := storage.OfflineMessage{Stored: offlineBase, Data: fmt.Appendf(nil, "%d/%d", w, r)}
				for _, user := range []string{oUser, fmt.Sprintf("w%d@example.org", w)} {
					if err := s.PushOffline(ctx, user, m, 0); err != nil {
						t.Errorf("worker %d: %v", w, err)
						return
					}
				}
				if _, err := s.CountOffline(ctx, oUser); err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()

	got := mustOffline(t, s, oUser)
	if len(got) != workers*rounds {
		t.Fatalf("shared queue holds %d messages, want %d", len(got), workers*rounds)
	}
	// Each worker's messages are in its own order, all Seqs distinct.
	next := make(map[string]int)
	for i, m := range got {
		if i > 0 && m.Seq <= got[i-1].Seq {
			t.Errorf("Seq %d after %d", m.Seq, got[i-1].Seq)
		}
		var w, r int
		if _, err := fmt.Sscanf(string(m.Data), "%d/%d", &w, &r); err != nil {
			t.Fatalf("message %q: %v", m.Data, err)
		}
		key := fmt.Sprint(w)
		if r != next[key] {
			t.Errorf("worker %d: message %d where %d was due", w, r, next[key])
		}
		next[key] = r + 1
	}
	for w := range workers {
		if n, err := s.CountOffline(ctx, fmt.Sprintf("w%d@example.org", w)); n != rounds || err != nil {
			t.Errorf("CountOffline of worker %d = %d, %v; want %d", w, n, err, rounds)
		}
	}
}

func testOfflineConcurrentLimit(t *testing.T, s storage.Offline) {
	ctx := t.Context()
	const (
		workers = 20
		limit   = 7
	)
	var ok, full atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			err := s.PushOffline(ctx, oUser, storage.OfflineMessage{Stored: offlineBase, Data: fmt.Appendf(nil, "%d", w)}, limit)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, storage.ErrFull):
				full.Add(1)
			default:
				t.Errorf("worker %d: %v", w, err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != limit || full.Load() != workers-limit {
		t.Errorf("%d pushes succeeded and %d were full; want %d and %d", ok.Load(), full.Load(), limit, workers-limit)
	}
	if n, err := s.CountOffline(ctx, oUser); n != limit || err != nil {
		t.Errorf("CountOffline = %d, %v; want %d", n, err, limit)
	}
}

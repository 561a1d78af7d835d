package bbolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

func openInternal(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "kiez.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// holdWriter starts a write transaction, so that the committer blocks in
// its next db.Update until release is called.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	tx, err := s.db.Begin(true)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	return func() { _ = tx.Rollback() }
}

// waitQueued waits until n requests wait in the committer's queue.
func waitQueued(t *testing.T, c *committer, n int) {
	t.Helper()
	for i := 0; len(c.reqs) < n; i++ {
		if i > 10000 {
			t.Fatalf("%d requests queued, want %d", len(c.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// put returns a request function that stores key in the bucket "t".
func put(key string) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("t"))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), []byte("v"))
	}
}

func keys(t *testing.T, s *Store) map[string]bool {
	t.Helper()
	got := make(map[string]bool)
	_ = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("t")); b != nil {
			return b.ForEach(func(k, _ []byte) error { got[string(k)] = true; return nil })
		}
		return nil
	})
	return got
}

// TestCommitterGroups checks that requests queued during a commit share
// the next one.
func TestCommitterGroups(t *testing.T) {
	s := openInternal(t)
	c := s.commit
	release := holdWriter(t, s)

	const n = 50
	errs := make(chan error, n)
	// The first request is taken at once and waits for the writer lock.
	go func() { errs <- c.do(context.Background(), put("k0")) }()
	for i := 0; c.requests.Load() == 0; i++ {
		if i > 10000 {
			t.Fatal("the first request was not taken")
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < n; i++ {
		go func() { errs <- c.do(context.Background(), put(fmt.Sprintf("k%d", i))) }()
	}
	waitQueued(t, c, n-1)
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("do: %v", err)
		}
	}
	if got := c.commits.Load(); got != 2 {
		t.Errorf("%d requests took %d commits, want 2", n, got)
	}
	if got := len(keys(t, s)); got != n {
		t.Errorf("%d keys stored, want %d", got, n)
	}
}

// TestCommitterIsolatesFailures checks that a failing request in a batch
// fails alone.
func TestCommitterIsolatesFailures(t *testing.T) {
	s := openInternal(t)
	c := s.commit
	release := holdWriter(t, s)

	// A blocker takes the committer first, so the rest form one batch.
	blocker := make(chan error, 1)
	go func() { blocker <- c.do(context.Background(), put("blocker")) }()
	for i := 0; c.requests.Load() == 0; i++ {
		if i > 10000 {
			t.Fatal("the first request was not taken")
		}
		time.Sleep(time.Millisecond)
	}
	bad := errors.New("bad request")
	var wg sync.WaitGroup
	results := make([]error, 5)
	for i := range results {
		fn := put(fmt.Sprintf("good%d", i))
		if i == 2 {
			fn = func(tx *bolt.Tx) error {
				// Writes something, then fails: the write must not stay.
				if err := put("bad")(tx); err != nil {
					return err
				}
				return bad
			}
		}
		wg.Go(func() { results[i] = c.do(context.Background(), fn) })
		waitQueued(t, c, i+1) // keep the order
	}
	// A request whose context ends while queued is not run.
	ctx, cancel := context.WithCancel(context.Background())
	var cancelled error
	wg.Go(func() { cancelled = c.do(ctx, put("cancelled")) })
	waitQueued(t, c, len(results)+1)
	cancel()
	release()
	wg.Wait()
	if err := <-blocker; err != nil {
		t.Errorf("blocker: %v", err)
	}
	for i, err := range results {
		if i == 2 {
			if !errors.Is(err, bad) {
				t.Errorf("request %d = %v, want its own error", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("request %d = %v, want nil", i, err)
		}
	}
	if !errors.Is(cancelled, context.Canceled) {
		t.Errorf("cancelled request = %v, want context.Canceled", cancelled)
	}
	got := keys(t, s)
	for _, k := range []string{"blocker", "good0", "good1", "good3", "good4"} {
		if !got[k] {
			t.Errorf("key %q missing", k)
		}
	}
	for _, k := range []string{"bad", "cancelled"} {
		if got[k] {
			t.Errorf("key %q stored", k)
		}
	}
}

// TestCommitterClose checks that Close commits what is queued and later
// requests fail.
func TestCommitterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiez.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := s.commit
	release := holdWriter(t, s)
	errs := make(chan error, 10)
	go func() { errs <- c.do(context.Background(), put("first")) }()
	for i := 0; c.requests.Load() == 0; i++ {
		if i > 10000 {
			t.Fatal("the first request was not taken")
		}
		time.Sleep(time.Millisecond)
	}
	for i := range 9 {
		go func() { errs <- c.do(context.Background(), put(fmt.Sprintf("q%d", i))) }()
	}
	waitQueued(t, c, 9)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close must wait for the queue, which waits for the writer.
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the queue was committed", err)
	case <-time.After(20 * time.Millisecond):
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Errorf("queued request: %v", err)
		}
	}
	if err := c.do(context.Background(), put("late")); !errors.Is(err, errClosed) {
		t.Errorf("request after Close = %v, want errClosed", err)
	}
	if _, err := s.AppendArchive(context.Background(), "a@example.org", time.Now(), "b@example.org", nil); err == nil {
		t.Error("AppendArchive after Close succeeded")
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := len(keys(t, s)); got != 10 {
		t.Errorf("%d keys after reopen, want 10", got)
	}
}

// TestExpireBatches expires more than one transaction's worth of messages
// across users.
func TestExpireBatches(t *testing.T) {
	ctx := t.Context()
	s := openInternal(t)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	// User u has 9000 messages, one a millisecond from at, all but the
	// last 1000 to expire, so transactions end inside users' archives.
	const perUser, kept = 9000, 1000
	users := []string{"a@example.org", "b@example.org", "c@example.org", "d@example.org"}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, u := range users {
			for i := range perUser {
				rec := encodeArchiveMsg(fmt.Sprintf("p%d@example.org/r", i%7), []byte("x"))
				if _, err := appendArchiveTx(tx, u, uint64(at.UnixMicro())+uint64(i)*1000, fmt.Sprintf("p%d@example.org/r", i%7), rec); err != nil {
					return err
				}
				rec = encodeOfflineMsg(storage.OfflineMessage{Stored: at.Add(time.Duration(i) * time.Second), Data: []byte("x")})
				if _, _, err := pushOfflineTx(tx, u, rec, 0); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cut := at.Add(time.Duration(perUser-kept) * time.Millisecond)
	p3 := 0 // kept messages with p3
	for i := perUser - kept; i < perUser; i++ {
		if i%7 == 3 {
			p3++
		}
	}
	n, err := s.ExpireArchive(ctx, cut, 0)
	if want := len(users) * (perUser - kept); n != want || err != nil {
		t.Errorf("ExpireArchive = %d, %v; want %d", n, err, want)
	}
	n, err = s.ExpireOffline(ctx, at.Add(time.Duration(perUser-kept)*time.Second), 0)
	if want := len(users) * (perUser - kept); n != want || err != nil {
		t.Errorf("ExpireOffline = %d, %v; want %d", n, err, want)
	}
	for _, u := range users {
		st, err := s.ArchiveStats(ctx, u)
		if err != nil || st.Count != kept || !st.First.Time().Equal(cut) {
			t.Errorf("ArchiveStats(%q) = %+v, %v; want %d from %v", u, st, err, kept, cut)
		}
		p, err := s.QueryArchive(ctx, u, storage.ArchiveQuery{With: "p3@example.org", Max: perUser})
		if want := p3; err != nil || len(p.Messages) != want || !p.Complete {
			t.Errorf("QueryArchive(%q) With p3 = %d messages, %v; want %d", u, len(p.Messages), err, want)
		}
		if c, err := s.CountOffline(ctx, u); c != kept || err != nil {
			t.Errorf("CountOffline(%q) = %d, %v; want %d", u, c, err, kept)
		}
	}
}

// TestExpireManyUsers expires across more users than one transaction
// visits.
func TestExpireManyUsers(t *testing.T) {
	ctx := t.Context()
	s := openInternal(t)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	const users = expireBatch + expireBatch/2
	err := s.db.Update(func(tx *bolt.Tx) error {
		for u := range users {
			user := fmt.Sprintf("u%05d@example.org", u)
			for i := range 2 {
				at := at.Add(time.Duration(i) * time.Hour)
				if _, err := appendArchiveTx(tx, user, storage.TimeID(at), "p@example.org", encodeArchiveMsg("p@example.org", nil)); err != nil {
					return err
				}
				if _, _, err := pushOfflineTx(tx, user, encodeOfflineMsg(storage.OfflineMessage{Stored: at}), 0); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.ExpireArchive(ctx, at.Add(time.Minute), 0); n != users || err != nil {
		t.Errorf("ExpireArchive = %d, %v; want %d", n, err, users)
	}
	if n, err := s.ExpireOffline(ctx, at.Add(time.Minute), 0); n != users || err != nil {
		t.Errorf("ExpireOffline = %d, %v; want %d", n, err, users)
	}
	for _, u := range []int{0, expireBatch - 1, expireBatch, users - 1} {
		user := fmt.Sprintf("u%05d@example.org", u)
		if st, err := s.ArchiveStats(ctx, user); st.Count != 1 || err != nil {
			t.Errorf("ArchiveStats(%q) = %+v, %v; want 1 message", user, st, err)
		}
		if n, err := s.CountOffline(ctx, user); n != 1 || err != nil {
			t.Errorf("CountOffline(%q) = %d, %v; want 1", user, n, err)
		}
	}
}

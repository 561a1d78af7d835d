package bbolt_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

var archiveAt = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func TestArchiveReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	var want []storage.ArchivedMessage
	for i := range 10 {
		with := fmt.Sprintf("bob@example.org/r%d", i%2)
		data := fmt.Appendf(nil, "<message id='%d'/>", i)
		id, err := s.AppendArchive(ctx, "alice@example.org", archiveAt.Add(time.Duration(i)*time.Second), with, data)
		if err != nil {
			t.Fatalf("AppendArchive: %v", err)
		}
		want = append(want, storage.ArchivedMessage{ID: id, With: with, Data: data})
	}
	// Expire the first half, and all of carol's archive.
	if _, err := s.AppendArchive(ctx, "carol@example.org", archiveAt, "dave@example.org", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ExpireArchive(ctx, archiveAt.Add(5*time.Second), 0); n != 6 || err != nil {
		t.Fatalf("ExpireArchive = %d, %v; want 6", n, err)
	}
	mustClose(t, s)

	s = open(t, path)
	p, err := s.QueryArchive(ctx, "alice@example.org", storage.ArchiveQuery{Max: 100})
	if err != nil || !p.Complete || !slices.EqualFunc(p.Messages, want[5:], sameMsg) {
		t.Errorf("QueryArchive after reopen = %v, %v, %v; want %v", p.Messages, p.Complete, err, want[5:])
	}
	p, err = s.QueryArchive(ctx, "alice@example.org", storage.ArchiveQuery{Max: 100, With: "bob@example.org/r1"})
	if err != nil || len(p.Messages) != 3 {
		t.Errorf("QueryArchive With a full JID after reopen = %v, %v; want 3 messages", p.Messages, err)
	}
	st, err := s.ArchiveStats(ctx, "alice@example.org")
	if err != nil || st.Count != 5 || st.First.ID != want[5].ID || st.Last.ID != want[9].ID {
		t.Errorf("ArchiveStats after reopen = %+v, %v", st, err)
	}
	// The last ID survives the expiry of the whole archive and the reopen.
	id, err := s.AppendArchive(ctx, "carol@example.org", archiveAt, "dave@example.org", []byte("y"))
	if err != nil || id != storage.TimeID(archiveAt)+1 {
		t.Errorf("AppendArchive after expiry and reopen = %d, %v; want %d", id, err, storage.TimeID(archiveAt)+1)
	}
}

func sameMsg(a, b storage.ArchivedMessage) bool {
	return a.ID == b.ID && a.With == b.With && string(a.Data) == string(b.Data)
}

// TestArchiveConcurrentAppends appends from 50 goroutines at once, so that
// appends share commits, and checks every ID is distinct, increases within
// each goroutine, and is readable after a reopen.
func TestArchiveConcurrentAppends(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	const (
		workers = 50
		rounds  = 20
	)
	ids := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				// Half the workers write to a shared archive, all at the
				// same time, which forces IDs to be raised.
				user := fmt.Sprintf("w%d@example.org", w)
				if w%2 == 0 {
					user = "shared@example.org"
				}
				id, err := s.AppendArchive(ctx, user, archiveAt, fmt.Sprintf("c%d@example.org/r", w), fmt.Appendf(nil, "%d/%d", w, r))
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				if r > 0 && id <= ids[w][r-1] {
					t.Errorf("worker %d: ID %d after %d", w, id, ids[w][r-1])
				}
				ids[w] = append(ids[w], id)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	mustClose(t, s)

	s = open(t, path)
	seen := make(map[uint64]bool)
	for w := range workers {
		user := fmt.Sprintf("w%d@example.org", w)
		if w%2 == 0 {
			user = "shared@example.org"
		}
		p, err := s.QueryArchive(ctx, user, storage.ArchiveQuery{Max: 1000, With: fmt.Sprintf("c%d@example.org", w)})
		if err != nil || len(p.Messages) != rounds {
			t.Fatalf("worker %d: %d messages after reopen, %v; want %d", w, len(p.Messages), err, rounds)
		}
		for r, m := range p.Messages {
			if m.ID != ids[w][r] || string(m.Data) != fmt.Sprintf("%d/%d", w, r) {
				t.Errorf("worker %d: message %d is %d %q, want %d", w, r, m.ID, m.Data, ids[w][r])
			}
			if w%2 == 0 {
				if seen[m.ID] {
					t.Errorf("ID %d given twice in the shared archive", m.ID)
				}
				seen[m.ID] = true
			}
		}
	}
	st, err := s.ArchiveStats(ctx, "shared@example.org")
	if err != nil || st.Count != workers/2*rounds {
		t.Errorf("ArchiveStats of the shared archive = %+v, %v; want %d messages", st, err, workers/2*rounds)
	}
}

// TestArchiveDeleteLeavesNoTrace checks that expiry removes the index
// entries of the parties it removes, and DeleteArchive the user's name.
func TestArchiveDeleteLeavesNoTrace(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	for i, with := range []string{"expiredcarol@example.org/phone", "keptdave@example.org/laptop"} {
		for _, user := range []string{"deletedalice@example.org", "keptbob@example.org"} {
			if _, err := s.AppendArchive(ctx, user, archiveAt.Add(time.Duration(i)*time.Hour), with, []byte("secretbody"+with)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, err := s.ExpireArchive(ctx, archiveAt.Add(time.Minute), 0); n != 2 || err != nil {
		t.Fatalf("ExpireArchive = %d, %v; want 2", n, err)
	}
	if err := s.DeleteArchive(ctx, "deletedalice@example.org"); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	all := everything(t, path)
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"deletedalice", false},
		{"expiredcarol", false},
		{"keptbob", true},
		{"keptdave@example.org/laptop", true},
	} {
		if got := containsAnywhere(all, tt.s); got != tt.want {
			t.Errorf("%q appears in the database: %v, want %v", tt.s, got, tt.want)
		}
	}
}

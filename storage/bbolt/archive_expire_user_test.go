package bbolt

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

// TestExpireUserPending expires one user's messages that are only in the
// log, and leaves another's pending ones alone.
func TestExpireUserPending(t *testing.T) {
	ctx := t.Context()
	s := openWALStore(t, filepath.Join(t.TempDir(), "kiez.db"))
	var alice, bob []storage.ArchivedMessage
	for i := range 10 {
		alice = append(alice, appendMsg(t, s, "alice@example.org", i))
		bob = append(bob, appendMsg(t, s, "bob@example.org", i))
	}
	if !s.wal.pendingFor("alice@example.org") {
		t.Fatal("nothing pending: the test tests nothing")
	}
	n, err := s.ExpireUserArchive(ctx, "alice@example.org", walAt.Add(4*time.Second), 0)
	if err != nil || n != 4 {
		t.Fatalf("ExpireUserArchive = %d, %v; want 4", n, err)
	}
	checkArchive(t, s, "alice@example.org", alice[4:])
	checkArchive(t, s, "bob@example.org", bob)
}

// TestExpireUserSurvivesCrash expires one user's messages whose log
// segments stay on disk, crashes, and checks that replay brings none of
// them back and that IDs go on from the last one.
func TestExpireUserSurvivesCrash(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := openWALStore(t, path)
	s.wal.keep.Store(true) // applied segments stay, as if the crash came before their deletion
	var alice, bob []storage.ArchivedMessage
	for i := range 12 {
		alice = append(alice, appendMsg(t, s, "alice@example.org", i))
		bob = append(bob, appendMsg(t, s, "bob@example.org", i))
	}
	n, err := s.ExpireUserArchive(ctx, "alice@example.org", walAt.Add(8*time.Second), 0)
	if err != nil || n != 8 {
		t.Fatalf("ExpireUserArchive = %d, %v; want 8", n, err)
	}
	if len(segmentsIn(t, path)) == 0 {
		t.Fatal("no log segment left to replay")
	}
	crash(t, s)

	s = openWALStore(t, path)
	checkArchive(t, s, "alice@example.org", alice[8:])
	checkArchive(t, s, "bob@example.org", bob)
	m := appendMsg(t, s, "alice@example.org", 0)
	if last := alice[len(alice)-1].ID; m.ID != last+1 {
		t.Errorf("the next ID after replay is %d, want %d", m.ID, last+1)
	}
}

// TestExpireUserBatches expires more than one transaction's worth of one
// user's messages, ending inside a chunk, and leaves another archive with
// messages of the same times alone.
func TestExpireUserBatches(t *testing.T) {
	ctx := t.Context()
	s := openInternal(t)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	const total, gone = 2*expireBatch + 5000, 2*expireBatch + 1234
	users := []string{"a@example.org", "b@example.org"}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, u := range users {
			n := total
			if u != users[0] {
				n = 100
			}
			for i := range n {
				with := fmt.Sprintf("p%d@example.org/r", i%7)
				if _, err := appendArchiveTx(tx, u, uint64(at.UnixMicro())+uint64(i)*1000, with, encodeArchiveMsg(with, []byte("x"))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cut := at.Add(gone * time.Millisecond)
	n, err := s.ExpireUserArchive(ctx, users[0], cut, 0)
	if n != gone || err != nil {
		t.Errorf("ExpireUserArchive = %d, %v; want %d", n, err, gone)
	}
	st, err := s.ArchiveStats(ctx, users[0])
	if err != nil || st.Count != total-gone || !st.First.Time().Equal(cut) {
		t.Errorf("ArchiveStats = %+v, %v; want %d from %v", st, err, total-gone, cut)
	}
	p3 := 0 // kept messages with p3
	for i := gone; i < total; i++ {
		if i%7 == 3 {
			p3++
		}
	}
	p, err := s.QueryArchive(ctx, users[0], storage.ArchiveQuery{With: "p3@example.org", Max: total})
	if err != nil || len(p.Messages) != p3 || !p.Complete {
		t.Errorf("QueryArchive With p3 = %d messages, %v; want %d", len(p.Messages), err, p3)
	}
	if st, err := s.ArchiveStats(ctx, users[1]); err != nil || st.Count != 100 {
		t.Errorf("the other archive: %+v, %v; want 100 messages", st, err)
	}
	if n, err := s.ExpireUserArchive(ctx, users[0], cut, 0); n != 0 || err != nil {
		t.Errorf("ExpireUserArchive again = %d, %v; want 0", n, err)
	}
}

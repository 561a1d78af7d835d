package bbolt

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

// txid returns the ID of the latest committed write transaction.
func txid(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error {
		id = tx.ID()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestTouchLoginWrites checks that TouchLogin commits a write only when the
// day changes.
func TestTouchLoginWrites(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "kiez.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const jid = "alice@example.org"
	if err := s.CreateAccount(ctx, storage.Account{JID: jid}); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2024, 4, 1, 8, 0, 0, 0, time.UTC)
	steps := []struct {
		login  time.Time
		writes int
	}{
		{day, 1},
		{day.Add(time.Hour), 0},
		{day.Add(15 * time.Hour), 0},
		{day.AddDate(0, 0, 1), 1},
		{day.AddDate(0, 0, 1).Add(time.Minute), 0},
		{day, 1},
	}
	for i, st := range steps {
		before := txid(t, s)
		if err := s.TouchLogin(ctx, jid, st.login); err != nil {
			t.Fatalf("step %d: TouchLogin: %v", i, err)
		}
		if got := txid(t, s) - before; got != st.writes {
			t.Errorf("step %d: TouchLogin(%v) committed %d writes, want %d", i, st.login, got, st.writes)
		}
	}
}

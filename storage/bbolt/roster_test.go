package bbolt_test

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
)

// TestRosterDeleteLeavesNoTrace checks that after DeleteRoster no bucket,
// key or value in the file names the deleted user or holds their roster
// (items and removals), while another user's roster stays.
func TestRosterDeleteLeavesNoTrace(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	const (
		gone = "deletedalice@example.org"
		kept = "keptbob@example.org"
	)
	for _, user := range []string{gone, kept} {
		for _, c := range []string{"contactof-" + user, "removedof-" + user} {
			it := storage.RosterItem{JID: c, Name: "name of " + user, Groups: []string{"group of " + user}}
			if _, err := s.SetRosterItem(ctx, user, it); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.DeleteRosterItem(ctx, user, "removedof-"+user); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRoster(ctx, gone); err != nil {
		t.Fatalf("DeleteRoster: %v", err)
	}
	mustClose(t, s)

	all := everything(t, path)
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"roster", true},
		{"deletedalice", false},
		{"keptbob", true},
		{"name of " + kept, true},
		{"removedof-" + kept, true},
	} {
		if got := containsAnywhere(all, tt.s); got != tt.want {
			t.Errorf("%q appears in the database: %v, want %v", tt.s, got, tt.want)
		}
	}
}

// TestRosterReopen checks that rosters and their versions survive closing
// and opening the file, including a file made before the roster bucket
// existed.
func TestRosterReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	const user = "alice@example.org"
	if items, ver, err := s.Roster(ctx, user); err != nil || items != nil || ver != "" {
		t.Fatalf("Roster before the first write = %v, %q, %v", items, ver, err)
	}
	if err := s.DeleteRoster(ctx, user); err != nil {
		t.Fatalf("DeleteRoster before the first write: %v", err)
	}
	v1, err := s.SetRosterItem(ctx, user, storage.RosterItem{JID: "carol@example.org", Name: "C"})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.DeleteRosterItem(ctx, user, "carol@example.org")
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	s = open(t, path)
	changes, cur, ok, err := s.RosterChangesSince(ctx, user, v1)
	if err != nil || !ok || cur != v2 || len(changes) != 1 || changes[0].Item.Subscription != storage.SubRemove || changes[0].Ver != cur {
		t.Fatalf("RosterChangesSince after reopen = %v, %q, %v, %v", changes, cur, ok, err)
	}
}

// TestRosterCorrupt checks that corrupt roster records give errors
// wrapping ErrCorrupt, never a panic, and that DeleteRoster still works.
func TestRosterCorrupt(t *testing.T) {
	const user = "alice@example.org"
	for _, tt := range []struct {
		name string
		key  []string // bucket path below the user's bucket, then the key
		val  []byte
	}{
		{"empty item", []string{"items", "carol@example.org"}, []byte{}},
		{"item version", []string{"items", "carol@example.org"}, []byte{9, 1, 0, 0, 0, 0}},
		{"item subscription", []string{"items", "carol@example.org"}, []byte{1, 1, 7, 0, 0, 0}},
		{"item flags", []string{"items", "carol@example.org"}, []byte{1, 1, 0, 0x80, 0, 0}},
		{"item truncated name", []string{"items", "carol@example.org"}, []byte{1, 1, 0, 0, 5, 'a'}},
		{"item group count", []string{"items", "carol@example.org"}, []byte{1, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"item trailing", []string{"items", "carol@example.org"}, []byte{1, 1, 0, 0, 0, 0, 0}},
		{"meta", []string{"meta"}, []byte{1, 0xff}},
		{"meta gen", []string{"meta"}, []byte{1, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 0, 0}},
		{"tombstone", []string{"removed", "dave@example.org"}, []byte{2, 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "kiez.db")
			s := open(t, path)
			v0, err := s.SetRosterItem(ctx, user, storage.RosterItem{JID: "carol@example.org"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.SetRosterItem(ctx, user, storage.RosterItem{JID: "eve@example.org"}); err != nil {
				t.Fatal(err)
			}
			mustClose(t, s)
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte("roster")).Bucket([]byte(user))
				for _, name := range tt.key[:len(tt.key)-1] {
					b = b.Bucket([]byte(name))
				}
				return b.Put([]byte(tt.key[len(tt.key)-1]), tt.val)
			})
			s = open(t, path)
			_, _, err1 := s.Roster(ctx, user)
			_, _, _, err2 := s.RosterChangesSince(ctx, user, v0)
			_, err3 := s.DeleteRosterItem(ctx, user, "carol@example.org")
			if err1 == nil && err2 == nil && err3 == nil {
				t.Fatal("no method reported the corrupt record")
			}
			for _, err := range []error{err1, err2, err3} {
				if err != nil && !errors.Is(err, bbolt.ErrCorrupt) {
					t.Errorf("error %v does not wrap ErrCorrupt", err)
				}
			}
			if err := s.DeleteRoster(ctx, user); err != nil {
				t.Fatalf("DeleteRoster of a corrupt roster: %v", err)
			}
			if items, ver, err := s.Roster(ctx, user); err != nil || len(items) != 0 || ver != "" {
				t.Errorf("Roster after DeleteRoster = %v, %q, %v", items, ver, err)
			}
		})
	}
}

package bbolt_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/bbolt/bbolttest"
	"github.com/kiez-im/kiez/storage/storagetest"
)

func TestStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) any {
		return open(t, filepath.Join(t.TempDir(), "kiez.db"))
	})
}

// open opens a Store at path and closes it when the test ends.
func open(t *testing.T, path string) *bbolt.Store {
	t.Helper()
	s, err := bbolt.Open(path, bbolt.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustClose(t *testing.T, s *bbolt.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func testAccount(jid string) storage.Account {
	return storage.Account{
		JID: jid,
		Keys: map[storage.Hash]storage.SCRAMKeys{
			storage.SHA1:   {Salt: []byte("salt-1"), Iterations: 4096, StoredKey: bytes.Repeat([]byte{1}, 20), ServerKey: bytes.Repeat([]byte{2}, 20)},
			storage.SHA256: {Salt: []byte("salt-256"), Iterations: 4096, StoredKey: bytes.Repeat([]byte{3}, 32), ServerKey: bytes.Repeat([]byte{4}, 32)},
			storage.SHA512: {Salt: []byte("salt-512"), Iterations: 10000, StoredKey: bytes.Repeat([]byte{5}, 64), ServerKey: bytes.Repeat([]byte{6}, 64)},
		},
		Created: time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC),
	}
}

// rawUpdate runs fn in a write transaction on the database file at path,
// opened with bolt itself. No Store may have the file open.
func rawUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatalf("raw update: %v", err)
	}
}

// everything returns every bucket name, key and value in the database
// file at path (see bbolttest.Everything).
func everything(t *testing.T, path string) [][]byte { return bbolttest.Everything(t, path) }

func containsAnywhere(all [][]byte, s string) bool { return bbolttest.Contains(all, s) }

// TestDeleteLeavesNoTrace checks that deleting an account removes every
// bucket, key and value that names the user, in every store.
func TestDeleteLeavesNoTrace(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	const (
		gone = "deletedalice@example.org"
		kept = "keptbob@example.org"
	)
	for _, jid := range []string{gone, kept} {
		if err := s.CreateAccount(ctx, testAccount(jid)); err != nil {
			t.Fatalf("CreateAccount(%q): %v", jid, err)
		}
		if err := s.TouchLogin(ctx, jid, time.Now()); err != nil {
			t.Fatalf("TouchLogin(%q): %v", jid, err)
		}
	}
	if err := s.DeleteAccount(ctx, gone); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	mustClose(t, s)

	all := everything(t, path)
	if len(all) == 0 {
		t.Fatal("walk found nothing")
	}
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{gone, false},
		{"deletedalice", false},
		{kept, true},
		{"keptbob", true},
	} {
		if got := containsAnywhere(all, tt.s); got != tt.want {
			t.Errorf("%q appears in the database: %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiez.db")
	first := open(t, path)

	second, err := bbolt.Open(path, bbolt.Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, bbolt.ErrLocked) {
		if second != nil {
			_ = second.Close()
		}
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if second != nil {
		t.Error("second Open returned a Store along with its error")
	}

	// The first Store still works, and once closed the file opens again.
	if err := first.CreateAccount(t.Context(), testAccount("alice@example.org")); err != nil {
		t.Fatalf("CreateAccount on first: %v", err)
	}
	mustClose(t, first)
	third := open(t, path)
	if _, err := third.Account(t.Context(), "alice@example.org"); err != nil {
		t.Errorf("Account after reopen: %v", err)
	}
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	// A directory that does not exist yet: Open must create it.
	path := filepath.Join(t.TempDir(), "new", "dir", "kiez.db")
	s := open(t, path)
	want := testAccount("alice@example.org")
	if err := s.CreateAccount(ctx, want); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	if err := s.CreateAccount(ctx, testAccount("bob@example.net")); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	want.Keys = map[storage.Hash]storage.SCRAMKeys{storage.SHA256: {Salt: []byte("new"), Iterations: 8192, StoredKey: []byte("sk"), ServerKey: []byte("svk")}}
	if err := s.SetKeys(ctx, want.JID, want.Keys); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	want.LastLogin = time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)
	if err := s.TouchLogin(ctx, want.JID, want.LastLogin.Add(13*time.Hour)); err != nil {
		t.Fatalf("TouchLogin: %v", err)
	}
	mustClose(t, s)

	s = open(t, path)
	got, err := s.Account(ctx, want.JID)
	if err != nil {
		t.Fatalf("Account after reopen: %v", err)
	}
	k := got.Keys[storage.SHA256]
	if len(got.Keys) != 1 || string(k.Salt) != "new" || k.Iterations != 8192 ||
		string(k.StoredKey) != "sk" || string(k.ServerKey) != "svk" {
		t.Errorf("keys after reopen = %+v, want %+v", got.Keys, want.Keys)
	}
	if !got.Created.Equal(want.Created) || !got.LastLogin.Equal(want.LastLogin) {
		t.Errorf("days after reopen = %v, %v; want %v, %v", got.Created, got.LastLogin, want.Created, want.LastLogin)
	}
	jids, err := s.Accounts(ctx, "")
	if err != nil {
		t.Fatalf("Accounts: %v", err)
	}
	if w := []string{"alice@example.org", "bob@example.net"}; !slices.Equal(jids, w) {
		t.Errorf("Accounts after reopen = %q, want %q", jids, w)
	}
}

func TestCorruptRecord(t *testing.T) {
	const jid = "alice@example.org"
	// A valid record, taken from a real store, to cut and extend.
	var valid []byte
	{
		path := filepath.Join(t.TempDir(), "kiez.db")
		s := open(t, path)
		if err := s.CreateAccount(t.Context(), testAccount(jid)); err != nil {
			t.Fatalf("CreateAccount: %v", err)
		}
		mustClose(t, s)
		rawUpdate(t, path, func(tx *bolt.Tx) error {
			valid = bytes.Clone(tx.Bucket([]byte("accounts")).Bucket([]byte(jid)).Get([]byte("account")))
			return nil
		})
		if len(valid) == 0 {
			t.Fatal("no record found where the layout puts it")
		}
	}

	tests := []struct {
		name   string
		mangle func(b *bolt.Bucket) error // b is the accounts bucket
	}{
		{"garbage", putRecord(jid, []byte("this is not an account record"))},
		{"empty", putRecord(jid, []byte{})},
		{"version", putRecord(jid, append([]byte{99}, valid[1:]...))},
		{"truncated", putRecord(jid, valid[:len(valid)/2])},
		{"trailing", putRecord(jid, append(bytes.Clone(valid), 0))},
		{"huge length", putRecord(jid, []byte{1, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})},
		{"record missing", func(b *bolt.Bucket) error {
			return b.Bucket([]byte(jid)).Delete([]byte("account"))
		}},
		{"value not bucket", func(b *bolt.Bucket) error {
			if err := b.DeleteBucket([]byte(jid)); err != nil {
				return err
			}
			return b.Put([]byte(jid), valid)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "kiez.db")
			s := open(t, path)
			for _, j := range []string{jid, "bob@example.org"} {
				if err := s.CreateAccount(ctx, testAccount(j)); err != nil {
					t.Fatalf("CreateAccount: %v", err)
				}
			}
			mustClose(t, s)
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return tt.mangle(tx.Bucket([]byte("accounts")))
			})
			s = open(t, path)

			if _, err := s.Account(ctx, jid); !errors.Is(err, bbolt.ErrCorrupt) || errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Account = %v, want ErrCorrupt", err)
			}
			if err := s.TouchLogin(ctx, jid, time.Now()); !errors.Is(err, bbolt.ErrCorrupt) {
				t.Errorf("TouchLogin = %v, want ErrCorrupt", err)
			}
			if err := s.SetKeys(ctx, jid, testAccount(jid).Keys); !errors.Is(err, bbolt.ErrCorrupt) {
				t.Errorf("SetKeys = %v, want ErrCorrupt", err)
			}
			if err := s.CreateAccount(ctx, testAccount(jid)); err == nil {
				t.Error("CreateAccount over a corrupt record succeeded")
			}
			// The damage stays with the one account.
			if _, err := s.Account(ctx, "bob@example.org"); err != nil {
				t.Errorf("Account of the other user: %v", err)
			}
		})
	}
}

// putRecord returns a mangle function that stores rec as jid's record.
func putRecord(jid string, rec []byte) func(b *bolt.Bucket) error {
	return func(b *bolt.Bucket) error {
		return b.Bucket([]byte(jid)).Put([]byte("account"), rec)
	}
}

func TestCorruptRecordDeletable(t *testing.T) {
	ctx := t.Context()
	const jid = "alice@example.org"
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	if err := s.CreateAccount(ctx, testAccount(jid)); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	mustClose(t, s)
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return putRecord(jid, []byte{0xde, 0xad})(tx.Bucket([]byte("accounts")))
	})
	s = open(t, path)
	if err := s.DeleteAccount(ctx, jid); err != nil {
		t.Fatalf("DeleteAccount of a corrupt account: %v", err)
	}
	if _, err := s.Account(ctx, jid); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Account after delete = %v, want ErrNotFound", err)
	}
}

package bbolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

// A backup taken while archive appends wait in the log holds them: the
// copy opens as a Store with every acknowledged message, and passes
// Verify.
func TestBackupHoldsTheLog(t *testing.T) {
	dir := t.TempDir()
	s := openWALStore(t, filepath.Join(dir, "kiez.db"))
	var want []storage.ArchivedMessage
	for i := range 5 {
		want = append(want, appendMsg(t, s, "alice@example.org", i))
	}
	if !s.wal.pendingFor("alice@example.org") {
		t.Fatal("the appends were applied before the backup: the test tests nothing")
	}
	var buf bytes.Buffer
	n, err := s.Backup(t.Context(), &buf)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("Backup returned %d, wrote %d bytes", n, buf.Len())
	}
	// Appends after the backup are not in it.
	appendMsg(t, s, "alice@example.org", 99)

	copyPath := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(copyPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Verify(copyPath); err != nil {
		t.Fatalf("Verify(backup): %v", err)
	}
	c, err := Open(copyPath, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkArchive(t, c, "alice@example.org", want)
}

// A backup stops when its context ends.
func TestBackupCancelled(t *testing.T) {
	s := openWALStore(t, filepath.Join(t.TempDir(), "kiez.db"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Backup(ctx, new(bytes.Buffer)); err == nil {
		t.Error("Backup with a cancelled context succeeded")
	}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	st, err := Open(good, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// A bbolt file of some other program.
	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err })
	db.Close()
	text := filepath.Join(dir, "text.db")
	os.WriteFile(text, []byte(strings.Repeat("not a database\n", 1000)), 0o600)
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)

	if err := Verify(good); err != nil {
		t.Errorf("Verify(a new database) = %v", err)
	}
	for _, p := range []string{other, text, empty} {
		if err := Verify(p); !errors.Is(err, ErrNotDatabase) {
			t.Errorf("Verify(%s) = %v, want ErrNotDatabase", filepath.Base(p), err)
		}
	}
	if err := Verify(filepath.Join(dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Verify(missing) = %v, want ErrNotExist", err)
	}
	// Verify changes nothing: the text file is as it was.
	if b, _ := os.ReadFile(text); !bytes.HasPrefix(b, []byte("not a database")) {
		t.Error("Verify changed the file")
	}
}

// Compact shrinks a database after deletions, keeps what is live, and
// removes deleted bytes from the file; it refuses a database in use.
func TestCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiez.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("DeletedMarker "), 1000)
	for i := range 200 {
		user := fmt.Sprintf("u%d@example.org", i)
		if err := s.Put(t.Context(), user, "blob", big); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(t.Context(), "keep@example.org", "blob", []byte("KeptValue")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Compact(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Errorf("Compact of a database in use = %v, want ErrLocked", err)
	}
	for i := range 200 {
		if err := s.DeleteUserData(t.Context(), fmt.Sprintf("u%d@example.org", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, after, err := Compact(path, Options{})
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if after >= before || fi.Size() != after {
		t.Errorf("Compact: %d bytes before, %d after, file %d", before, after, fi.Size())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("compacted file mode %v", fi.Mode().Perm())
	}
	if raw, _ := os.ReadFile(path); bytes.Contains(raw, []byte("DeletedMarker")) {
		t.Error("deleted bytes are still in the compacted file")
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Errorf("the temporary file is left: %v", err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Get(t.Context(), "keep@example.org", "blob"); err != nil || string(v) != "KeptValue" {
		t.Errorf("after Compact: %q, %v", v, err)
	}
}

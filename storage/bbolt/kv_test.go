package bbolt_test

import (
	"path/filepath"
	"testing"
)

// TestKVDeleteUserLeavesNoTrace checks that after KV.DeleteUser no bucket,
// key or value in the file names the deleted user or holds their data,
// while another user's data stays.
func TestKVDeleteUserLeavesNoTrace(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	const (
		gone = "deletedalice@example.org"
		kept = "keptbob@example.org"
	)
	for _, user := range []string{gone, kept} {
		for _, key := range []string{"vcard", "private:{storage:bookmarks}storage"} {
			if err := s.Put(ctx, user, key, []byte("secret of "+user)); err != nil {
				t.Fatalf("Put(%q, %q): %v", user, key, err)
			}
		}
	}
	if err := s.DeleteUser(ctx, gone); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	mustClose(t, s)

	all := everything(t, path)
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"kv", true},
		{"deletedalice", false},
		{"secret of " + gone, false},
		{"keptbob", true},
		{"secret of " + kept, true},
	} {
		if got := containsAnywhere(all, tt.s); got != tt.want {
			t.Errorf("%q appears in the database: %v, want %v", tt.s, got, tt.want)
		}
	}
}

// TestKVDeleteLastKeyDropsBucket checks that deleting a user's keys one by
// one leaves no bucket named after the user either.
func TestKVDeleteLastKeyDropsBucket(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	const user = "deletedalice@example.org"
	for _, key := range []string{"a", "b"} {
		if err := s.Put(ctx, user, key, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"a", "b"} {
		if err := s.Delete(ctx, user, key); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, s)
	if containsAnywhere(everything(t, path), "deletedalice") {
		t.Error("a user without keys still has a bucket")
	}
}

// TestKVReopen checks that KV data survives closing and opening the file,
// including a file created before the kv bucket existed.
func TestKVReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	// A read and a delete before anything was stored must work without
	// the bucket.
	if keys, err := s.Keys(ctx, "alice@example.org"); err != nil || keys != nil {
		t.Fatalf("Keys before the first Put = %q, %v", keys, err)
	}
	if err := s.DeleteUser(ctx, "alice@example.org"); err != nil {
		t.Fatalf("DeleteUser before the first Put: %v", err)
	}
	if err := s.Put(ctx, "alice@example.org", "vcard", []byte("<vCard/>")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	s = open(t, path)
	v, err := s.Get(ctx, "alice@example.org", "vcard")
	if err != nil || string(v) != "<vCard/>" {
		t.Fatalf("Get after reopen = %q, %v", v, err)
	}
}

package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/kiez-im/kiez/storage"
)

// TestKV checks an implementation of storage.KV. newStore must return a
// fresh, empty store each time it is called; it may use t to register
// cleanup. Every subtest gets its own store.
func TestKV(t *testing.T, newStore func(t *testing.T) storage.KV) {
	tests := []struct {
		name string
		test func(t *testing.T, s storage.KV)
	}{
		{"RoundTrip", testKVRoundTrip},
		{"Copies", testKVCopies},
		{"NotFound", testKVNotFound},
		{"Overwrite", testKVOverwrite},
		{"Delete", testKVDelete},
		{"KeysSorted", testKVKeysSorted},
		{"DeleteUser", testKVDeleteUser},
		{"Invalid", testKVInvalid},
		{"Concurrent", testKVConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, newStore(t))
		})
	}
}

func mustPut(t *testing.T, s storage.KV, user, key string, value []byte) {
	t.Helper()
	if err := s.Put(t.Context(), user, key, value); err != nil {
		t.Fatalf("Put(%q, %q): %v", user, key, err)
	}
}

// checkValue fails unless user's key holds want.
func checkValue(t *testing.T, s storage.KV, user, key string, want []byte) {
	t.Helper()
	got, err := s.Get(t.Context(), user, key)
	if err != nil {
		t.Errorf("Get(%q, %q): %v", user, key, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Get(%q, %q) = %s, want %s", user, key, abbrev(got), abbrev(want))
	}
}

// checkGone fails unless user's key is absent.
func checkGone(t *testing.T, s storage.KV, user, key string) {
	t.Helper()
	if v, err := s.Get(t.Context(), user, key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(%q, %q) = %s, %v; want ErrNotFound", user, key, abbrev(v), err)
	}
}

// checkKeys fails unless user has exactly want (sorted; nil for none).
func checkKeys(t *testing.T, s storage.KV, user string, want []string) {
	t.Helper()
	got, err := s.Keys(t.Context(), user)
	if err != nil {
		t.Errorf("Keys(%q): %v", user, err)
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("Keys(%q) = %q, want %q", user, got, want)
	}
}

func abbrev(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q... (%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// big returns n bytes of a pattern that a truncated or shifted copy
// would not match.
func big(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func testKVRoundTrip(t *testing.T, s storage.KV) {
	const user = "alice@example.org"
	values := map[string][]byte{
		"vcard":                              []byte(`<vCard xmlns="vcard-temp"><FN>Alice</FN></vCard>`),
		"private:{storage:bookmarks}storage": []byte(`<storage xmlns="storage:bookmarks"/>`),
		"binary":                             {0, 1, 2, 0xff, 0, 0xfe},
		"empty":                              {},
		"big":                                big(300 << 10),
		"ключ with spaces/and:colons":        []byte("ünïcode"),
	}
	for k, v := range values {
		mustPut(t, s, user, k, v)
	}
	for k, v := range values {
		checkValue(t, s, user, k, v)
	}
	// An empty value is stored, not the same as absent, and comes back
	// as an empty (non-nil is not required) slice.
	if v, err := s.Get(t.Context(), user, "empty"); err != nil || len(v) != 0 {
		t.Errorf("Get(empty) = %q, %v", v, err)
	}
	// A nil value is stored as an empty one.
	mustPut(t, s, user, "nil", nil)
	checkValue(t, s, user, "nil", nil)
}

func testKVCopies(t *testing.T, s storage.KV) {
	const user, key = "alice@example.org", "k"
	in := []byte("original")
	mustPut(t, s, user, key, in)
	copy(in, "SCRIBBLE")
	checkValue(t, s, user, key, []byte("original"))

	out, err := s.Get(t.Context(), user, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	copy(out, "SCRIBBLE")
	_ = append(out[:2], "appended past the end"...)
	checkValue(t, s, user, key, []byte("original"))

	a, _ := s.Get(t.Context(), user, key)
	b, _ := s.Get(t.Context(), user, key)
	if len(a) > 0 {
		a[0] ^= 0xff
	}
	if string(b) != "original" {
		t.Errorf("second Get changed through the first: %q", b)
	}
}

func testKVNotFound(t *testing.T, s storage.KV) {
	ctx := t.Context()
	mustPut(t, s, "alice@example.org", "vcard", []byte("v"))
	for _, tt := range []struct{ user, key string }{
		{"alice@example.org", "other"},
		{"alice@example.org", "vcar"},
		{"alice@example.org", "vcard2"},
		{"alice@example.org", ""},
		{"bob@example.org", "vcard"},
		{"alice@example.net", "vcard"},
		{"alice", "vcard"},
		{"", "vcard"},
	} {
		checkGone(t, s, tt.user, tt.key)
		if err := s.Delete(ctx, tt.user, tt.key); err != nil {
			t.Errorf("Delete(%q, %q) of an absent key = %v, want nil", tt.user, tt.key, err)
		}
	}
	for _, user := range []string{"bob@example.org", "", "example.org"} {
		checkKeys(t, s, user, nil)
		if err := s.DeleteUser(ctx, user); err != nil {
			t.Errorf("DeleteUser(%q) of a user without keys = %v, want nil", user, err)
		}
	}
	// None of that may have removed or created anything.
	checkKeys(t, s, "alice@example.org", []string{"vcard"})
	checkValue(t, s, "alice@example.org", "vcard", []byte("v"))
	checkKeys(t, s, "bob@example.org", nil)
}

func testKVOverwrite(t *testing.T, s storage.KV) {
	const user = "alice@example.org"
	mustPut(t, s, user, "k", big(10<<10))
	mustPut(t, s, user, "k", []byte("short"))
	checkValue(t, s, user, "k", []byte("short"))
	mustPut(t, s, user, "k", big(20<<10))
	checkValue(t, s, user, "k", big(20<<10))
	mustPut(t, s, user, "k", []byte{})
	checkValue(t, s, user, "k", []byte{})
	checkKeys(t, s, user, []string{"k"})
}

func testKVDelete(t *testing.T, s storage.KV) {
	ctx := t.Context()
	const user = "alice@example.org"
	for _, k := range []string{"a", "b", "c"} {
		mustPut(t, s, user, k, []byte("value of "+k))
	}
	mustPut(t, s, "bob@example.org", "b", []byte("bob's b"))
	if err := s.Delete(ctx, user, "b"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkGone(t, s, user, "b")
	checkValue(t, s, user, "a", []byte("value of a"))
	checkValue(t, s, user, "c", []byte("value of c"))
	checkKeys(t, s, user, []string{"a", "c"})
	checkValue(t, s, "bob@example.org", "b", []byte("bob's b"))
	if err := s.Delete(ctx, user, "b"); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}

	// Deleting every key leaves a user with none, who can store again.
	for _, k := range []string{"a", "c"} {
		if err := s.Delete(ctx, user, k); err != nil {
			t.Fatalf("Delete(%q): %v", k, err)
		}
	}
	checkKeys(t, s, user, nil)
	mustPut(t, s, user, "b", []byte("new b"))
	checkValue(t, s, user, "b", []byte("new b"))
	checkKeys(t, s, user, []string{"b"})
}

func testKVKeysSorted(t *testing.T, s storage.KV) {
	const user = "alice@example.org"
	keys := []string{
		"vcard",
		"private:{storage:bookmarks}storage",
		"private:{urn:a}x",
		"private:",
		"Z",
		"a",
		"a:b",
		"ä",
		"0",
		"private:{storage:rosternotes}storage",
	}
	for i, k := range keys {
		mustPut(t, s, user, k, []byte{byte(i)})
	}
	// Another user's keys are not listed.
	mustPut(t, s, "alice@example.org.evil", "zz", nil)
	mustPut(t, s, "alic@example.org", "zz", nil)
	want := slices.Clone(keys)
	slices.Sort(want)
	checkKeys(t, s, user, want)
}

func testKVDeleteUser(t *testing.T, s storage.KV) {
	ctx := t.Context()
	const gone = "alice@example.org"
	// Users whose JIDs share a prefix or suffix with the deleted one.
	others := []string{"alice@example.net", "alice@example.org.evil", "malice@example.org", "bob@example.org"}
	for _, u := range append([]string{gone}, others...) {
		mustPut(t, s, u, "vcard", []byte("vcard of "+u))
		mustPut(t, s, u, "private:{urn:x}x", []byte("private of "+u))
	}
	if err := s.DeleteUser(ctx, gone); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	checkKeys(t, s, gone, nil)
	checkGone(t, s, gone, "vcard")
	checkGone(t, s, gone, "private:{urn:x}x")
	for _, u := range others {
		checkKeys(t, s, u, []string{"private:{urn:x}x", "vcard"})
		checkValue(t, s, u, "vcard", []byte("vcard of "+u))
	}
	if err := s.DeleteUser(ctx, gone); err != nil {
		t.Errorf("second DeleteUser = %v, want nil", err)
	}
	// A new account under the same JID starts clean.
	mustPut(t, s, gone, "new", []byte("n"))
	checkKeys(t, s, gone, []string{"new"})
}

func testKVInvalid(t *testing.T, s storage.KV) {
	ctx := t.Context()
	if err := s.Put(ctx, "", "k", []byte("v")); err == nil {
		t.Error("Put with an empty user succeeded")
	}
	if err := s.Put(ctx, "alice@example.org", "", []byte("v")); err == nil {
		t.Error("Put with an empty key succeeded")
	}
	checkKeys(t, s, "alice@example.org", nil)
	checkKeys(t, s, "", nil)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(cancelled, "alice@example.org", "k", []byte("v")); err == nil {
		t.Error("Put with a cancelled context succeeded")
	}
	checkKeys(t, s, "alice@example.org", nil)
	if _, err := s.Get(cancelled, "alice@example.org", "k"); err == nil {
		t.Error("Get with a cancelled context succeeded")
	}
}

func testKVConcurrent(t *testing.T, s storage.KV) {
	ctx := t.Context()
	const (
		workers = 8
		rounds  = 20
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			if err := kvWorker(ctx, s, w, rounds); err != nil {
				t.Errorf("worker %d: %v", w, err)
			}
		})
	}
	wg.Wait()

	var shared []string
	for w := range workers {
		user := fmt.Sprintf("w%d@example.org", w)
		checkKeys(t, s, user, []string{"kept"})
		checkValue(t, s, user, "kept", fmt.Appendf(nil, "%d", rounds-1))
		checkKeys(t, s, fmt.Sprintf("w%d-tmp@example.org", w), nil)
		shared = append(shared, fmt.Sprintf("w%d", w))
	}
	slices.Sort(shared)
	checkKeys(t, s, "shared@example.org", shared)
}

// kvWorker mixes every method on users of its own and writes its own key
// of a user shared by all workers.
func kvWorker(ctx context.Context, s storage.KV, w, rounds int) error {
	user := fmt.Sprintf("w%d@example.org", w)
	tmp := fmt.Sprintf("w%d-tmp@example.org", w)
	mine := fmt.Sprintf("w%d", w)
	for r := range rounds {
		v := fmt.Appendf(nil, "%d", r)
		for _, err := range []error{
			s.Put(ctx, user, "kept", v),
			s.Put(ctx, user, "tmp", v),
			s.Put(ctx, tmp, "a", v),
			s.Put(ctx, tmp, "b", v),
			s.Put(ctx, "shared@example.org", mine, v),
		} {
			if err != nil {
				return err
			}
		}
		got, err := s.Get(ctx, "shared@example.org", mine)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, v) {
			return fmt.Errorf("shared key = %q, want %q", got, v)
		}
		if _, err := s.Keys(ctx, "shared@example.org"); err != nil {
			return err
		}
		if err := s.Delete(ctx, user, "tmp"); err != nil {
			return err
		}
		if err := s.DeleteUser(ctx, tmp); err != nil {
			return err
		}
	}
	return nil
}

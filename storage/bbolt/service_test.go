package bbolt_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
)

// countAnywhere counts the names, keys and values in all that contain s.
func countAnywhere(all [][]byte, s string) int {
	n := 0
	for _, b := range all {
		if bytes.Contains(b, []byte(s)) {
			n++
		}
	}
	return n
}

// serviceIndexLen returns the number of entries in the expiry index of the
// file at path.
func serviceIndexLen(t *testing.T, path string) int {
	t.Helper()
	n := 0
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("service-expiry")); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n
}

// DeleteServiceNamespace, DeleteServiceValue, a put that replaces an
// expiry and ExpireServiceData leave no byte of the entries they removed in the file:
// no namespace, key or value, and no index entry.
func TestServiceDataRawWalk(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	future := time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)
	put := func(ns, key, value string, exp time.Time) {
		t.Helper()
		if err := s.PutServiceValue(ctx, ns, key, []byte(value), exp); err != nil {
			t.Fatalf("PutServiceValue(%q, %q): %v", ns, key, err)
		}
	}
	for i := range 5 {
		exp := time.Time{}
		if i%2 == 0 {
			exp = future.Add(time.Duration(i) * time.Hour)
		}
		put("muc:deletedroom.example.org", fmt.Sprintf("deletedkey-%d", i), fmt.Sprintf("deletedvalue-%d", i), exp)
		put("muc:keptroom.example.org", fmt.Sprintf("keptkey-%d", i), fmt.Sprintf("keptvalue-%d", i), exp)
		put("muc:expiredroom.example.org", fmt.Sprintf("expiredkey-%d", i), fmt.Sprintf("expiredvalue-%d", i), future)
		put("ipfilter", fmt.Sprintf("expiringaddr-%d", i), fmt.Sprintf("expiringban-%d", i), future.Add(-time.Duration(i)*time.Hour))
	}
	put("muc:deletedroom.example.org", "deletedkey-expired", "deletedvalue-expired", past)
	put("ipfilter", "keptaddr", "keptban", time.Time{})
	// An entry whose expiry is replaced, then dropped, keeps no index entry.
	put("ipfilter", "rebanned", "v", future)
	put("ipfilter", "rebanned", "v", future.Add(time.Hour))
	put("ipfilter", "rebanned", "v", time.Time{})
	// An entry deleted before its expiry keeps no index entry either.
	put("ipfilter", "unbannedaddr", "unbannedban", future)
	if err := s.DeleteServiceValue(ctx, "ipfilter", "unbannedaddr"); err != nil {
		t.Fatalf("DeleteServiceValue: %v", err)
	}
	if err := s.DeleteServiceNamespace(ctx, "muc:deletedroom.example.org"); err != nil {
		t.Fatalf("DeleteServiceNamespace: %v", err)
	}
	mustClose(t, s)

	all := everything(t, path)
	for _, tt := range []struct {
		s    string
		want int
	}{
		{"deletedroom", 0},
		{"deletedkey", 0},
		{"deletedvalue", 0},
		{"unbanned", 0},
		{"rebanned", 1}, // its key, and no index entry
		{"keptroom", 4}, // its bucket's name and its 3 index entries
		{"keptvalue-0", 1},
		{"expiringaddr-4", 2}, // its key and its index entry
	} {
		if got := countAnywhere(all, tt.s); got != tt.want {
			t.Errorf("%q appears %d times in the database, want %d", tt.s, got, tt.want)
		}
	}
	// Index entries: keptroom's 3 expiring keys, expiredroom's 5,
	// ipfilter's 5 expiringaddr.
	if n := serviceIndexLen(t, path); n != 13 {
		t.Errorf("expiry index has %d entries, want 13", n)
	}

	s = open(t, path)
	n, err := s.ExpireServiceData(ctx, future.Add(5*time.Hour), 0)
	if err != nil || n != 13 {
		t.Fatalf("ExpireServiceData = %d, %v; want 13", n, err)
	}
	mustClose(t, s)
	all = everything(t, path)
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"expiredroom", false}, // its bucket is dropped with its last entry
		{"expiredkey", false},
		{"expiredvalue", false},
		{"expiringaddr", false},
		{"expiringban", false},
		{"keptkey-1", true},
		{"keptkey-2", false},
		{"keptban", true},
		{"rebanned", true},
	} {
		if got := containsAnywhere(all, tt.s); got != tt.want {
			t.Errorf("after expiry, %q appears in the database: %v, want %v", tt.s, got, tt.want)
		}
	}
	if n := serviceIndexLen(t, path); n != 0 {
		t.Errorf("after expiry, the index has %d entries, want 0", n)
	}
}

// TestServiceDataCorrupt checks that a corrupt record gives errors wrapping
// ErrCorrupt, never a panic, and that deleting and expiring still work.
func TestServiceDataCorrupt(t *testing.T) {
	for _, tt := range []struct {
		name string
		rec  []byte
	}{
		{"empty", []byte{}},
		{"no expiry kind", []byte{1}},
		{"version", []byte{9, 0}},
		{"expiry kind", []byte{1, 2}},
		{"truncated expiry", []byte{1, 1, 0, 0}},
	} {
		rec := tt.rec
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "kiez.db")
			s := open(t, path)
			for _, k := range []string{"bad", "good"} {
				if err := s.PutServiceValue(ctx, "ns", k, []byte(k), time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
					t.Fatal(err)
				}
			}
			mustClose(t, s)
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("service")).Bucket([]byte("ns")).Put([]byte("bad"), rec)
			})
			s = open(t, path)
			if _, _, err := s.ServiceValue(ctx, "ns", "bad"); !errors.Is(err, bbolt.ErrCorrupt) {
				t.Errorf("ServiceValue = %v, want ErrCorrupt", err)
			}
			if _, err := s.ServiceKeys(ctx, "ns", storage.ServiceKeysQuery{Max: 10}); !errors.Is(err, bbolt.ErrCorrupt) {
				t.Errorf("ServiceKeys = %v, want ErrCorrupt", err)
			}
			if v, _, err := s.ServiceValue(ctx, "ns", "good"); err != nil || string(v) != "good" {
				t.Errorf("ServiceValue of the good entry = %q, %v", v, err)
			}
			// The sweep removes the corrupt entry with its index entry.
			if n, err := s.ExpireServiceData(ctx, time.Date(2401, 1, 1, 0, 0, 0, 0, time.UTC), 0); err != nil || n != 2 {
				t.Errorf("ExpireServiceData = %d, %v; want 2", n, err)
			}
			if err := s.PutServiceValue(ctx, "ns", "bad", []byte("new"), time.Time{}); err != nil {
				t.Fatal(err)
			}
			mustClose(t, s)
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("service")).Bucket([]byte("ns")).Put([]byte("bad"), rec)
			})
			s = open(t, path)
			if err := s.DeleteServiceValue(ctx, "ns", "bad"); err != nil {
				t.Errorf("DeleteServiceValue of a corrupt entry: %v", err)
			}
			if err := s.PutServiceValue(ctx, "ns", "bad2", []byte("x"), time.Time{}); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteServiceNamespace(ctx, "ns"); err != nil {
				t.Errorf("DeleteServiceNamespace: %v", err)
			}
		})
	}
}

// TestServiceDataReopen checks that entries and their expiries survive
// closing and opening the file, including a file made before the service
// buckets existed.
func TestServiceDataReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	if keys, err := s.ServiceKeys(ctx, "ns", storage.ServiceKeysQuery{Max: 1}); err != nil || keys != nil {
		t.Fatalf("ServiceKeys before the first put = %q, %v", keys, err)
	}
	if n, err := s.ExpireServiceData(ctx, time.Now(), 0); err != nil || n != 0 {
		t.Fatalf("ExpireServiceData before the first put = %d, %v", n, err)
	}
	for _, f := range []func() error{
		func() error { return s.DeleteServiceValue(ctx, "ns", "k") },
		func() error { return s.DeleteServiceNamespace(ctx, "ns") },
	} {
		if err := f(); err != nil {
			t.Fatalf("delete before the first put: %v", err)
		}
	}
	exp := time.Date(2400, 1, 1, 0, 0, 0, 123000, time.UTC)
	if err := s.PutServiceValue(ctx, "ns", "k", []byte("v"), exp); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	s = open(t, path)
	v, got, err := s.ServiceValue(ctx, "ns", "k")
	if err != nil || string(v) != "v" || !got.Equal(exp) {
		t.Fatalf("ServiceValue after reopen = %q, %v, %v", v, got, err)
	}
}

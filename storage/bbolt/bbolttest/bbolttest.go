// Package bbolttest reads a Kiez bbolt database file raw, for tests that
// prove what is (and is not) stored: after deleting an account or expiring
// data, no bucket name, key or value may still hold it.
package bbolttest

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Everything returns a copy of every bucket name, key and value in the
// database file at path, descending into nested buckets, and the
// contents of the archive log's segment files next to it, if any are
// left. No Store may have the file open.
func Everything(t testing.TB, path string) [][]byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	defer db.Close()
	var all [][]byte
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			all = append(all, bytes.Clone(k))
			if v == nil {
				if nested := b.Bucket(k); nested != nil {
					return walk(nested)
				}
			}
			all = append(all, bytes.Clone(v))
			return nil
		})
	}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			all = append(all, bytes.Clone(name))
			return walk(b)
		})
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	segments, _ := filepath.Glob(path + ".archive-wal/*")
	for _, f := range segments {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b)
	}
	return all
}

// Contains reports whether any of all holds s.
func Contains(all [][]byte, s string) bool {
	return slices.ContainsFunc(all, func(b []byte) bool { return bytes.Contains(b, []byte(s)) })
}

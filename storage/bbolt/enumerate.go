package bbolt

import (
	"bytes"
	"context"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Owners returns, sorted, every bare JID (a user's or a room's) that has
// data in a per-user store of the database: an account, a roster,
// key-value data, offline messages, an archive, PEP nodes or uploads.
// With ServiceNamespaces, Secrets and the MUC store's Rooms, it lists
// everything the database holds, for copying it elsewhere (kiezd
// migrate-storage); every kind is then read through its own interface.
func (s *Store) Owners(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, top := range []string{accountsBucket, rosterBucket, kvBucket, offlineBucket, archiveBucket, pepBucket} {
			nestedNames(tx.Bucket([]byte(top)), seen)
		}
		if up := tx.Bucket([]byte(uploadBucket)); up != nil {
			nestedNames(up.Bucket([]byte(uploadOwners)), seen)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sortedKeys(seen), nil
}

// ServiceNamespaces returns, sorted, the namespaces of storage.ServiceData
// that hold entries (expired ones included, until the expiry sweep).
func (s *Store) ServiceNamespaces(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	err := s.db.View(func(tx *bolt.Tx) error {
		nestedNames(tx.Bucket([]byte(serviceBucket)), seen)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sortedKeys(seen), nil
}

// Secrets returns every secret storage.Secrets keeps, by name.
func (s *Store) Secrets(ctx context.Context) (map[string][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[string][]byte)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(secretsBucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if v != nil {
				out[string(k)] = bytes.Clone(v)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// nestedNames adds the names of b's nested buckets to seen.
func nestedNames(b *bolt.Bucket, seen map[string]bool) {
	if b == nil {
		return
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			seen[string(k)] = true
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

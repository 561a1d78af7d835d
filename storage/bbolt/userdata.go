package bbolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

// secretsBucket holds the server-wide secrets of storage.Secrets, each
// under its name. It is created by the first Secret call.
const secretsBucket = "secrets"

var (
	_ storage.UserDataDeleter = (*Store)(nil)
	_ storage.Secrets         = (*Store)(nil)
)

// DeleteUserData implements storage.UserDataDeleter: it removes user's
// roster, key-value data, offline messages and archive (with its index
// entries, chunks and any record still in the archive log), through
// storage.DeleteEveryKind; this package's file walk checks that nothing
// is left.
func (s *Store) DeleteUserData(ctx context.Context, user string) error {
	if user == "" {
		return errors.New("bbolt: delete user data: empty user")
	}
	return storage.DeleteEveryKind(ctx, s, user)
}

// Secret implements storage.Secrets. Secrets are kept in the database
// file, so they survive restarts and travel with backups of the file.
func (s *Store) Secret(ctx context.Context, name string, size int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if name == "" || size <= 0 {
		return nil, fmt.Errorf("bbolt: secret %q of %d bytes: invalid", name, size)
	}
	var out []byte
	_ = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(secretsBucket)); b != nil {
			out = bytes.Clone(b.Get([]byte(name)))
		}
		return nil
	})
	if out == nil {
		fresh := make([]byte, size)
		rand.Read(fresh)
		err := s.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte(secretsBucket))
			if err != nil {
				return err
			}
			// Another caller may have created it meanwhile: keep theirs.
			if v := b.Get([]byte(name)); v != nil {
				out = bytes.Clone(v)
				return nil
			}
			out = fresh
			return b.Put([]byte(name), fresh)
		})
		if err != nil {
			return nil, fmt.Errorf("bbolt: secret %q: %w", name, err)
		}
	}
	if len(out) != size {
		return nil, fmt.Errorf("bbolt: secret %q has %d bytes, not %d: %w", name, len(out), size, ErrCorrupt)
	}
	return out, nil
}

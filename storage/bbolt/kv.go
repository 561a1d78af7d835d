package bbolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kiez-im/kiez/storage"
)

// kvBucket is the top-level bucket of storage.KV. It is created by the
// first Put, so files written before KV existed need no migration. Inside
// it each user has a nested bucket named by their bare JID, holding the
// values under their keys; a user's bucket is dropped when its last key
// is deleted, and by DeleteUser.
const kvBucket = "kv"

var _ storage.KV = (*Store)(nil)

// Get implements storage.KV.
func (s *Store) Get(ctx context.Context, user, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var v []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := kvUser(tx, user)
		if b == nil || key == "" {
			return storage.ErrNotFound
		}
		// A cursor tells an empty value from a missing key.
		k, val := b.Cursor().Seek([]byte(key))
		if !bytes.Equal(k, []byte(key)) || b.Bucket(k) != nil {
			return storage.ErrNotFound
		}
		v = append([]byte{}, val...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bbolt: kv %q of %q: %w", key, user, err)
	}
	return v, nil
}

// Put implements storage.KV.
func (s *Store) Put(ctx context.Context, user, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if user == "" || key == "" {
		return errors.New("bbolt: kv put: empty user or key")
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists([]byte(kvBucket))
		if err != nil {
			return err
		}
		b, err := top.CreateBucketIfNotExists([]byte(user))
		if err != nil {
			return err
		}
		// bbolt keeps a reference to value until the transaction ends;
		// the caller may change it only after Put returns, which is after.
		if value == nil {
			value = []byte{}
		}
		return b.Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("bbolt: kv put %q of %q: %w", key, user, err)
	}
	return nil
}

// Delete implements storage.KV. Deleting a user's last key drops the
// user's bucket.
func (s *Store) Delete(ctx context.Context, user, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" {
		return nil
	}
	// Look first in a read transaction: deleting what is not there costs
	// no write.
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		b := kvUser(tx, user)
		if b != nil {
			k, _ := b.Cursor().Seek([]byte(key))
			found = bytes.Equal(k, []byte(key))
		}
		return nil
	})
	if err != nil || !found {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := kvUser(tx, user)
		if b == nil {
			return nil
		}
		if err := b.Delete([]byte(key)); err != nil && !errors.Is(err, berrors.ErrIncompatibleValue) {
			return err
		}
		if k, _ := b.Cursor().First(); k == nil {
			return tx.Bucket([]byte(kvBucket)).DeleteBucket([]byte(user))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bbolt: kv delete %q of %q: %w", key, user, err)
	}
	return nil
}

// Keys implements storage.KV.
func (s *Store) Keys(ctx context.Context, user string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var keys []string
	err := s.db.View(func(tx *bolt.Tx) error {
		b := kvUser(tx, user)
		if b == nil {
			return nil
		}
		// Keys come sorted by bytes, which is how Go sorts strings.
		return b.ForEach(func(k, v []byte) error {
			if v != nil || b.Bucket(k) == nil {
				keys = append(keys, string(k))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bbolt: kv keys of %q: %w", user, err)
	}
	return keys, nil
}

// DeleteUser implements storage.KV. It drops the user's bucket in the kv
// store.
func (s *Store) DeleteUser(ctx context.Context, user string) error {
	if err := s.dropUser(ctx, kvBucket, user); err != nil {
		return fmt.Errorf("bbolt: kv delete user %q: %w", user, err)
	}
	return nil
}

func kvUser(tx *bolt.Tx, user string) *bolt.Bucket { return userBucket(tx, kvBucket, user) }

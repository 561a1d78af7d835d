package bbolt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kiez-im/kiez/storage"
)

var _ storage.Accounts = (*Store)(nil)

// CreateAccount implements storage.Accounts.
func (s *Store) CreateAccount(ctx context.Context, a storage.Account) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if a.JID == "" {
		return errors.New("bbolt: create account: empty JID")
	}
	rec, err := encodeAccount(a)
	if err != nil {
		return fmt.Errorf("bbolt: create account %q: %w", a.JID, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		top, err := accounts(tx)
		if err != nil {
			return err
		}
		if top.Bucket([]byte(a.JID)) != nil {
			return storage.ErrExists
		}
		// CreateBucket fails on a plain value under the same key.
		b, err := top.CreateBucket([]byte(a.JID))
		if err != nil {
			return err
		}
		return b.Put([]byte(accountKey), rec)
	})
	if err != nil {
		return fmt.Errorf("bbolt: create account %q: %w", a.JID, err)
	}
	return nil
}

// Account implements storage.Accounts.
func (s *Store) Account(ctx context.Context, jid string) (storage.Account, error) {
	if err := ctx.Err(); err != nil {
		return storage.Account{}, err
	}
	var a storage.Account
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		a, err = getAccount(tx, jid)
		return err
	})
	if err != nil {
		return storage.Account{}, fmt.Errorf("bbolt: account %q: %w", jid, err)
	}
	return a, nil
}

// SetKeys implements storage.Accounts.
func (s *Store) SetKeys(ctx context.Context, jid string, keys map[storage.Hash]storage.SCRAMKeys) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		a, err := getAccount(tx, jid)
		if err != nil {
			return err
		}
		a.Keys = keys
		return putAccount(tx, a)
	})
	if err != nil {
		return fmt.Errorf("bbolt: set keys of %q: %w", jid, err)
	}
	return nil
}

// SetRemoved implements storage.Accounts.
func (s *Store) SetRemoved(ctx context.Context, jid string, day time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !day.IsZero() {
		day = storage.Day(day)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		a, err := getAccount(tx, jid)
		if err != nil {
			return err
		}
		a.Removed = day
		return putAccount(tx, a)
	})
	if err != nil {
		return fmt.Errorf("bbolt: set removed of %q: %w", jid, err)
	}
	return nil
}

// TouchLogin implements storage.Accounts. It reads the stored day in a
// read-only transaction and opens a write transaction only if the day
// differs, so repeated logins on one day cost no writes.
func (s *Store) TouchLogin(ctx context.Context, jid string, day time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	day = storage.Day(day)
	var same bool
	err := s.db.View(func(tx *bolt.Tx) error {
		a, err := getAccount(tx, jid)
		same = err == nil && a.LastLogin.Equal(day)
		return err
	})
	if err == nil && !same {
		err = s.db.Update(func(tx *bolt.Tx) error {
			// Look again: another login or a deletion may have come
			// between the two transactions.
			a, err := getAccount(tx, jid)
			if err != nil || a.LastLogin.Equal(day) {
				return err
			}
			a.LastLogin = day
			return putAccount(tx, a)
		})
	}
	if err != nil {
		return fmt.Errorf("bbolt: touch login of %q: %w", jid, err)
	}
	return nil
}

// DeleteAccount implements storage.Accounts. It drops the user's bucket in
// the accounts store.
func (s *Store) DeleteAccount(ctx context.Context, jid string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		top, err := accounts(tx)
		if err != nil {
			return err
		}
		if jid == "" {
			return storage.ErrNotFound
		}
		err = top.DeleteBucket([]byte(jid))
		if errors.Is(err, berrors.ErrBucketNotFound) {
			return storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("bbolt: delete account %q: %w", jid, err)
	}
	return nil
}

// Accounts implements storage.Accounts.
func (s *Store) Accounts(ctx context.Context, domain string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var jids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		top, err := accounts(tx)
		if err != nil {
			return err
		}
		// Keys come sorted by bytes, which is how Go sorts strings.
		return top.ForEachBucket(func(k []byte) error {
			jid := string(k)
			if domain == "" || domainOf(jid) == domain {
				jids = append(jids, jid)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bbolt: list accounts: %w", err)
	}
	return jids, nil
}

// domainOf returns the domainpart of a bare JID.
func domainOf(jid string) string {
	return jid[strings.LastIndexByte(jid, '@')+1:]
}

// accounts returns the top-level bucket of the accounts store.
func accounts(tx *bolt.Tx) (*bolt.Bucket, error) {
	b := tx.Bucket([]byte(accountsBucket))
	if b == nil {
		return nil, fmt.Errorf("%w: bucket %q missing", ErrCorrupt, accountsBucket)
	}
	return b, nil
}

// getAccount reads and decodes the account of jid.
func getAccount(tx *bolt.Tx, jid string) (storage.Account, error) {
	top, err := accounts(tx)
	if err != nil {
		return storage.Account{}, err
	}
	if jid == "" {
		return storage.Account{}, storage.ErrNotFound
	}
	b := top.Bucket([]byte(jid))
	if b == nil {
		if top.Get([]byte(jid)) != nil {
			return storage.Account{}, fmt.Errorf("%w: a value where a bucket belongs", ErrCorrupt)
		}
		return storage.Account{}, storage.ErrNotFound
	}
	rec := b.Get([]byte(accountKey))
	if rec == nil {
		return storage.Account{}, fmt.Errorf("%w: record missing", ErrCorrupt)
	}
	return decodeAccount(jid, rec)
}

// putAccount encodes and stores a, which must exist.
func putAccount(tx *bolt.Tx, a storage.Account) error {
	rec, err := encodeAccount(a)
	if err != nil {
		return err
	}
	top, err := accounts(tx)
	if err != nil {
		return err
	}
	b := top.Bucket([]byte(a.JID))
	if b == nil {
		return storage.ErrNotFound
	}
	return b.Put([]byte(accountKey), rec)
}

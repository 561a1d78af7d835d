package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kiez-im/kiez/storage"
)

// CreateAccount implements storage.Accounts.
func (s *Store) CreateAccount(ctx context.Context, a storage.Account) error {
	if a.JID == "" {
		return errors.New("postgres: create account: empty JID")
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO accounts (jid, domain, created, last_login, removed) VALUES ($1, $2, $3, $4, $5)`,
			a.JID, domainOf(a.JID), storage.Day(a.Created), day(a.LastLogin), day(a.Removed)); err != nil {
			return err
		}
		return insertKeys(ctx, tx, a.JID, a.Keys)
	})
	if isUniqueViolation(err) {
		return fmt.Errorf("postgres: create account %q: %w", a.JID, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("postgres: create account %q: %w", a.JID, err)
	}
	return nil
}

func insertKeys(ctx context.Context, tx pgx.Tx, jid string, keys map[storage.Hash]storage.SCRAMKeys) error {
	b := &pgx.Batch{}
	for h, k := range keys {
		b.Queue(`INSERT INTO account_keys (jid, hash, salt, iterations, stored_key, server_key) VALUES ($1, $2, $3, $4, $5, $6)`,
			jid, string(h), nonNil(k.Salt), k.Iterations, nonNil(k.StoredKey), nonNil(k.ServerKey))
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

// Account implements storage.Accounts.
func (s *Store) Account(ctx context.Context, jid string) (storage.Account, error) {
	a := storage.Account{JID: jid, Keys: make(map[storage.Hash]storage.SCRAMKeys)}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var login, removed *time.Time
		if err := tx.QueryRow(ctx, `SELECT created, last_login, removed FROM accounts WHERE jid = $1`, jid).Scan(&a.Created, &login, &removed); err != nil {
			return err
		}
		if login != nil {
			a.LastLogin = login.UTC()
		}
		if removed != nil {
			a.Removed = removed.UTC()
		}
		a.Created = a.Created.UTC()
		rows, _ := tx.Query(ctx, `SELECT hash, salt, iterations, stored_key, server_key FROM account_keys WHERE jid = $1`, jid)
		var h string
		var k storage.SCRAMKeys
		_, err := pgx.ForEachRow(rows, []any{&h, &k.Salt, &k.Iterations, &k.StoredKey, &k.ServerKey}, func() error {
			a.Keys[storage.Hash(h)] = k
			k = storage.SCRAMKeys{}
			return nil
		})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Account{}, fmt.Errorf("postgres: account %q: %w", jid, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Account{}, fmt.Errorf("postgres: account %q: %w", jid, err)
	}
	return a, nil
}

// SetKeys implements storage.Accounts.
func (s *Store) SetKeys(ctx context.Context, jid string, keys map[storage.Hash]storage.SCRAMKeys) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE jid = $1 FOR UPDATE`, jid).Scan(&one); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM account_keys WHERE jid = $1`, jid); err != nil {
			return err
		}
		return insertKeys(ctx, tx, jid, keys)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: set keys of %q: %w", jid, storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("postgres: set keys of %q: %w", jid, err)
	}
	return nil
}

// TouchLogin implements storage.Accounts. The row is written only when
// the stored day differs.
func (s *Store) TouchLogin(ctx context.Context, jid string, d time.Time) error {
	d = storage.Day(d)
	var one int
	err := s.pool.QueryRow(ctx, `WITH u AS (
			UPDATE accounts SET last_login = $2 WHERE jid = $1 AND last_login IS DISTINCT FROM $2 RETURNING 1)
		SELECT 1 FROM accounts WHERE jid = $1`, jid, day(d)).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: touch login of %q: %w", jid, storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("postgres: touch login of %q: %w", jid, err)
	}
	return nil
}

// SetRemoved implements storage.Accounts.
func (s *Store) SetRemoved(ctx context.Context, jid string, d time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE accounts SET removed = $2 WHERE jid = $1`, jid, day(d))
	if err != nil {
		return fmt.Errorf("postgres: set removed of %q: %w", jid, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: set removed of %q: %w", jid, storage.ErrNotFound)
	}
	return nil
}

// DeleteAccount implements storage.Accounts; the keys go with it
// (ON DELETE CASCADE).
func (s *Store) DeleteAccount(ctx context.Context, jid string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM accounts WHERE jid = $1`, jid)
	if err != nil {
		return fmt.Errorf("postgres: delete account %q: %w", jid, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete account %q: %w", jid, storage.ErrNotFound)
	}
	return nil
}

// Accounts implements storage.Accounts.
func (s *Store) Accounts(ctx context.Context, domain string) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT jid FROM accounts WHERE $1 = '' OR domain = $1 ORDER BY jid COLLATE "C"`, domain)
	jids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: accounts: %w", err)
	}
	if len(jids) == 0 {
		return nil, nil
	}
	return jids, nil
}

// day returns d's UTC day, or nil (SQL NULL) for the zero Time.
func day(d time.Time) *time.Time {
	if d.IsZero() {
		return nil
	}
	d = storage.Day(d)
	return &d
}

func domainOf(jid string) string {
	return jid[strings.LastIndexByte(jid, '@')+1:]
}

// nonNil returns b, or an empty slice for nil (stored as ” rather than
// NULL).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

var _ storage.Accounts = (*Store)(nil)

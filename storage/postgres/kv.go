package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/kiez-im/kiez/storage"
)

// Get implements storage.KV.
func (s *Store) Get(ctx context.Context, user, key string) ([]byte, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM kv WHERE jid = $1 AND key = $2`, user, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: kv %q of %q: %w", key, user, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: kv %q of %q: %w", key, user, err)
	}
	return nonNil(v), nil
}

// Put implements storage.KV.
func (s *Store) Put(ctx context.Context, user, key string, value []byte) error {
	if user == "" || key == "" {
		return errors.New("postgres: kv put: empty user or key")
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO kv (jid, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (jid, key) DO UPDATE SET value = EXCLUDED.value`, user, key, nonNil(value)); err != nil {
		return fmt.Errorf("postgres: kv put %q of %q: %w", key, user, err)
	}
	return nil
}

// Delete implements storage.KV.
func (s *Store) Delete(ctx context.Context, user, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM kv WHERE jid = $1 AND key = $2`, user, key); err != nil {
		return fmt.Errorf("postgres: kv delete %q of %q: %w", key, user, err)
	}
	return nil
}

// Keys implements storage.KV.
func (s *Store) Keys(ctx context.Context, user string) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT key FROM kv WHERE jid = $1 ORDER BY key COLLATE "C"`, user)
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: kv keys of %q: %w", user, err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return keys, nil
}

// DeleteUser implements storage.KV.
func (s *Store) DeleteUser(ctx context.Context, user string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM kv WHERE jid = $1`, user); err != nil {
		return fmt.Errorf("postgres: kv delete user %q: %w", user, err)
	}
	return nil
}

var _ storage.KV = (*Store)(nil)

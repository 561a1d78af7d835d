package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kiez-im/kiez/storage"
)

var errNoNamespace = errors.New("postgres: service data: empty namespace")

// ServiceValue implements storage.ServiceData. Liveness is judged by this
// process's clock, as ExpireServiceData's t is.
func (s *Store) ServiceValue(ctx context.Context, namespace, key string) ([]byte, time.Time, error) {
	if namespace == "" {
		return nil, time.Time{}, errNoNamespace
	}
	var v []byte
	var exp *time.Time
	err := s.pool.QueryRow(ctx, `SELECT value, expires FROM service_data
		WHERE namespace = $1 AND key = $2 AND (expires IS NULL OR expires > $3)`, []byte(namespace), []byte(key), time.Now()).Scan(&v, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, time.Time{}, fmt.Errorf("postgres: service value %q in %q: %w", key, namespace, storage.ErrNotFound)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("postgres: service value %q in %q: %w", key, namespace, err)
	}
	var e time.Time
	if exp != nil {
		e = exp.UTC()
	}
	return nonNil(v), e, nil
}

// PutServiceValue implements storage.ServiceData.
func (s *Store) PutServiceValue(ctx context.Context, namespace, key string, value []byte, expires time.Time) error {
	if namespace == "" || key == "" {
		return fmt.Errorf("postgres: put service value %q in %q: empty namespace or key", key, namespace)
	}
	if y := expires.UTC().Year(); !expires.IsZero() && (y < 1 || y > 9999) {
		return fmt.Errorf("postgres: put service value %q in %q: expiry %v outside years 1 to 9999", key, namespace, expires)
	}
	var exp *time.Time
	if !expires.IsZero() {
		e := expires.Truncate(time.Microsecond).UTC()
		exp = &e
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO service_data (namespace, key, value, expires) VALUES ($1, $2, $3, $4)
		ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires`,
		[]byte(namespace), []byte(key), nonNil(value), exp); err != nil {
		return fmt.Errorf("postgres: put service value %q in %q: %w", key, namespace, err)
	}
	return nil
}

// DeleteServiceValue implements storage.ServiceData.
func (s *Store) DeleteServiceValue(ctx context.Context, namespace, key string) error {
	if namespace == "" {
		return errNoNamespace
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM service_data WHERE namespace = $1 AND key = $2`, []byte(namespace), []byte(key)); err != nil {
		return fmt.Errorf("postgres: delete service value %q in %q: %w", key, namespace, err)
	}
	return nil
}

// ServiceKeys implements storage.ServiceData.
func (s *Store) ServiceKeys(ctx context.Context, namespace string, q storage.ServiceKeysQuery) ([]string, error) {
	if namespace == "" {
		return nil, errNoNamespace
	}
	if q.Max < 1 {
		return nil, fmt.Errorf("postgres: service keys of %q: Max %d is less than 1", namespace, q.Max)
	}
	rows, _ := s.pool.Query(ctx, `SELECT key FROM service_data
		WHERE namespace = $1 AND key > $2 AND substr(key, 1, length($3::bytea)) = $3::bytea AND (expires IS NULL OR expires > $4)
		ORDER BY key LIMIT $5`, []byte(namespace), []byte(q.After), []byte(q.Prefix), time.Now(), q.Max)
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var k []byte
		err := r.Scan(&k)
		return string(k), err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: service keys of %q: %w", namespace, err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return keys, nil
}

// DeleteServiceNamespace implements storage.ServiceData.
func (s *Store) DeleteServiceNamespace(ctx context.Context, namespace string) error {
	if namespace == "" {
		return errNoNamespace
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM service_data WHERE namespace = $1`, []byte(namespace)); err != nil {
		return fmt.Errorf("postgres: delete service namespace %q: %w", namespace, err)
	}
	return nil
}

// ExpireServiceData implements storage.ServiceData: one statement deletes
// at most limit due entries, soonest first.
func (s *Store) ExpireServiceData(ctx context.Context, t time.Time, limit int) (int, error) {
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM service_data WHERE (namespace, key) IN (
		SELECT namespace, key FROM service_data WHERE expires <= $1
		ORDER BY expires, namespace, key LIMIT $2)`, t, lim)
	if err != nil {
		return 0, fmt.Errorf("postgres: expire service data: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

var _ storage.ServiceData = (*Store)(nil)

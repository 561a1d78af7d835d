package postgres

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kiez-im/kiez/storage"
)

// Tables returns the names of every table in the store's schema (the
// first of the search_path), Kiez's and any other there, sorted, without
// schema_migrations.
func (s *Store) Tables(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'`)
	if err != nil {
		return nil, fmt.Errorf("postgres: tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: tables: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// RowCounts returns the number of rows of each table of the schema (see
// Tables): all zero for a store nothing was written to, in a schema of
// its own.
func (s *Store) RowCounts(ctx context.Context) (map[string]int64, error) {
	names, err := s.Tables(ctx)
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int64, len(names))
	for _, n := range names {
		var c int64
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{n}.Sanitize()).Scan(&c); err != nil {
			return nil, fmt.Errorf("postgres: count %s: %w", n, err)
		}
		counts[n] = c
	}
	return counts, nil
}

// Truncate empties every table of Tables (so every table of the schema,
// Kiez's or not) in one statement, keeping the tables and
// schema_migrations: a store in a schema of its own is then as a fresh
// one.
func (s *Store) Truncate(ctx context.Context) error {
	names, err := s.Tables(ctx)
	if err != nil || len(names) == 0 {
		return err
	}
	ids := make([]string, len(names))
	for i, n := range names {
		ids[i] = pgx.Identifier{n}.Sanitize()
	}
	if _, err := s.pool.Exec(ctx, `TRUNCATE `+strings.Join(ids, ", ")); err != nil {
		return fmt.Errorf("postgres: truncate: %w", err)
	}
	return nil
}

// ImportSecret stores a secret of storage.Secrets with the value another
// store kept for it, so that what was derived from it stays valid after
// a move; a name that has a secret already fails with ErrExists.
func (s *Store) ImportSecret(ctx context.Context, name string, value []byte) error {
	if name == "" || len(value) == 0 {
		return fmt.Errorf("postgres: import secret %q: invalid", name)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, value)
	if err != nil {
		return fmt.Errorf("postgres: import secret %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: import secret %q: %w", name, storage.ErrExists)
	}
	return nil
}

package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/kiez-im/kiez/storage"
)

// DeleteUserData implements storage.UserDataDeleter: it deletes the
// user's data from every per-user store this backend implements.
// PostgreSQL marks deleted rows dead at once, so no query sees them
// again, but their bytes stay in the table's pages (and in WAL segments
// and backups) until VACUUM reclaims the space and the pages are reused.
func (s *Store) DeleteUserData(ctx context.Context, user string) error {
	return storage.DeleteEveryKind(ctx, s, user)
}

// Secret implements storage.Secrets. Concurrent first calls agree: the
// first insert wins and every caller reads the stored row.
func (s *Store) Secret(ctx context.Context, name string, size int) ([]byte, error) {
	if name == "" || size <= 0 {
		return nil, fmt.Errorf("postgres: secret %q of %d bytes: invalid", name, size)
	}
	b := make([]byte, size)
	rand.Read(b)
	var got []byte
	err := s.pool.QueryRow(ctx, `WITH ins AS (
			INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value)
		SELECT value FROM ins UNION ALL SELECT value FROM secrets WHERE name = $1 LIMIT 1`, name, b).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		// Another transaction inserted it after our snapshot; read again.
		err = s.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&got)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: secret %q: %w", name, err)
	}
	if len(got) != size {
		return nil, fmt.Errorf("postgres: secret %q has %d bytes, not %d", name, len(got), size)
	}
	return got, nil
}

// ReplaceArchived implements storage.ArchiveReplacer.
func (s *Store) ReplaceArchived(ctx context.Context, user string, id uint64, data []byte) error {
	if id > 1<<63-1 {
		return fmt.Errorf("postgres: replace archived message: %w", storage.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE archive SET data = $3 WHERE jid = $1 AND id = $2`, user, int64(id), nonNil(data))
	if err != nil {
		return fmt.Errorf("postgres: replace archived message: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: replace archived message: %w", storage.ErrNotFound)
	}
	return nil
}

var (
	_ storage.UserDataDeleter = (*Store)(nil)
	_ storage.Secrets         = (*Store)(nil)
	_ storage.ArchiveReplacer = (*Store)(nil)
)

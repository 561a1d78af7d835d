package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kiez-im/kiez/storage"
)

// errFull carries the queue length out of PushOffline's transaction.
type errFull int

func (e errFull) Error() string { return fmt.Sprintf("%d messages queued", int(e)) }

// PushOffline implements storage.Offline. Taking the next Seq locks the
// user's counter row, so the count checked against limit cannot change
// before the insert commits.
func (s *Store) PushOffline(ctx context.Context, user string, msg storage.OfflineMessage, limit int) error {
	if user == "" {
		return errors.New("postgres: push offline: empty user")
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var seq int64
		if err := tx.QueryRow(ctx, `INSERT INTO offline_seq (jid, seq) VALUES ($1, 1)
			ON CONFLICT (jid) DO UPDATE SET seq = offline_seq.seq + 1 RETURNING seq`, user).Scan(&seq); err != nil {
			return err
		}
		if limit > 0 {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM offline WHERE jid = $1`, user).Scan(&n); err != nil {
				return err
			}
			if n >= limit {
				return errFull(n)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO offline (jid, seq, stored, data) VALUES ($1, $2, $3, $4)`,
			user, seq, msg.Stored.Truncate(time.Second).UTC(), nonNil(msg.Data))
		return err
	})
	var full errFull
	if errors.As(err, &full) {
		return fmt.Errorf("postgres: push offline for %q: %v: %w", user, full, storage.ErrFull)
	}
	if err != nil {
		return fmt.Errorf("postgres: push offline for %q: %w", user, err)
	}
	return nil
}

// OfflineMessages implements storage.Offline.
func (s *Store) OfflineMessages(ctx context.Context, user string) ([]storage.OfflineMessage, error) {
	rows, _ := s.pool.Query(ctx, `SELECT seq, stored, data FROM offline WHERE jid = $1 ORDER BY seq`, user)
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.OfflineMessage, error) {
		var m storage.OfflineMessage
		err := r.Scan(&m.Seq, &m.Stored, &m.Data)
		m.Stored = m.Stored.UTC()
		m.Data = nonNil(m.Data)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: offline messages of %q: %w", user, err)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	return msgs, nil
}

// CountOffline implements storage.Offline.
func (s *Store) CountOffline(ctx context.Context, user string) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM offline WHERE jid = $1`, user).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count offline of %q: %w", user, err)
	}
	return n, nil
}

// DeleteOffline implements storage.Offline.
func (s *Store) DeleteOffline(ctx context.Context, user string, upTo uint64) error {
	if upTo > 1<<63-1 {
		upTo = 1<<63 - 1
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM offline WHERE jid = $1 AND seq <= $2`, user, int64(upTo)); err != nil {
		return fmt.Errorf("postgres: delete offline of %q: %w", user, err)
	}
	return nil
}

// ExpireOffline implements storage.Offline, over the index on stored.
func (s *Store) ExpireOffline(ctx context.Context, t time.Time, limit int) (int, error) {
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM offline WHERE (jid, seq) IN (
		SELECT jid, seq FROM offline WHERE stored < $1 ORDER BY stored LIMIT $2)`, t, lim)
	if err != nil {
		return 0, fmt.Errorf("postgres: expire offline: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// DeleteOfflineUser implements storage.Offline.
func (s *Store) DeleteOfflineUser(ctx context.Context, user string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM offline WHERE jid = $1`, user)
		b.Queue(`DELETE FROM offline_seq WHERE jid = $1`, user)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: delete offline of %q: %w", user, err)
	}
	return nil
}

var _ storage.Offline = (*Store)(nil)

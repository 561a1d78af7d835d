package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kiez-im/kiez/storage"
)

// uploadIn returns the copy of u that the store keeps, or an error if it
// cannot be stored.
func uploadIn(u storage.Upload, lim storage.UploadLimits) (storage.Upload, error) {
	if err := storage.CheckNewUpload(u, lim); err != nil {
		return u, err
	}
	u.Created = u.Created.Truncate(time.Microsecond).UTC()
	u.Expires = u.Expires.Truncate(time.Microsecond).UTC()
	return u, nil
}

// uploadLockSpace is the first key of the per-owner advisory locks that
// serialise an owner's CreateUpload calls, so limits hold.
const uploadLockSpace = 0x75706c64 // "upld"

// CreateUpload implements storage.Uploads.
func (s *Store) CreateUpload(ctx context.Context, u storage.Upload, lim storage.UploadLimits) error {
	in, err := uploadIn(u, lim)
	if err != nil {
		return fmt.Errorf("postgres: create upload %q of %q: %w", u.ID, u.Owner, err)
	}
	u = in
	dayStart := lim.DayStart.Truncate(time.Microsecond)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, uploadLockSpace, u.Owner); err != nil {
			return err
		}
		var total, day int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(size), 0), coalesce(sum(size) FILTER (WHERE created >= $2), 0)
			FROM uploads WHERE owner = $1`, u.Owner, clampTime(dayStart)).Scan(&total, &day); err != nil {
			return err
		}
		if lim.MaxBytes > 0 && total+u.Size > lim.MaxBytes {
			return errTx{fmt.Errorf("%d bytes in all, more than %d: %w", total+u.Size, lim.MaxBytes, storage.ErrLimit)}
		}
		if lim.MaxDayBytes > 0 && day+u.Size > lim.MaxDayBytes {
			return errTx{fmt.Errorf("%d bytes since %v, more than %d: %w", day+u.Size, dayStart.UTC(), lim.MaxDayBytes, storage.ErrLimit)}
		}
		_, err := tx.Exec(ctx, `INSERT INTO uploads (id, owner, filename, size, content_type, state, created, expires)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			[]byte(u.ID), u.Owner, []byte(u.Filename), u.Size, []byte(u.ContentType), int16(u.State), u.Created, u.Expires)
		return err
	})
	if isUniqueViolation(err) {
		return fmt.Errorf("postgres: create upload %q of %q: %w", u.ID, u.Owner, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("postgres: create upload %q of %q: %w", u.ID, u.Owner, err)
	}
	return nil
}

const uploadColumns = `id, owner, filename, size, content_type, state, created, expires`

func scanUpload(r pgx.Row) (storage.Upload, error) {
	var u storage.Upload
	var id, name, ct []byte
	var st int16
	err := r.Scan(&id, &u.Owner, &name, &u.Size, &ct, &st, &u.Created, &u.Expires)
	u.ID, u.Filename, u.ContentType = string(id), string(name), string(ct)
	u.State = storage.UploadState(st)
	u.Created = u.Created.UTC()
	u.Expires = u.Expires.UTC()
	return u, err
}

// Upload implements storage.Uploads.
func (s *Store) Upload(ctx context.Context, id string) (storage.Upload, error) {
	if id == "" {
		return storage.Upload{}, errors.New("postgres: upload: empty ID")
	}
	u, err := scanUpload(s.pool.QueryRow(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1`, []byte(id)))
	if err != nil {
		return storage.Upload{}, fmt.Errorf("postgres: upload %q: %w", id, notFound(err))
	}
	return u, nil
}

// SetUploadState implements storage.Uploads.
func (s *Store) SetUploadState(ctx context.Context, id string, from, to storage.UploadState, expires time.Time) error {
	if id == "" || !from.Valid() || !to.Valid() {
		return fmt.Errorf("postgres: set state of upload %q from %d to %d: empty ID or unknown state", id, from, to)
	}
	var exp *time.Time
	if !expires.IsZero() {
		if err := storage.CheckUploadTime("expiry", expires); err != nil {
			return fmt.Errorf("postgres: set state of upload %q: %w", id, err)
		}
		e := expires.Truncate(time.Microsecond).UTC()
		exp = &e
	}
	var was int16
	err := s.pool.QueryRow(ctx, `WITH old AS (SELECT state FROM uploads WHERE id = $1 FOR UPDATE),
			upd AS (UPDATE uploads SET state = $3, expires = coalesce($4, expires) WHERE id = $1 AND state = $2 RETURNING 1)
		SELECT state FROM old`, []byte(id), int16(from), int16(to), exp).Scan(&was)
	if err != nil {
		return fmt.Errorf("postgres: set state of upload %q: %w", id, notFound(err))
	}
	if was != int16(from) {
		return fmt.Errorf("postgres: set state of upload %q from %d to %d: it is in state %d: %w", id, from, to, was, storage.ErrExists)
	}
	return nil
}

// DeleteUpload implements storage.Uploads.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("postgres: delete upload: empty ID")
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM uploads WHERE id = $1`, []byte(id)); err != nil {
		return fmt.Errorf("postgres: delete upload %q: %w", id, err)
	}
	return nil
}

// UserUploads implements storage.Uploads.
func (s *Store) UserUploads(ctx context.Context, owner string) ([]storage.Upload, error) {
	if owner == "" {
		return nil, errors.New("postgres: uploads of user: empty owner")
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE owner = $1 ORDER BY created, id`, owner)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Upload, error) { return scanUpload(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: uploads of %q: %w", owner, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// ExpiredUploads implements storage.Uploads.
func (s *Store) ExpiredUploads(ctx context.Context, t time.Time, max int) ([]storage.Upload, error) {
	if max < 1 {
		return nil, fmt.Errorf("postgres: expired uploads: max %d is less than 1", max)
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE expires <= $1 ORDER BY expires, id LIMIT $2`, clampTime(t), max)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Upload, error) { return scanUpload(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: expired uploads: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

var _ storage.Uploads = (*Store)(nil)

// Stored times lie in years 1 to 9999; clampTime moves a bound outside
// them (which PostgreSQL might not represent) to the nearest edge, which
// compares the same with every stored time.
func clampTime(t time.Time) time.Time {
	lo := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Microsecond)
	hi := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	switch {
	case t.Before(lo):
		return lo
	case t.After(hi):
		return hi
	}
	return t
}

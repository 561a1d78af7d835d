package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kiez-im/kiez/storage"
)

func mucYears(what string, t time.Time) error {
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%s %v outside years 1 to 9999", what, t)
	}
	return nil
}

func validAffiliation(aff string) bool {
	switch aff {
	case "", storage.AffOwner, storage.AffAdmin, storage.AffMember, storage.AffOutcast:
		return true
	}
	return false
}

// PutRoom implements storage.MUC.
func (s *Store) PutRoom(ctx context.Context, r storage.MUCRoom) error {
	err := mucYears("created", r.Created)
	if err == nil {
		err = mucYears("last active", r.LastActive)
	}
	if r.JID == "" {
		err = errors.New("empty room JID")
	}
	if err == nil {
		_, err = s.pool.Exec(ctx, `INSERT INTO muc_rooms (jid, service, config, created, last_active) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (jid) DO UPDATE SET config = EXCLUDED.config, created = EXCLUDED.created, last_active = EXCLUDED.last_active`,
			r.JID, domainOf(r.JID), nonNil(r.Config), storage.Day(r.Created), storage.Day(r.LastActive))
	}
	if err != nil {
		return fmt.Errorf("postgres: put room %q: %w", r.JID, err)
	}
	return nil
}

// Room implements storage.MUC.
func (s *Store) Room(ctx context.Context, room string) (storage.MUCRoom, error) {
	r := storage.MUCRoom{JID: room}
	err := s.pool.QueryRow(ctx, `SELECT config, created, last_active FROM muc_rooms WHERE jid = $1`, room).Scan(&r.Config, &r.Created, &r.LastActive)
	if err != nil {
		return storage.MUCRoom{}, fmt.Errorf("postgres: room %q: %w", room, notFound(err))
	}
	r.Created, r.LastActive = r.Created.UTC(), r.LastActive.UTC()
	return r, nil
}

// Rooms implements storage.MUC.
func (s *Store) Rooms(ctx context.Context, service string) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT jid FROM muc_rooms WHERE $1 = '' OR service = $1 ORDER BY jid`, service)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: rooms of %q: %w", service, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// DeleteRoom implements storage.MUC; affiliations go with the room (ON
// DELETE CASCADE).
func (s *Store) DeleteRoom(ctx context.Context, room string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM muc_rooms WHERE jid = $1`, room); err != nil {
		return fmt.Errorf("postgres: delete room %q: %w", room, err)
	}
	return nil
}

// SetAffiliation implements storage.MUC.
func (s *Store) SetAffiliation(ctx context.Context, a storage.MUCAffiliation) error {
	switch {
	case a.Room == "" || a.JID == "":
		return fmt.Errorf("postgres: set affiliation of %q in room %q: empty room or JID", a.JID, a.Room)
	case !validAffiliation(a.Affiliation):
		return fmt.Errorf("postgres: set affiliation of %q in room %q: unknown affiliation %q", a.JID, a.Room, a.Affiliation)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM muc_rooms WHERE jid = $1 FOR SHARE`, a.Room).Scan(&one); err != nil {
			return err
		}
		if a.Affiliation == "" && a.Nick == "" {
			_, err := tx.Exec(ctx, `DELETE FROM muc_affiliations WHERE room = $1 AND jid = $2`, a.Room, a.JID)
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO muc_affiliations (room, jid, affiliation, nick, reason) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (room, jid) DO UPDATE SET affiliation = EXCLUDED.affiliation, nick = EXCLUDED.nick, reason = EXCLUDED.reason`,
			a.Room, a.JID, a.Affiliation, a.Nick, a.Reason)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: set affiliation of %q in room %q: %w", a.JID, a.Room, notFound(err))
	}
	return nil
}

const affColumns = `room, jid, affiliation, nick, reason`

func scanAff(r pgx.Row) (storage.MUCAffiliation, error) {
	var a storage.MUCAffiliation
	err := r.Scan(&a.Room, &a.JID, &a.Affiliation, &a.Nick, &a.Reason)
	return a, err
}

func collectAffs(rows pgx.Rows) ([]storage.MUCAffiliation, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.MUCAffiliation, error) { return scanAff(r) })
	if len(out) == 0 {
		out = nil
	}
	return out, err
}

// Affiliation implements storage.MUC.
func (s *Store) Affiliation(ctx context.Context, room, jid string) (storage.MUCAffiliation, error) {
	a, err := scanAff(s.pool.QueryRow(ctx, `SELECT `+affColumns+` FROM muc_affiliations WHERE room = $1 AND jid = $2`, room, jid))
	if err != nil {
		return storage.MUCAffiliation{}, fmt.Errorf("postgres: affiliation of %q in room %q: %w", jid, room, notFound(err))
	}
	return a, nil
}

// Affiliations implements storage.MUC.
func (s *Store) Affiliations(ctx context.Context, room string) ([]storage.MUCAffiliation, error) {
	var out []storage.MUCAffiliation
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM muc_rooms WHERE jid = $1`, room).Scan(&one); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `SELECT `+affColumns+` FROM muc_affiliations WHERE room = $1 ORDER BY jid`, room)
		var err error
		out, err = collectAffs(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: affiliations of room %q: %w", room, notFound(err))
	}
	return out, nil
}

// UserAffiliations implements storage.MUC.
func (s *Store) UserAffiliations(ctx context.Context, jid string) ([]storage.MUCAffiliation, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+affColumns+` FROM muc_affiliations WHERE jid = $1 ORDER BY room`, jid)
	out, err := collectAffs(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: affiliations of %q: %w", jid, err)
	}
	return out, nil
}

// DeleteUserAffiliations implements storage.MUC.
func (s *Store) DeleteUserAffiliations(ctx context.Context, jid string) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `WITH d AS (DELETE FROM muc_affiliations WHERE jid = $1 RETURNING room)
		SELECT room FROM d ORDER BY room`, jid)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: delete affiliations of %q: %w", jid, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

var _ storage.MUC = (*Store)(nil)

package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/internal/rosterver"
)

const rosterColumns = `contact, name, groups, subscription, ask, approved, pending_in, hidden`

// scanRosterItem scans rosterColumns (and extra destinations after them).
func scanRosterItem(row pgx.Row, extra ...any) (storage.RosterItem, error) {
	var it storage.RosterItem
	var sub string
	err := row.Scan(append([]any{&it.JID, &it.Name, &it.Groups, &sub, &it.Ask, &it.Approved, &it.PendingIn, &it.Hidden}, extra...)...)
	it.Subscription = storage.Subscription(sub)
	return it, err
}

// Roster implements storage.Roster.
func (s *Store) Roster(ctx context.Context, user string) ([]storage.RosterItem, string, error) {
	var items []storage.RosterItem
	var ver string
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var v rosterver.Version
		err := tx.QueryRow(ctx, `SELECT gen, n FROM roster_versions WHERE jid = $1`, user).Scan(&v.Gen, &v.N)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		ver = v.String()
		rows, err := tx.Query(ctx, `SELECT `+rosterColumns+` FROM roster_items WHERE jid = $1 ORDER BY contact COLLATE "C"`, user)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.RosterItem, error) { return scanRosterItem(r) })
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("postgres: roster of %q: %w", user, err)
	}
	return items, ver, nil
}

// RosterItem implements storage.Roster.
func (s *Store) RosterItem(ctx context.Context, user, contact string) (storage.RosterItem, error) {
	it, err := scanRosterItem(s.pool.QueryRow(ctx, `SELECT `+rosterColumns+` FROM roster_items WHERE jid = $1 AND contact = $2`, user, contact))
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.RosterItem{}, fmt.Errorf("postgres: roster item %q of %q: %w", contact, user, storage.ErrNotFound)
	}
	if err != nil {
		return storage.RosterItem{}, fmt.Errorf("postgres: roster item %q of %q: %w", contact, user, err)
	}
	return it, nil
}

// SetRosterItem implements storage.Roster. The version row is bumped
// first, so it also serialises writers of one roster.
func (s *Store) SetRosterItem(ctx context.Context, user string, item storage.RosterItem) (string, error) {
	if user == "" || item.JID == "" || !item.Subscription.Valid() {
		return "", fmt.Errorf("postgres: set roster item %q of %q (subscription %q): %w", item.JID, user, item.Subscription, storage.ErrInvalidItem)
	}
	if item.Subscription == "" {
		item.Subscription = storage.SubNone
	}
	var v rosterver.Version
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO roster_versions (jid, gen, n) VALUES ($1, $2, 1)
			ON CONFLICT (jid) DO UPDATE SET n = roster_versions.n + 1 RETURNING gen, n`,
			user, int64(rosterver.New().Gen)).Scan(&v.Gen, &v.N); err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO roster_items (jid, `+rosterColumns+`, ver) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (jid, contact) DO UPDATE SET name = EXCLUDED.name, groups = EXCLUDED.groups,
				subscription = EXCLUDED.subscription, ask = EXCLUDED.ask, approved = EXCLUDED.approved,
				pending_in = EXCLUDED.pending_in, hidden = EXCLUDED.hidden, ver = EXCLUDED.ver`,
			user, item.JID, item.Name, item.Groups, string(item.Subscription), item.Ask, item.Approved, item.PendingIn, item.Hidden, int64(v.N))
		b.Queue(`DELETE FROM roster_tombstones WHERE jid = $1 AND contact = $2`, user, item.JID)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return "", fmt.Errorf("postgres: set roster item %q of %q: %w", item.JID, user, err)
	}
	return v.String(), nil
}

// DeleteRosterItem implements storage.Roster.
func (s *Store) DeleteRosterItem(ctx context.Context, user, contact string) (string, error) {
	var v rosterver.Version
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT gen, n FROM roster_versions WHERE jid = $1 FOR UPDATE`, user).Scan(&v.Gen, &v.N); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM roster_items WHERE jid = $1 AND contact = $2`, user, contact)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		v = v.Next()
		b := &pgx.Batch{}
		b.Queue(`UPDATE roster_versions SET n = $2 WHERE jid = $1`, user, int64(v.N))
		b.Queue(`INSERT INTO roster_tombstones (jid, contact, ver) VALUES ($1, $2, $3)
			ON CONFLICT (jid, contact) DO UPDATE SET ver = EXCLUDED.ver`, user, contact, int64(v.N))
		// Forget the oldest removals past the limit; versions up to the
		// newest one forgotten become unknown.
		b.Queue(`WITH old AS (
				DELETE FROM roster_tombstones WHERE jid = $1 AND ver <= (
					SELECT ver FROM roster_tombstones WHERE jid = $1 ORDER BY ver DESC OFFSET $2 LIMIT 1)
				RETURNING ver)
			UPDATE roster_versions SET floor = greatest(floor, (SELECT max(ver) FROM old))
			WHERE jid = $1 AND EXISTS (SELECT 1 FROM old)`, user, storage.MaxRosterTombstones)
		return tx.SendBatch(ctx, b).Close()
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("postgres: delete roster item %q of %q: %w", contact, user, storage.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("postgres: delete roster item %q of %q: %w", contact, user, err)
	}
	return v.String(), nil
}

// RosterChangesSince implements storage.Roster.
func (s *Store) RosterChangesSince(ctx context.Context, user, ver string) ([]storage.RosterChange, string, bool, error) {
	var (
		changes []storage.RosterChange
		cur     string
		ok      bool
	)
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var v rosterver.Version
		var floor uint64
		err := tx.QueryRow(ctx, `SELECT gen, n, floor FROM roster_versions WHERE jid = $1`, user).Scan(&v.Gen, &v.N, &floor)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		cur = v.String()
		var n uint64
		if n, ok = v.Since(ver, floor); !ok {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT `+rosterColumns+`, ver FROM roster_items WHERE jid = $1 AND ver > $2
			UNION ALL
			SELECT contact, '', NULL, 'remove', false, false, false, false, ver FROM roster_tombstones WHERE jid = $1 AND ver > $2
			ORDER BY ver`, user, int64(n))
		if err != nil {
			return err
		}
		changes, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.RosterChange, error) {
			var at uint64
			it, err := scanRosterItem(r, &at)
			return storage.RosterChange{Item: it, Ver: v.At(at).String()}, err
		})
		return err
	})
	if err != nil {
		return nil, "", false, fmt.Errorf("postgres: roster changes of %q: %w", user, err)
	}
	return changes, cur, ok, nil
}

// DeleteRoster implements storage.Roster.
func (s *Store) DeleteRoster(ctx context.Context, user string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM roster_versions WHERE jid = $1`, user)
		b.Queue(`DELETE FROM roster_items WHERE jid = $1`, user)
		b.Queue(`DELETE FROM roster_tombstones WHERE jid = $1`, user)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: delete roster of %q: %w", user, err)
	}
	return nil
}

var _ storage.Roster = (*Store)(nil)

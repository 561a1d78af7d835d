package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kiez-im/kiez/storage"
)

func checkPEPLimits(lim storage.PEPLimits) error {
	if lim.MaxItems < 0 || lim.MaxNodes < 0 || lim.MaxBytes < 0 {
		return fmt.Errorf("negative limit in %+v", lim)
	}
	return nil
}

// errTx carries a storage error (ErrExists, ErrLimit) out of a
// transaction, which it rolls back.
type errTx struct{ err error }

func (e errTx) Error() string { return e.err.Error() }
func (e errTx) Unwrap() error { return e.err }

const pepNodeSelect = `SELECT n.name, n.config, count(i.id), coalesce(sum(length(i.id) + length(i.payload)), 0)
	FROM pep_nodes n LEFT JOIN pep_items i ON i.jid = n.jid AND i.node = n.name`

func scanPEPNode(r pgx.Row) (storage.PEPNode, error) {
	var n storage.PEPNode
	var name []byte
	err := r.Scan(&name, &n.Config, &n.Items, &n.Bytes)
	n.Name = string(name)
	return n, err
}

// PEPNodes implements storage.PEP.
func (s *Store) PEPNodes(ctx context.Context, user string) ([]storage.PEPNode, error) {
	rows, _ := s.pool.Query(ctx, pepNodeSelect+` WHERE n.jid = $1 GROUP BY n.name, n.config ORDER BY n.name`, user)
	nodes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.PEPNode, error) { return scanPEPNode(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: pep nodes of %q: %w", user, err)
	}
	if len(nodes) == 0 {
		return nil, nil
	}
	return nodes, nil
}

// PEPNode implements storage.PEP.
func (s *Store) PEPNode(ctx context.Context, user, node string) (storage.PEPNode, error) {
	n, err := scanPEPNode(s.pool.QueryRow(ctx, pepNodeSelect+` WHERE n.jid = $1 AND n.name = $2 GROUP BY n.name, n.config`, user, []byte(node)))
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.PEPNode{}, fmt.Errorf("postgres: pep node %q of %q: %w", node, user, storage.ErrNotFound)
	}
	if err != nil {
		return storage.PEPNode{}, fmt.Errorf("postgres: pep node %q of %q: %w", node, user, err)
	}
	return n, nil
}

// lockPEPUser locks user's row, creating it if create is set; without
// create, a user without one gives pgx.ErrNoRows.
func lockPEPUser(ctx context.Context, tx pgx.Tx, user string, create bool) error {
	if create {
		_, err := tx.Exec(ctx, `INSERT INTO pep_users (jid) VALUES ($1) ON CONFLICT (jid) DO UPDATE SET jid = EXCLUDED.jid`, user)
		return err
	}
	var one int
	return tx.QueryRow(ctx, `SELECT 1 FROM pep_users WHERE jid = $1 FOR UPDATE`, user).Scan(&one)
}

// nodeState returns whether user has node and how many nodes user has.
func nodeState(ctx context.Context, tx pgx.Tx, user, node string) (exists bool, count int, err error) {
	err = tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE name = $2) > 0, count(*) FROM pep_nodes WHERE jid = $1`,
		user, []byte(node)).Scan(&exists, &count)
	return exists, count, err
}

// CreatePEPNode implements storage.PEP.
func (s *Store) CreatePEPNode(ctx context.Context, user string, node storage.PEPNode, lim storage.PEPLimits) error {
	if user == "" || node.Name == "" {
		return fmt.Errorf("postgres: create pep node %q of %q: empty user or node", node.Name, user)
	}
	if err := checkPEPLimits(lim); err != nil {
		return fmt.Errorf("postgres: create pep node %q of %q: %w", node.Name, user, err)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockPEPUser(ctx, tx, user, true); err != nil {
			return err
		}
		exists, count, err := nodeState(ctx, tx, user, node.Name)
		if err != nil {
			return err
		}
		if exists {
			return errTx{storage.ErrExists}
		}
		if lim.MaxNodes > 0 && count >= lim.MaxNodes {
			return errTx{fmt.Errorf("%d nodes: %w", count, storage.ErrLimit)}
		}
		_, err = tx.Exec(ctx, `INSERT INTO pep_nodes (jid, name, config) VALUES ($1, $2, $3)`, user, []byte(node.Name), nonNil(node.Config))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create pep node %q of %q: %w", node.Name, user, err)
	}
	return nil
}

// trimPEPNode drops node's oldest items beyond max (0: none) and returns
// their IDs, oldest first.
func trimPEPNode(ctx context.Context, tx pgx.Tx, user, node string, max int) ([]string, error) {
	if max <= 0 {
		return nil, nil
	}
	rows, _ := tx.Query(ctx, `DELETE FROM pep_items WHERE jid = $1 AND node = $2 AND seq IN (
			SELECT seq FROM pep_items WHERE jid = $1 AND node = $2 ORDER BY seq DESC OFFSET $3)
		RETURNING id, seq`, user, []byte(node), max)
	type dropped struct {
		id  string
		seq int64
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dropped, error) {
		var d dropped
		var id []byte
		err := r.Scan(&id, &d.seq)
		d.id = string(id)
		return d, err
	})
	if err != nil || len(ds) == 0 {
		return nil, err
	}
	// RETURNING has no order; sort by seq.
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j].seq < ds[j-1].seq; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.id
	}
	return ids, nil
}

// notFound maps pgx.ErrNoRows (no user row or node) to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

// ConfigurePEPNode implements storage.PEP.
func (s *Store) ConfigurePEPNode(ctx context.Context, user, node string, config []byte, lim storage.PEPLimits) error {
	if err := checkPEPLimits(lim); err != nil {
		return fmt.Errorf("postgres: configure pep node %q of %q: %w", node, user, err)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockPEPUser(ctx, tx, user, false); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE pep_nodes SET config = $3 WHERE jid = $1 AND name = $2`, user, []byte(node), nonNil(config))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		_, err = trimPEPNode(ctx, tx, user, node, lim.MaxItems)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: configure pep node %q of %q: %w", node, user, notFound(err))
	}
	return nil
}

// DeletePEPNode implements storage.PEP; its items go with it (ON DELETE
// CASCADE).
func (s *Store) DeletePEPNode(ctx context.Context, user, node string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM pep_nodes WHERE jid = $1 AND name = $2`, user, []byte(node))
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	if err != nil {
		return fmt.Errorf("postgres: delete pep node %q of %q: %w", node, user, notFound(err))
	}
	return nil
}

// PublishPEPItem implements storage.PEP. The user's row is locked first,
// so the node count and byte total checked cannot change before commit.
func (s *Store) PublishPEPItem(ctx context.Context, user, node string, config []byte, item storage.PEPItem, lim storage.PEPLimits) (bool, []string, error) {
	if user == "" || node == "" {
		return false, nil, fmt.Errorf("postgres: publish to pep node %q of %q: empty user or node", node, user)
	}
	var err error
	switch {
	case item.ID == "":
		err = errors.New("empty item ID")
	case item.Published.UTC().Year() < 1 || item.Published.UTC().Year() > 9999:
		err = fmt.Errorf("published %v outside years 1 to 9999", item.Published)
	default:
		err = checkPEPLimits(lim)
	}
	if err != nil {
		return false, nil, fmt.Errorf("postgres: publish %q to pep node %q of %q: %w", item.ID, node, user, err)
	}
	published := item.Published.Truncate(time.Microsecond).UTC()
	var (
		created bool
		dropped []string
	)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockPEPUser(ctx, tx, user, true); err != nil {
			return err
		}
		exists, count, err := nodeState(ctx, tx, user, node)
		if err != nil {
			return err
		}
		created = !exists
		if created && lim.MaxNodes > 0 && count >= lim.MaxNodes {
			return errTx{fmt.Errorf("%d nodes: %w", count, storage.ErrLimit)}
		}
		if lim.MaxBytes > 0 {
			// The user's total after the publish: minus the replaced
			// item and the oldest others that MaxItems drops.
			var total int64
			if err := tx.QueryRow(ctx, `WITH others AS (
					SELECT length(id) + length(payload) AS size,
						row_number() OVER (ORDER BY seq DESC) AS newer
					FROM pep_items WHERE jid = $1 AND node = $2 AND id <> $3)
				SELECT coalesce((SELECT sum(length(id) + length(payload)) FROM pep_items WHERE jid = $1), 0)
					- coalesce((SELECT length(id) + length(payload) FROM pep_items WHERE jid = $1 AND node = $2 AND id = $3), 0)
					- coalesce((SELECT sum(size) FROM others WHERE $4 > 0 AND newer >= $4), 0)`,
				user, []byte(node), []byte(item.ID), lim.MaxItems).Scan(&total); err != nil {
				return err
			}
			total += int64(len(item.ID)) + int64(len(item.Payload))
			if total > lim.MaxBytes {
				return errTx{fmt.Errorf("%d bytes in all: %w", total, storage.ErrLimit)}
			}
		}
		b := &pgx.Batch{}
		if created {
			b.Queue(`INSERT INTO pep_nodes (jid, name, config) VALUES ($1, $2, $3)`, user, []byte(node), nonNil(config))
		}
		b.Queue(`DELETE FROM pep_items WHERE jid = $1 AND node = $2 AND id = $3`, user, []byte(node), []byte(item.ID))
		b.Queue(`INSERT INTO pep_items (jid, node, id, payload, published) VALUES ($1, $2, $3, $4, $5)`,
			user, []byte(node), []byte(item.ID), nonNil(item.Payload), published)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		dropped, err = trimPEPNode(ctx, tx, user, node, lim.MaxItems)
		return err
	})
	if err != nil {
		return false, nil, fmt.Errorf("postgres: publish %q to pep node %q of %q: %w", item.ID, node, user, err)
	}
	return created, dropped, nil
}

// RetractPEPItem implements storage.PEP.
func (s *Store) RetractPEPItem(ctx context.Context, user, node, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM pep_items WHERE jid = $1 AND node = $2 AND id = $3`, user, []byte(node), []byte(id))
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	if err != nil {
		return fmt.Errorf("postgres: retract %q from pep node %q of %q: %w", id, node, user, notFound(err))
	}
	return nil
}

// PurgePEPNode implements storage.PEP.
func (s *Store) PurgePEPNode(ctx context.Context, user, node string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM pep_nodes WHERE jid = $1 AND name = $2 FOR UPDATE`, user, []byte(node)).Scan(&one); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM pep_items WHERE jid = $1 AND node = $2`, user, []byte(node))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: purge pep node %q of %q: %w", node, user, notFound(err))
	}
	return nil
}

// PEPItems implements storage.PEP.
func (s *Store) PEPItems(ctx context.Context, user, node string, ids []string, max int) ([]storage.PEPItem, error) {
	var items []storage.PEPItem
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM pep_nodes WHERE jid = $1 AND name = $2`, user, []byte(node)).Scan(&one); err != nil {
			return err
		}
		sql := `SELECT id, payload, published, seq FROM pep_items WHERE jid = $1 AND node = $2`
		args := []any{user, []byte(node)}
		if len(ids) > 0 {
			bs := make([][]byte, len(ids))
			for i, id := range ids {
				bs[i] = []byte(id)
			}
			args = append(args, bs)
			sql += ` AND id = ANY($3)`
		}
		if max > 0 {
			args = append(args, max)
			sql = `SELECT * FROM (` + sql + fmt.Sprintf(` ORDER BY seq DESC LIMIT $%d) AS newest`, len(args))
		}
		sql += ` ORDER BY seq`
		rows, _ := tx.Query(ctx, sql, args...)
		var err error
		items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.PEPItem, error) {
			var it storage.PEPItem
			var id []byte
			var seq int64
			err := r.Scan(&id, &it.Payload, &it.Published, &seq)
			it.ID = string(id)
			it.Published = it.Published.UTC()
			return it, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: items of pep node %q of %q: %w", node, user, notFound(err))
	}
	if len(items) == 0 {
		return nil, nil
	}
	return items, nil
}

// DeletePEP implements storage.PEP; nodes and items go with the user's
// row (ON DELETE CASCADE).
func (s *Store) DeletePEP(ctx context.Context, user string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM pep_users WHERE jid = $1`, user); err != nil {
		return fmt.Errorf("postgres: delete pep of %q: %w", user, err)
	}
	return nil
}

var _ storage.PEP = (*Store)(nil)

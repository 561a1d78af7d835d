package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kiez-im/kiez/storage"
)

// expireBatch is how many archived messages one expiry transaction removes
// at most, so that no transaction runs long.
const expireBatch = 10000

func bareJID(jid string) string {
	bare, _, _ := strings.Cut(jid, "/")
	return bare
}

// AppendArchive implements storage.Archive. Concurrent appends share one
// batch and one commit (see commit.go).
func (s *Store) AppendArchive(ctx context.Context, user string, at time.Time, with string, data []byte) (uint64, error) {
	if user == "" {
		return 0, errors.New("postgres: append archive: empty user")
	}
	want := storage.TimeID(at)
	if want > math.MaxInt64 {
		return 0, fmt.Errorf("postgres: append archive for %q: time %v out of range", user, at)
	}
	id, err := s.appends.append(&appendReq{ctx: ctx, user: user, want: int64(want), with: with, data: data, done: make(chan appendRes, 1)})
	if err != nil {
		return 0, fmt.Errorf("postgres: append archive for %q: %w", user, err)
	}
	return uint64(id), nil
}

// QueryArchive implements storage.Archive with one indexed statement,
// built for the query's shape so that each shape gets its own plan.
func (s *Store) QueryArchive(ctx context.Context, user string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	if q.Max < 1 {
		return storage.ArchivePage{}, fmt.Errorf("postgres: query archive: Max %d is below 1", q.Max)
	}
	if q.After >= math.MaxInt64 || (q.Before != 0 && q.After+1 >= q.Before) {
		return storage.ArchivePage{Complete: true}, nil
	}
	var sql strings.Builder
	args := []any{user}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	sql.WriteString(`SELECT id, with_jid, data FROM archive WHERE jid = $1`)
	if q.After > 0 {
		sql.WriteString(` AND id > ` + arg(int64(q.After)))
	}
	if q.Before != 0 && q.Before <= math.MaxInt64 {
		sql.WriteString(` AND id < ` + arg(int64(q.Before)))
	}
	if q.With != "" {
		sql.WriteString(` AND with_bare = ` + arg(bareJID(q.With)))
		if strings.Contains(q.With, "/") {
			sql.WriteString(` AND with_jid = ` + arg(q.With))
		}
	}
	if len(q.IDs) > 0 {
		ids := make([]int64, 0, len(q.IDs))
		for _, id := range q.IDs {
			if id <= math.MaxInt64 {
				ids = append(ids, int64(id))
			}
		}
		sql.WriteString(` AND id = ANY(` + arg(ids) + `)`)
	}
	if q.Reverse {
		sql.WriteString(` ORDER BY id DESC`)
	} else {
		sql.WriteString(` ORDER BY id`)
	}
	sql.WriteString(` LIMIT ` + arg(q.Max+1))

	rows, _ := s.pool.Query(ctx, sql.String(), args...)
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.ArchivedMessage, error) {
		var m storage.ArchivedMessage
		err := r.Scan(&m.ID, &m.With, &m.Data)
		m.Data = nonNil(m.Data)
		return m, err
	})
	if err != nil {
		return storage.ArchivePage{}, fmt.Errorf("postgres: query archive of %q: %w", user, err)
	}
	page := storage.ArchivePage{Messages: msgs, Complete: len(msgs) <= q.Max}
	if !page.Complete {
		page.Messages = msgs[:q.Max]
	}
	if q.Reverse {
		slices.Reverse(page.Messages)
	}
	if len(page.Messages) == 0 {
		page.Messages = nil
	}
	return page, nil
}

// ArchiveStats implements storage.Archive.
func (s *Store) ArchiveStats(ctx context.Context, user string) (storage.ArchiveStats, error) {
	var st storage.ArchiveStats
	var firstID, lastID *int64
	var firstWith, lastWith *string
	err := s.pool.QueryRow(ctx, `SELECT
			coalesce((SELECT n FROM archive_last WHERE jid = $1), 0),
			f.id, f.with_jid, l.id, l.with_jid
		FROM (SELECT 1) AS one
		LEFT JOIN LATERAL (SELECT id, with_jid FROM archive WHERE jid = $1 ORDER BY id LIMIT 1) f ON true
		LEFT JOIN LATERAL (SELECT id, with_jid FROM archive WHERE jid = $1 ORDER BY id DESC LIMIT 1) l ON true`,
		user).Scan(&st.Count, &firstID, &firstWith, &lastID, &lastWith)
	if err != nil {
		return storage.ArchiveStats{}, fmt.Errorf("postgres: archive stats of %q: %w", user, err)
	}
	if st.Count > 0 && firstID != nil && lastID != nil {
		st.First = storage.ArchivedMessage{ID: uint64(*firstID), With: *firstWith}
		st.Last = storage.ArchivedMessage{ID: uint64(*lastID), With: *lastWith}
	}
	return st, nil
}

// expireCut returns the first ID that stays when expiring before t: IDs
// below it were archived before t, to the nanosecond.
func expireCut(t time.Time) int64 {
	cut := storage.TimeID(t)
	if t.UnixMicro() >= 0 && t.Nanosecond()%1000 != 0 {
		cut++
	}
	if cut > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(cut)
}

// expireArchive deletes due messages (IDs below cut), of user or of every
// user when user is "", in transactions of at most expireBatch messages,
// oldest first, up to limit in all.
func (s *Store) expireArchive(ctx context.Context, user string, cut int64, limit int) (int, error) {
	removed := 0
	for {
		n := expireBatch
		if limit > 0 {
			n = min(n, limit-removed)
		}
		if n <= 0 {
			return removed, nil
		}
		var found, k int
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			found, k, err = expireSome(ctx, tx, user, cut, n)
			return err
		})
		if err != nil {
			return removed, err
		}
		removed += k
		if found < n {
			return removed, nil
		}
	}
}

// expireSome deletes at most n due messages, the oldest, in tx: it finds
// them, locks the counters of their archives in the order of the archives'
// JIDs, which is the order a batch of appends locks them in (commit.go),
// so that the two cannot deadlock, then deletes the messages and counts
// them down. It returns how many it found and how many it deleted.
func expireSome(ctx context.Context, tx pgx.Tx, user string, cut int64, n int) (found, deleted int, err error) {
	sel := `SELECT jid, id FROM archive WHERE id < $1 ORDER BY id LIMIT $2`
	args := []any{cut, n}
	if user != "" {
		sel = `SELECT jid, id FROM archive WHERE jid = $3 AND id < $1 ORDER BY id LIMIT $2`
		args = append(args, user)
	}
	var jids []string
	var ids []int64
	rows, _ := tx.Query(ctx, sel, args...)
	var jid string
	var id int64
	if _, err := pgx.ForEachRow(rows, []any{&jid, &id}, func() error {
		jids, ids = append(jids, jid), append(ids, id)
		return nil
	}); err != nil {
		return 0, 0, err
	}
	if len(ids) == 0 {
		return 0, 0, nil
	}
	if _, err := tx.Exec(ctx, `SELECT jid FROM archive_last WHERE jid = ANY($1) ORDER BY jid COLLATE "C" FOR UPDATE`, jids); err != nil {
		return 0, 0, err
	}
	// The counts of the archives go down in the same statement.
	var k int64
	err = tx.QueryRow(ctx, `WITH d AS (DELETE FROM archive WHERE (jid, id) IN (SELECT * FROM unnest($1::text[], $2::bigint[])) RETURNING jid),
			c AS (SELECT jid, count(*) AS k FROM d GROUP BY jid),
			u AS (UPDATE archive_last SET n = archive_last.n - c.k FROM c WHERE archive_last.jid = c.jid)
			SELECT coalesce(sum(k), 0)::bigint FROM c`, jids, ids).Scan(&k)
	return len(ids), int(k), err
}

// ExpireArchive implements storage.Archive over the index on id.
func (s *Store) ExpireArchive(ctx context.Context, t time.Time, limit int) (int, error) {
	n, err := s.expireArchive(ctx, "", expireCut(t), limit)
	if err != nil {
		return n, fmt.Errorf("postgres: expire archive: %w", err)
	}
	return n, nil
}

// ExpireUserArchive implements storage.Archive over the primary key.
func (s *Store) ExpireUserArchive(ctx context.Context, user string, t time.Time, limit int) (int, error) {
	n, err := s.expireArchive(ctx, user, expireCut(t), limit)
	if err != nil {
		return n, fmt.Errorf("postgres: expire archive of %q: %w", user, err)
	}
	return n, nil
}

// DeleteArchive implements storage.Archive. The counter row goes first:
// an append in flight holds it, so the deletion waits for that append to
// commit and then, in its next statement, sees and deletes its message
// too. The other way round, the append's message would stay behind with
// no counter (a count of 0, and its ID given again).
func (s *Store) DeleteArchive(ctx context.Context, user string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM archive_last WHERE jid = $1`, user)
		b.Queue(`DELETE FROM archive WHERE jid = $1`, user)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: delete archive of %q: %w", user, err)
	}
	return nil
}

var _ storage.Archive = (*Store)(nil)

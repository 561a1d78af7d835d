package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Group commit of archive appends. AppendArchive hands its append to a
// goroutine of the Store (the committer), which takes every append
// queued meanwhile and sends them as one pgx batch: one round trip, and,
// since the statements of a batch run in one implicit transaction, one
// commit and one WAL flush for all of them. A lone writer waits for
// exactly one statement (no batching delay): a batch is what queued up
// while the previous one ran. If the server rejects a statement of a
// batch, each of its appends is retried on its own, so one bad append
// cannot fail the others; other failures fail the whole batch (see
// retrySingly).
// maxAppendBatch caps the appends of one batch.
const maxAppendBatch = 256

// appendTimeout bounds one batch (or one retried append); a variable for
// tests.
var appendTimeout = 30 * time.Second

// appendSQL appends one message: it takes the archive's next ID (the
// time's, or one above the last, so IDs strictly increase), counts the
// message and inserts it under that ID, in one statement. Appends to one
// archive in one transaction see each other's IDs.
const appendSQL = `WITH l AS (
		INSERT INTO archive_last (jid, last, n) VALUES ($1, greatest($2::bigint, 1), 1)
		ON CONFLICT (jid) DO UPDATE SET last = greatest(EXCLUDED.last, archive_last.last + 1), n = archive_last.n + 1
		RETURNING last)
	INSERT INTO archive (jid, id, with_jid, with_bare, data) SELECT $1, last, $3, $4, $5 FROM l RETURNING id`

// errClosed fails the appends that reach a closed Store.
var errClosed = errors.New("postgres: store closed")

// appendReq is one append waiting for the committer.
type appendReq struct {
	ctx        context.Context
	user, with string
	want       int64
	data       []byte
	done       chan appendRes // buffered: the committer never blocks on it
}

type appendRes struct {
	id  int64
	err error
}

// committer batches archive appends.
type committer struct {
	s    *Store
	reqs chan *appendReq
	quit chan struct{}
	wg   sync.WaitGroup
	stop sync.Once
}

func newCommitter(s *Store) *committer {
	c := &committer{s: s, reqs: make(chan *appendReq), quit: make(chan struct{})}
	c.wg.Add(1)
	go c.run()
	return c
}

// append queues r and waits for its result. Once queued, r is committed
// or fails on its own: the caller learns which, even if its context
// ends meanwhile.
func (c *committer) append(r *appendReq) (int64, error) {
	select {
	case c.reqs <- r:
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	case <-c.quit:
		return 0, errClosed
	}
	res := <-r.done
	return res.id, res.err
}

// close stops the committer once its batch is done; appends after it
// fail. Closing again does nothing.
func (c *committer) close() {
	c.stop.Do(func() { close(c.quit) })
	c.wg.Wait()
}

func (c *committer) run() {
	defer c.wg.Done()
	for {
		var batch []*appendReq
		select {
		case r := <-c.reqs:
			batch = append(batch, r)
		case <-c.quit:
			return
		}
	gather:
		for len(batch) < maxAppendBatch {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		c.commit(batch)
	}
}

// commit runs batch and answers each of its appends.
func (c *committer) commit(batch []*appendReq) {
	live := make([]*appendReq, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- appendRes{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) > 1 {
		// In the order of the archives' JIDs (byte-wise, as the expiry's
		// ORDER BY jid COLLATE "C"), so that a batch and the expiry lock
		// archive_last rows in one order and cannot deadlock; stable, so
		// that each archive's appends keep their order.
		slices.SortStableFunc(live, func(a, b *appendReq) int { return strings.Compare(a.user, b.user) })
		ids, err := c.s.appendBatch(live)
		if err == nil {
			for i, r := range live {
				r.done <- appendRes{id: ids[i]}
			}
			return
		}
		if !retrySingly(err) {
			for _, r := range live {
				r.done <- appendRes{err: err}
			}
			return
		}
	}
	// A lone append, or each append of a batch that did not commit.
	for _, r := range live {
		id, err := c.s.appendOne(r.ctx, r.user, r.want, r.with, r.data)
		r.done <- appendRes{id, err}
	}
}

// retrySingly reports whether the appends of a batch that failed with
// err are retried one by one: when the batch certainly did not commit,
// because the server rejected one of its statements (rolling the batch
// back), or because it was never sent (pgconn.SafeToRetry). After any
// other failure (a lost connection, a timeout) the commit may have
// happened unseen, and a retry could store every message twice. A
// statement cancelled (a timeout, again) is not retried either: each
// append would wait as long once more.
func retrySingly(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code != "57014" // query_canceled
	}
	return pgconn.SafeToRetry(err)
}

// appendOne runs one append as its own statement (and transaction).
func (s *Store) appendOne(ctx context.Context, user string, want int64, with string, data []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	var id int64
	err := s.pool.QueryRow(ctx, appendSQL, user, want, with, bareJID(with), nonNil(data)).Scan(&id)
	return id, err
}

// appendBatch runs the appends of batch as one pgx batch, in one
// implicit transaction: all of them are committed, or none.
func (s *Store) appendBatch(batch []*appendReq) ([]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	b := &pgx.Batch{}
	for _, r := range batch {
		b.Queue(appendSQL, r.user, r.want, r.with, bareJID(r.with), nonNil(r.data))
	}
	br := s.pool.SendBatch(ctx, b)
	ids := make([]int64, len(batch))
	var err error
	for i := range batch {
		if err = br.QueryRow().Scan(&ids[i]); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: append batch: %w", err)
	}
	return ids, nil
}

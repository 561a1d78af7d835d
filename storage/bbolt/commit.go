package bbolt

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// errClosed is returned by writes through a committer after Close.
var errClosed = errors.New("bbolt: store is closed")

// Sizes of the committer's queue and of one batch.
const (
	commitQueue    = 1024
	commitMaxBatch = 1000
)

// A committer runs write functions in shared transactions (group commit):
// one goroutine takes every request queued, runs them all in one
// db.Update, so one fsync, and then answers each. Requests that arrive
// during a commit form the next batch, so a lone writer waits for exactly
// one commit, and many writers share few. Unlike bolt's DB.Batch it never
// waits for more requests to come.
//
// If a batch's transaction fails, each of its requests is run again in a
// transaction of its own, so one failing request cannot fail the others.
// A request's function may therefore run more than once; only the run that
// committed counts, so it must set its results afresh each time.
type committer struct {
	db   *bolt.DB
	reqs chan *commitReq
	quit chan struct{}
	done chan struct{}

	mu     sync.RWMutex // held for reading while enqueueing
	closed bool

	// Statistics, for benchmarks.
	commits  atomic.Uint64
	requests atomic.Uint64
}

type commitReq struct {
	ctx context.Context
	fn  func(tx *bolt.Tx) error
	err chan error // buffered
}

func newCommitter(db *bolt.DB) *committer {
	c := &committer{
		db:   db,
		reqs: make(chan *commitReq, commitQueue),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go c.run()
	return c
}

// do runs fn in a write transaction shared with other requests and returns
// once that transaction has committed (nil) or fn's or the commit's error.
// ctx bounds the wait for a place in the queue and is checked again when
// the batch starts; once fn has run in a committed transaction its result
// stands, whatever ctx says meanwhile.
func (c *committer) do(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &commitReq{ctx: ctx, fn: fn, err: make(chan error, 1)}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return errClosed
	}
	select {
	case c.reqs <- r:
		c.mu.RUnlock()
	case <-ctx.Done():
		c.mu.RUnlock()
		return ctx.Err()
	}
	return <-r.err
}

// close stops taking requests, commits the ones queued and waits for the
// committing goroutine to end.
func (c *committer) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return
	}
	c.closed = true
	c.mu.Unlock()
	// No sender holds the read lock any more, so everything enqueued is
	// in the channel.
	close(c.quit)
	<-c.done
}

func (c *committer) run() {
	defer close(c.done)
	batch := make([]*commitReq, 0, commitMaxBatch)
	for {
		select {
		case r := <-c.reqs:
			batch = append(batch[:0], r)
		case <-c.quit:
			// Commit what is left, then stop.
			for {
				batch = c.drain(batch[:0])
				if len(batch) == 0 {
					return
				}
				c.commit(batch)
			}
		}
		c.commit(c.drain(batch))
	}
}

// drain appends the requests waiting in the queue to batch, up to
// commitMaxBatch.
func (c *committer) drain(batch []*commitReq) []*commitReq {
	for len(batch) < commitMaxBatch {
		select {
		case r := <-c.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit runs batch in one transaction and answers each request.
func (c *committer) commit(batch []*commitReq) {
	// Requests whose context ended while queued are answered at once.
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err <- err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	c.commits.Add(1)
	c.requests.Add(uint64(len(live)))
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, r := range live {
			if err := r.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(live) == 1 {
		for _, r := range live {
			r.err <- err
		}
		return
	}
	// Something failed: each request on its own.
	for _, r := range live {
		c.commits.Add(1)
		r.err <- c.db.Update(r.fn)
	}
}

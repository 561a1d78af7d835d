// Package bbolt implements the storage interfaces on a single bbolt file
// (go.etcd.io/bbolt). It is Kiez's default storage.
//
// # Layout
//
// Each store has one top-level bucket ("accounts" for storage.Accounts).
// Inside it, each user has a nested bucket named by their bare JID, so
// deleting a user drops exactly one bucket per store. An account's bucket
// holds one record under the key "account": a small versioned binary
// encoding of its SCRAM credentials per hash and its creation and last
// login days. Neither passwords nor times of day are stored. Server-wide
// secrets (storage.Secrets, such as the key of the SCRAM decoys) are in
// "secrets", each under its name. DeleteUserData drops a user's bucket in
// every per-user store (roster, kv, offline, archive with its chunks and
// index entries).
//
// Data of services and domains (storage.ServiceData) is in "service": a
// nested bucket per namespace (such as "muc:conference.example.org"),
// named by it and dropped with its last entry, holds each entry under its
// key as a record of a version byte, the expiry (if any) and the value.
// Beside it, "service-expiry" indexes the entries that have an expiry by
// the 8-byte expiry (Unix microseconds, big-endian, sign bit flipped, so in
// time order), the namespace's length and the namespace, and the key; the
// expiry sweep reads it from the front and so reads only what it removes.
// Both buckets are made by the first put; service.go has the formats.
// DeleteUserData does not look there.
//
// The offline store ("offline") keeps each user's messages in a nested
// bucket "msgs" under 8-byte big-endian keys, the offline Seq, so they are
// in arrival order. The archive ("archive") keeps them in chunks: one value
// holds up to 64 consecutive messages of an archive, as the applier wrote
// them in one round (see below). Chunks are in a top-level bucket
// "archive-chunks" in the order they were written, and each user's "msgs"
// maps the 8-byte big-endian ID of a chunk's first message to it, so
// chunks are found in time order. Paging, queries by time or
// ID and expiry all seek with a cursor and never scan what they keep
// beyond one chunk at each end. Beside them, a small "meta" record holds
// the last Seq or ID assigned (kept when messages expire, so numbers never
// go back) and the count, so counts cost one read. The archive also has an
// index "with" keyed by the other party's bare JID (and full JID, if any),
// a 0x00 byte and the key of a chunk holding messages with that party, so
// a query With a rare party costs O(log n + chunk size + results). The
// full record formats are in offline.go, archive.go and chunk.go. Expiry
// visits each user's bucket and deletes from the front while messages are
// older than the limit (whole chunks, then the front of the chunk holding
// the limit, written again without them), in transactions of at most
// 10,000 deletions.
//
// # Archive log
//
// AppendArchive returns only once the message is durable, but not yet in
// the bbolt file: it is a record in the archive's write-ahead log, a
// directory <database>.archive-wal (mode 0700) of segment files (mode
// 0600) next to the database file. Appends take their ID under a lock
// (the last ID of each archive is kept in memory while it has appends in
// flight) and add their record to a buffer; one goroutine writes
// everything buffered with one write and one fdatasync and then answers
// every append of that batch. A lone writer waits for exactly one write
// and fdatasync; when the last batch held several records, the next
// waits 200 µs for more. Segments are created in advance, filled with
// zeros, so that a batch does not grow the file and its fdatasync flushes
// no file system metadata.
//
// Another goroutine, the applier, applies the synced records to the bbolt
// file in one transaction per round, each user's records of the round as
// one chunk (or a few): when 4,096 records are pending, 250 ms after the
// first, or when a read needs them. A round first moves new
// appends to a new segment, and deletes the segments it applied once its
// transaction has committed. QueryArchive and ArchiveStats for a user with
// pending records, ExpireArchive and DeleteArchive first have the applier
// apply them, so reads see every acknowledged append; reads of other users
// never wait. DeleteArchive logs the deletion as a record, then waits for
// its round, so a replay cannot bring the messages back.
//
// Open replays the segments a crash left behind, in order, and deletes
// them. Applying is idempotent: a record whose ID is not above its
// archive's last ID was applied before. A damaged record at the end of the
// last segment with data was the torn write of a batch never acknowledged
// and is ignored, as are records of its batch after it; a damaged record
// anywhere else makes Open fail with an error wrapping ErrCorrupt. Close
// applies every record and deletes the log.
//
// # Group commit
//
// PushOffline returns only once the message is durable. Concurrent calls
// share one transaction and one fsync: a goroutine owned by the Store
// takes every request queued, commits them together and answers each;
// requests that arrive meanwhile form the next batch. A lone writer waits
// for exactly one commit (no batching delay, unlike bolt's DB.Batch). If a
// batch fails, each of its requests is retried on its own, so one bad
// request cannot fail the others.
//
// # Performance
//
// Measured on the development machine (2 shared cores of an AMD EPYC, ext4
// on a virtual disk) with
//
//	go test -run '^$' -bench . -benchmem ./storage/bbolt/
//
// on one user's archive of 1,000,000 messages of about 200 bytes, with
// 100,000 messages of 1,000 other users in the same file (built in about
// 8 s, in chunks of 64 messages, the largest the applier writes), page
// cache warm; ranges are over two runs on a machine shared with other
// work:
//
//	query                                    µs/op    p99 µs
//	newest 50 (Reverse, Max 50)               7-8      39-45
//	50 before an ID in the middle             6-8      37-47
//	newest 50 With a party of 1 in 10,000    79-93    145-182
//	50 With a full JID, from the middle      79-96    142-151
//
// Queries With a party read one whole chunk per index entry, so they cost
// more than when each message had its own key (21-22 and 20-27 µs) and
// the other queries slightly less. Queries first check, in a map, that
// the user has no appends waiting in the archive log.
//
// Durable appends (through the archive log): one goroutine 115-145 µs per
// append (one write and fdatasync each); 50 goroutines 150,000-230,000
// appends/s, 37-49 appends per fdatasync, with the applier running
// meanwhile. Before the log, when each batch of appends was a bbolt
// transaction, these were 310-420 µs and 14,000-15,500 appends/s. The
// applier costs 1.6-1.7 µs per record (BenchmarkApplyWAL: rounds of 4,096
// records over 100 users, about 510 pages written and 10,300 allocations
// per round); when each message had its own key and two index entries it
// cost 3.8-3.9 µs, 1,050 pages and 61,500 allocations.
//
// # Deleted data
//
// Like most databases, bbolt does not overwrite the pages that deleted
// data occupied; they are reused for later writes. Until then, a deleted
// account's bytes can remain in the file even though no bucket or key
// refers to them. Compacting the database into a new file (Compact, kiezd compact)
// removes them.
//
// The archive log holds each message, with its user and party, only until
// the applier has applied it: normally a fraction of a second, at most
// until the next Open after a crash. Segments are then deleted, not
// overwritten, so like deleted pages their blocks keep the bytes on the
// disk until the file system reuses them. DeleteArchive returns only once
// no segment holds the deleted archive's messages.
//
// # Concurrency
//
// A Store is safe for concurrent use. Only one process may open a database
// file at a time; Open gives up after Options.Timeout with an error wrapping
// ErrLocked.
package bbolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrLocked is returned, wrapped, by Open when another process holds the
// database file open.
var ErrLocked = errors.New("bbolt: database is locked by another process")

// ErrCorrupt is returned, wrapped, when a stored record cannot be decoded.
// The record is left as it is; deleting the account removes it. Open
// returns it, wrapped, if the archive log holds a damaged record that had
// been acknowledged (see the package documentation).
var ErrCorrupt = errors.New("bbolt: corrupt record")

// Names of buckets and keys. The layout is described in the package
// documentation.
const (
	accountsBucket = "accounts"
	accountKey     = "account"
)

// defaultTimeout is how long Open waits for the file lock if
// Options.Timeout is zero.
const defaultTimeout = time.Second

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Timeout is how long Open waits for another process to release the
	// database file before failing with ErrLocked. Zero or less means one
	// second.
	Timeout time.Duration
}

// Store is a storage backend backed by one bbolt file. Create it with Open
// and release it with Close. A Store is safe for concurrent use.
type Store struct {
	db     *bolt.DB
	commit *committer // group commit of offline pushes
	wal    *wal       // the archive's write-ahead log
}

// Open opens the database file at path, creating it (mode 0600) and its
// parent directory (mode 0700) if they do not exist, and creates any
// missing top-level buckets. If another process has the file open, Open
// waits up to opts.Timeout and then returns an error wrapping ErrLocked.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bbolt: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("bbolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{accountsBucket, offlineBucket, archiveBucket, archiveChunks} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("bucket %q: %w", name, err)
			}
		}
		return createMUCBuckets(tx)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bbolt: open %s: %w", path, err)
	}
	w, err := openWAL(db, path+walDirSuffix)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bbolt: open %s: %w", path, err)
	}
	return &Store{db: db, commit: newCommitter(db), wal: w}, nil
}

// Close closes the database file. It commits the appends already taken,
// applies the archive's log to the file and deletes it, waits for running
// transactions to finish and fails appends that come later. Using the
// Store after Close returns errors. If the log cannot be applied, Close
// reports it and leaves it for the next Open to replay.
func (s *Store) Close() error {
	werr := s.wal.close()
	s.commit.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("bbolt: close: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("bbolt: close: %w", werr)
	}
	return nil
}

// abandon releases the Store as a crash would, for tests: the archive's
// log is neither written further nor applied, and stays on disk for the
// next Open to replay.
func (s *Store) abandon() error {
	s.wal.abandonNow()
	s.commit.close()
	return s.db.Close()
}

// userBucket returns user's nested bucket in the top-level bucket top, or
// nil.
func userBucket(tx *bolt.Tx, top, user string) *bolt.Bucket {
	b := tx.Bucket([]byte(top))
	if b == nil || user == "" {
		return nil
	}
	return b.Bucket([]byte(user))
}

// dropUser deletes user's nested bucket in the top-level bucket top. It
// looks first in a read transaction, so deleting a user who has nothing
// there costs no write.
func (s *Store) dropUser(ctx context.Context, top, user string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var found bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		found = userBucket(tx, top, user) != nil
		return nil
	})
	if !found {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(top))
		if b == nil {
			return nil
		}
		err := b.DeleteBucket([]byte(user))
		if errors.Is(err, berrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

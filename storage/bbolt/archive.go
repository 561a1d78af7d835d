package bbolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

// The archive store (storage.Archive) is the top-level bucket "archive".
// Inside it each user has a nested bucket named by their bare JID, holding:
//
//	"meta"  a record: version byte 1, then uvarints last ID and count
//	"msgs"  a bucket of messages keyed by their ID as 8 bytes big-endian,
//	        so in time order
//	"with"  the index by party: for each message, the key
//	        bare JID of With, 0x00, ID (8 bytes big-endian)
//	        and, if With is a full JID, also the key
//	        full JID, 0x00, ID
//	        with empty values
//
// A message record is version byte 1, With as uvarint length and bytes,
// then the message bytes to the end.
//
// Queries seek: by ID range in "msgs", or, With a party, in that party's
// range of "with" and then one Get per message returned, so their cost does
// not depend on how many messages the user has with other parties. A JID
// holds no 0x00 byte, so one JID's index range holds no other JID's keys.
// Stats reads "meta" and the two ends of "msgs". The last ID assigned stays
// in "meta" when messages expire, so IDs keep increasing; DeleteArchive
// drops the whole bucket, and a new archive may start again lower.
const (
	archiveBucket = "archive"
	archiveMeta   = "meta"
	archiveMsgs   = "msgs"
	archiveWith   = "with"
	archiveV1     = 1
)

var _ storage.Archive = (*Store)(nil)

// archiveMetaRec is a user's "meta" record.
type archiveMetaRec struct {
	last, count uint64
}

func encodeArchiveMeta(m archiveMetaRec) []byte {
	b := []byte{archiveV1}
	b = binary.AppendUvarint(b, m.last)
	return binary.AppendUvarint(b, m.count)
}

func decodeArchiveMeta(data []byte) (archiveMetaRec, error) {
	if data == nil {
		return archiveMetaRec{}, nil
	}
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != archiveV1 {
		d.fail("unknown archive meta version %d", v)
	}
	m := archiveMetaRec{last: d.uvarint("last ID"), count: d.uvarint("count")}
	if d.err == nil && len(d.data) != 0 {
		d.fail("%d trailing bytes", len(d.data))
	}
	if d.err != nil {
		return archiveMetaRec{}, fmt.Errorf("%w: archive meta: %w", ErrCorrupt, d.err)
	}
	return m, nil
}

func encodeArchiveMsg(with string, data []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(with)+len(data))
	b = append(b, archiveV1)
	b = appendBytes(b, []byte(with))
	return append(b, data...)
}

// decodeArchiveMsg decodes a message record; Data, a copy, only if
// withData.
func decodeArchiveMsg(key, data []byte, withData bool) (storage.ArchivedMessage, error) {
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != archiveV1 {
		d.fail("unknown archive message version %d", v)
	}
	with := d.field("with")
	if d.err != nil || len(key) != 8 {
		return storage.ArchivedMessage{}, fmt.Errorf("%w: archived message %x: %v", ErrCorrupt, key, d.err)
	}
	m := storage.ArchivedMessage{ID: binary.BigEndian.Uint64(key), With: string(with)}
	if withData {
		m.Data = bytes.Clone(d.data)
		if m.Data == nil {
			m.Data = []byte{}
		}
	}
	return m, nil
}

// withKeys returns the index keys of a message with the party with.
func withKeys(with string, id uint64) [][]byte {
	bare, _, full := strings.Cut(with, "/")
	keys := [][]byte{withKey(bare, id)}
	if full {
		keys = append(keys, withKey(with, id))
	}
	return keys
}

// withKey returns the index key of jid and id.
func withKey(jid string, id uint64) []byte {
	k := make([]byte, 0, len(jid)+9)
	k = append(k, jid...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, id)
}

// AppendArchive implements storage.Archive. The message is durable in the
// archive's log when it returns; concurrent appends share one write and
// fdatasync, and the applier moves them to the database file later.
func (s *Store) AppendArchive(ctx context.Context, user string, at time.Time, with string, data []byte) (uint64, error) {
	if user == "" {
		return 0, errors.New("bbolt: append archive: empty user")
	}
	if strings.IndexByte(with, 0) >= 0 {
		return 0, errors.New("bbolt: append archive: NUL in the JID")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	id, err := s.wal.append(user, storage.TimeID(at), with, encodeArchiveMsg(with, data))
	if err != nil {
		return 0, fmt.Errorf("bbolt: append archive of %q: %w", user, err)
	}
	return id, nil
}

// applyArchive makes the records in the archive's log that concern user
// (all of them if user is empty) reach the database file, so that reads of
// it see every acknowledged append. A user without pending records costs
// one map lookup.
func (s *Store) applyArchive(ctx context.Context, user string) error {
	if user != "" && !s.wal.pendingFor(user) {
		return nil
	}
	return s.wal.applyNow(ctx)
}

// appendArchiveTx adds the message record rec with the party with to user's
// archive with an ID of at least want, and returns the ID. It bypasses the
// archive's log: only the benchmarks use it, to build large archives fast.
func appendArchiveTx(tx *bolt.Tx, user string, want uint64, with string, rec []byte) (uint64, error) {
	top, err := tx.CreateBucketIfNotExists([]byte(archiveBucket))
	if err != nil {
		return 0, err
	}
	ub, err := top.CreateBucketIfNotExists([]byte(user))
	if err != nil {
		return 0, err
	}
	meta, err := decodeArchiveMeta(ub.Get([]byte(archiveMeta)))
	if err != nil {
		return 0, err
	}
	msgs, err := ub.CreateBucketIfNotExists([]byte(archiveMsgs))
	if err != nil {
		return 0, err
	}
	idx, err := ub.CreateBucketIfNotExists([]byte(archiveWith))
	if err != nil {
		return 0, err
	}
	msgs.FillPercent = 0.95 // keys only grow
	id := max(want, meta.last+1)
	meta.last = id
	meta.count++
	if err := msgs.Put(be64(id), rec); err != nil {
		return 0, err
	}
	for _, k := range withKeys(with, id) {
		if err := idx.Put(k, nil); err != nil {
			return 0, err
		}
	}
	return id, ub.Put([]byte(archiveMeta), encodeArchiveMeta(meta))
}

// QueryArchive implements storage.Archive.
func (s *Store) QueryArchive(ctx context.Context, user string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	if err := ctx.Err(); err != nil {
		return storage.ArchivePage{}, err
	}
	if q.Max < 1 {
		return storage.ArchivePage{}, fmt.Errorf("bbolt: query archive: Max %d is below 1", q.Max)
	}
	if err := s.applyArchive(ctx, user); err != nil {
		return storage.ArchivePage{}, fmt.Errorf("bbolt: query archive of %q: %w", user, err)
	}
	var page storage.ArchivePage
	err := s.db.View(func(tx *bolt.Tx) error {
		page = storage.ArchivePage{Complete: true}
		ub := userBucket(tx, archiveBucket, user)
		if ub == nil {
			return nil
		}
		msgs := ub.Bucket([]byte(archiveMsgs))
		if msgs == nil {
			return nil
		}
		// IDs in [lo, hi]; lo > hi for an empty range.
		lo, hi := q.After+1, q.Before-1
		if q.After == ^uint64(0) {
			return nil
		}
		if q.Before == 0 {
			hi = ^uint64(0)
		}
		if lo > hi {
			return nil
		}
		var next iterator
		switch {
		case len(q.IDs) > 0:
			next = idsIter(msgs, q.IDs, lo, hi, q.With, q.Reverse)
		case q.With != "":
			idx := ub.Bucket([]byte(archiveWith))
			if idx == nil {
				return nil
			}
			next = withIter(msgs, idx, q.With, lo, hi, q.Reverse)
		default:
			next = rangeIter(msgs, lo, hi, q.Reverse)
		}
		for {
			k, v, err := next()
			if err != nil {
				return err
			}
			if k == nil {
				break
			}
			if len(page.Messages) == q.Max {
				page.Complete = false
				break
			}
			m, err := decodeArchiveMsg(k, v, true)
			if err != nil {
				return err
			}
			page.Messages = append(page.Messages, m)
		}
		return nil
	})
	if err != nil {
		return storage.ArchivePage{}, fmt.Errorf("bbolt: query archive of %q: %w", user, err)
	}
	if q.Reverse {
		slices.Reverse(page.Messages)
	}
	return page, nil
}

// An iterator returns the key and value of the next matching message in
// "msgs", in the query's direction, or a nil key at the end.
type iterator func() (k, v []byte, err error)

// rangeIter walks msgs over IDs lo to hi.
func rangeIter(msgs *bolt.Bucket, lo, hi uint64, reverse bool) iterator {
	c := msgs.Cursor()
	started := false
	return func() ([]byte, []byte, error) {
		var k, v []byte
		switch {
		case !started && !reverse:
			k, v = c.Seek(be64(lo))
		case !started && reverse:
			k, v = seekLast(c, be64(hi))
		case reverse:
			k, v = c.Prev()
		default:
			k, v = c.Next()
		}
		started = true
		if k == nil || len(k) != 8 {
			return nil, nil, nil
		}
		if id := binary.BigEndian.Uint64(k); id < lo || id > hi {
			return nil, nil, nil
		}
		return k, v, nil
	}
}

// seekLast positions c at the last key <= key and returns it.
func seekLast(c *bolt.Cursor, key []byte) ([]byte, []byte) {
	k, v := c.Seek(key)
	switch {
	case k == nil:
		return c.Last()
	case bytes.Equal(k, key):
		return k, v
	default:
		return c.Prev()
	}
}

// withIter walks the index entries of with over IDs lo to hi and returns
// their messages.
func withIter(msgs, idx *bolt.Bucket, with string, lo, hi uint64, reverse bool) iterator {
	c := idx.Cursor()
	prefix := withKey(with, 0)[:len(with)+1]
	started := false
	return func() ([]byte, []byte, error) {
		var k []byte
		switch {
		case !started && !reverse:
			k, _ = c.Seek(withKey(with, lo))
		case !started && reverse:
			k, _ = seekLast(c, withKey(with, hi))
		case reverse:
			k, _ = c.Prev()
		default:
			k, _ = c.Next()
		}
		started = true
		if k == nil || len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
			return nil, nil, nil
		}
		id := k[len(prefix):]
		if n := binary.BigEndian.Uint64(id); n < lo || n > hi {
			return nil, nil, nil
		}
		v := msgs.Get(id)
		if v == nil {
			return nil, nil, fmt.Errorf("%w: index entry for the missing message %x", ErrCorrupt, id)
		}
		return id, v, nil
	}
}

// idsIter returns the messages with the given IDs between lo and hi and,
// if with is not empty, with that party.
func idsIter(msgs *bolt.Bucket, ids []uint64, lo, hi uint64, with string, reverse bool) iterator {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if reverse {
		slices.Reverse(ids)
	}
	return func() ([]byte, []byte, error) {
		for len(ids) > 0 {
			id := ids[0]
			ids = ids[1:]
			if id < lo || id > hi {
				continue
			}
			k := be64(id)
			v := msgs.Get(k)
			if v == nil {
				continue
			}
			if with != "" {
				m, err := decodeArchiveMsg(k, v, false)
				if err != nil {
					return nil, nil, err
				}
				if !matchWith(m.With, with) {
					continue
				}
			}
			return k, v, nil
		}
		return nil, nil, nil
	}
}

// matchWith reports whether a message with the party got passes a query
// With want (XEP-0313 §4.1.1).
func matchWith(got, want string) bool {
	if got == want {
		return true
	}
	bare, _, _ := strings.Cut(got, "/")
	return bare == want
}

// ArchiveStats implements storage.Archive. It reads the user's meta record
// and the first and last message.
func (s *Store) ArchiveStats(ctx context.Context, user string) (storage.ArchiveStats, error) {
	if err := ctx.Err(); err != nil {
		return storage.ArchiveStats{}, err
	}
	if err := s.applyArchive(ctx, user); err != nil {
		return storage.ArchiveStats{}, fmt.Errorf("bbolt: archive stats of %q: %w", user, err)
	}
	var st storage.ArchiveStats
	err := s.db.View(func(tx *bolt.Tx) error {
		st = storage.ArchiveStats{}
		ub := userBucket(tx, archiveBucket, user)
		if ub == nil {
			return nil
		}
		meta, err := decodeArchiveMeta(ub.Get([]byte(archiveMeta)))
		if err != nil {
			return err
		}
		msgs := ub.Bucket([]byte(archiveMsgs))
		if msgs == nil || meta.count == 0 {
			return nil
		}
		c := msgs.Cursor()
		k, v := c.First()
		if k == nil {
			return nil
		}
		if st.First, err = decodeArchiveMsg(k, v, false); err != nil {
			return err
		}
		k, v = c.Last()
		if st.Last, err = decodeArchiveMsg(k, v, false); err != nil {
			return err
		}
		st.Count = int(meta.count)
		return nil
	})
	if err != nil {
		return storage.ArchiveStats{}, fmt.Errorf("bbolt: archive stats of %q: %w", user, err)
	}
	return st, nil
}

// ExpireArchive implements storage.Archive. It first applies the archive's
// log, then visits each user's bucket once and reads no message it keeps
// but the first of each archive.
func (s *Store) ExpireArchive(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.applyArchive(ctx, ""); err != nil {
		return 0, fmt.Errorf("bbolt: expire archive: %w", err)
	}
	cut := storage.TimeID(t)
	if t.UnixMicro() >= 0 && t.Nanosecond()%1000 != 0 {
		cut++ // archived before t, to the nanosecond
	}
	n, err := s.expire(ctx, archiveBucket, func(ub *bolt.Bucket, max int) (int, error) {
		return deleteArchiveFront(ub, max, cut)
	})
	if err != nil {
		return n, fmt.Errorf("bbolt: expire archive: %w", err)
	}
	return n, nil
}

// deleteArchiveFront deletes at most max messages with IDs below cut from
// the front of the archive in ub, with their index entries, keeps the count
// right and returns how many it deleted.
func deleteArchiveFront(ub *bolt.Bucket, max int, cut uint64) (int, error) {
	msgs := ub.Bucket([]byte(archiveMsgs))
	idx := ub.Bucket([]byte(archiveWith))
	if msgs == nil || idx == nil {
		return 0, nil
	}
	var gone []storage.ArchivedMessage
	c := msgs.Cursor()
	for k, v := c.First(); k != nil && len(gone) < max; k, v = c.Next() {
		if len(k) != 8 || binary.BigEndian.Uint64(k) >= cut {
			break
		}
		m, err := decodeArchiveMsg(k, v, false)
		if err != nil {
			return 0, err
		}
		gone = append(gone, m)
	}
	if len(gone) == 0 {
		return 0, nil
	}
	for _, m := range gone {
		if err := msgs.Delete(be64(m.ID)); err != nil {
			return 0, err
		}
		for _, k := range withKeys(m.With, m.ID) {
			if err := idx.Delete(k); err != nil {
				return 0, err
			}
		}
	}
	meta, err := decodeArchiveMeta(ub.Get([]byte(archiveMeta)))
	if err != nil {
		return 0, err
	}
	meta.count -= min(meta.count, uint64(len(gone)))
	if err := ub.Put([]byte(archiveMeta), encodeArchiveMeta(meta)); err != nil {
		return 0, err
	}
	return len(gone), nil
}

// DeleteArchive implements storage.Archive. It logs the deletion, so that
// no replay of the log after a crash can bring the messages back, and
// returns once the applier has dropped the user's bucket and deleted the
// log segments that held their messages.
func (s *Store) DeleteArchive(ctx context.Context, user string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if user == "" {
		return nil
	}
	if err := s.wal.deleteUser(user); err != nil {
		return fmt.Errorf("bbolt: delete archive of %q: %w", user, err)
	}
	if err := s.wal.applyNow(ctx); err != nil {
		return fmt.Errorf("bbolt: delete archive of %q: %w", user, err)
	}
	return nil
}

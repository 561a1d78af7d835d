package bbolt

import (
	"bytes"
	"cmp"
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
//	"msgs"  a bucket of the archive's chunks of messages (see chunk.go):
//	        for each, the ID of its first message as 8 bytes big-endian
//	        (so in time order) and, as value, the chunk's key in the
//	        top-level bucket "archive-chunks"
//	"with"  the index by party: for each chunk and each party of its
//	        messages, the key
//	        bare JID of With, 0x00, the chunk's key
//	        and, if With is a full JID, also the key
//	        full JID, 0x00, the chunk's key
//	        with empty values
//
// The archive's log (wal.go) holds messages as message records: version
// byte 1, With as uvarint length and bytes, then the message bytes to the
// end.
//
// Queries seek: by ID range to the chunk holding the lower (or upper)
// bound in "msgs", or, With a party, in that party's range of "with" and
// then one Get per chunk listed (in "msgs" and "archive-chunks"), whose messages with other parties they
// skip; so their cost is O(log n + chunk size + returned messages), and
// does not depend on how many messages the user has with other parties. A
// JID holds no 0x00 byte, so one JID's index range holds no other JID's
// keys. Stats reads "meta" and the two ends of "msgs". Expiry deletes from
// the front of "msgs" (whole chunks, then the front of the chunk holding
// the cut, written again under its new first ID), with the index entries
// and the count: ExpireArchive in each user's bucket, ExpireUserArchive in
// one. The last ID
// assigned stays in "meta" when messages expire, so IDs keep increasing;
// DeleteArchive drops the whole bucket, and a new archive may start again
// lower.
const (
	archiveBucket = "archive"
	archiveMeta   = "meta"
	archiveMsgs   = "msgs"
	archiveChunks = "archive-chunks"
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

// withKey returns the index key of jid and id.
func withKey(jid string, id uint64) []byte {
	return appendWithKey(make([]byte, 0, len(jid)+9), jid, id)
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
// archive's log: only tests use it, to build archives fast.
func appendArchiveTx(tx *bolt.Tx, user string, want uint64, with string, rec []byte) (uint64, error) {
	var meta archiveMetaRec
	if ub := userBucket(tx, archiveBucket, user); ub != nil {
		var err error
		if meta, err = decodeArchiveMeta(ub.Get([]byte(archiveMeta))); err != nil {
			return 0, err
		}
	}
	id := max(want, meta.last+1)
	return id, applyWAL(tx, []walEntry{{kind: walAppend, user: user, id: id, with: with, rec: rec}})
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
		qs := &chunkScan{chunks: tx.Bucket([]byte(archiveChunks)), page: &page, max: q.Max, lo: lo, hi: hi, with: q.With, reverse: q.Reverse, recs: make([]chunkRec, 0, chunkMax)}
		switch {
		case len(q.IDs) > 0:
			return qs.ids(msgs, q.IDs)
		case q.With != "":
			idx := ub.Bucket([]byte(archiveWith))
			if idx == nil {
				return nil
			}
			return qs.withIndex(msgs, idx)
		default:
			return qs.scanRange(msgs)
		}
	})
	if err != nil {
		return storage.ArchivePage{}, fmt.Errorf("bbolt: query archive of %q: %w", user, err)
	}
	if q.Reverse {
		slices.Reverse(page.Messages)
	}
	return page, nil
}

// chunkScan is a query reading chunks: it collects the messages with IDs
// in [lo, hi] and, if with is set, that party, in the query's direction,
// until it has one more than max.
type chunkScan struct {
	chunks  *bolt.Bucket
	page    *storage.ArchivePage
	max     int
	lo, hi  uint64
	with    string
	reverse bool
	done    bool
	recs    []chunkRec
}

// load decodes the chunk k (the first ID), whose value is in
// "archive-chunks" under ref, into qs.recs.
func (qs *chunkScan) load(k, ref []byte) error {
	v, err := chunkAt(qs.chunks, k, ref)
	if err != nil {
		return err
	}
	recs, err := decodeChunk(k, v, qs.recs)
	if err != nil {
		return err
	}
	qs.recs = recs
	return nil
}

// chunk adds the matching messages of the chunk k (the first ID) whose
// value is in "archive-chunks" under ref.
func (qs *chunkScan) chunk(k, ref []byte) error {
	if err := qs.load(k, ref); err != nil {
		return err
	}
	recs := qs.recs
	for i := range recs {
		r := &recs[i]
		if qs.reverse {
			r = &recs[len(recs)-1-i]
		}
		if r.id < qs.lo || r.id > qs.hi || (qs.with != "" && !matchWithBytes(r.with, qs.with)) {
			continue
		}
		if qs.add(r) {
			break
		}
	}
	return nil
}

// add adds r to the page, or marks it incomplete if full, and reports
// whether the scan is done.
func (qs *chunkScan) add(r *chunkRec) bool {
	if len(qs.page.Messages) == qs.max {
		qs.page.Complete = false
		qs.done = true
		return true
	}
	data := make([]byte, len(r.data))
	copy(data, r.data)
	qs.page.Messages = append(qs.page.Messages, storage.ArchivedMessage{ID: r.id, With: string(r.with), Data: data})
	return false
}

// scanRange reads the chunks that may hold IDs lo to hi.
func (qs *chunkScan) scanRange(msgs *bolt.Bucket) error {
	c := msgs.Cursor()
	if qs.reverse {
		for k, v := seekLast(c, be64(qs.hi)); k != nil && !qs.done; k, v = c.Prev() {
			if err := qs.chunk(k, v); err != nil {
				return err
			}
			if binary.BigEndian.Uint64(k) <= qs.lo {
				break
			}
		}
		return nil
	}
	k, v := seekLast(c, be64(qs.lo))
	if k == nil {
		k, v = c.First()
	}
	for ; k != nil && !qs.done; k, v = c.Next() {
		if len(k) == 8 && binary.BigEndian.Uint64(k) > qs.hi {
			break
		}
		if err := qs.chunk(k, v); err != nil {
			return err
		}
	}
	return nil
}

// withIndex reads the chunks the index lists for with that may hold IDs
// lo to hi.
func (qs *chunkScan) withIndex(msgs, idx *bolt.Bucket) error {
	prefix := withKey(qs.with, 0)[:len(qs.with)+1]
	ic := idx.Cursor()
	valid := func(k []byte) bool {
		return k != nil && len(k) == len(prefix)+8 && bytes.HasPrefix(k, prefix)
	}
	get := func(k []byte) ([]byte, []byte, error) {
		id := k[len(prefix):]
		v := msgs.Get(id)
		if v == nil {
			return nil, nil, fmt.Errorf("%w: index entry for the missing chunk %x", ErrCorrupt, id)
		}
		return id, v, nil
	}
	if qs.reverse {
		for k, _ := seekLast(ic, withKey(qs.with, qs.hi)); valid(k) && !qs.done; k, _ = ic.Prev() {
			ck, v, err := get(k)
			if err != nil {
				return err
			}
			if err := qs.chunk(ck, v); err != nil {
				return err
			}
			if binary.BigEndian.Uint64(ck) <= qs.lo {
				break
			}
		}
		return nil
	}
	// The chunk that holds lo may start before it.
	start := qs.lo
	if k, _ := seekLast(msgs.Cursor(), be64(qs.lo)); len(k) == 8 {
		start = binary.BigEndian.Uint64(k)
	}
	for k, _ := ic.Seek(withKey(qs.with, start)); valid(k) && !qs.done; k, _ = ic.Next() {
		ck, v, err := get(k)
		if err != nil {
			return err
		}
		if binary.BigEndian.Uint64(ck) > qs.hi {
			break
		}
		if err := qs.chunk(ck, v); err != nil {
			return err
		}
	}
	return nil
}

// ids reads the messages with the given IDs, one chunk lookup each.
func (qs *chunkScan) ids(msgs *bolt.Bucket, ids []uint64) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if qs.reverse {
		slices.Reverse(ids)
	}
	c := msgs.Cursor()
	var cur []byte // the key of the chunk in qs.recs
	for _, id := range ids {
		if qs.done {
			break
		}
		if id < qs.lo || id > qs.hi {
			continue
		}
		k, ref := seekLast(c, be64(id))
		if k == nil {
			continue
		}
		if !bytes.Equal(k, cur) {
			if err := qs.load(k, ref); err != nil {
				return err
			}
			cur = bytes.Clone(k)
		}
		i, ok := slices.BinarySearchFunc(qs.recs, id, func(r chunkRec, id uint64) int { return cmp.Compare(r.id, id) })
		if !ok || (qs.with != "" && !matchWithBytes(qs.recs[i].with, qs.with)) {
			continue
		}
		qs.add(&qs.recs[i])
	}
	return nil
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

// ArchiveStats implements storage.Archive. It reads the user's meta record
// and the first and last chunk.
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
		chunks := tx.Bucket([]byte(archiveChunks))
		c := msgs.Cursor()
		k, ref := c.First()
		if k == nil {
			return nil
		}
		v, err := chunkAt(chunks, k, ref)
		if err != nil {
			return err
		}
		recs, err := decodeChunk(k, v, nil)
		if err != nil {
			return err
		}
		st.First = storage.ArchivedMessage{ID: recs[0].id, With: string(recs[0].with)}
		k, ref = c.Last()
		if v, err = chunkAt(chunks, k, ref); err != nil {
			return err
		}
		if recs, err = decodeChunk(k, v, recs); err != nil {
			return err
		}
		r := recs[len(recs)-1]
		st.Last = storage.ArchivedMessage{ID: r.id, With: string(r.with)}
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
func (s *Store) ExpireArchive(ctx context.Context, t time.Time, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.applyArchive(ctx, ""); err != nil {
		return 0, fmt.Errorf("bbolt: expire archive: %w", err)
	}
	cut := expireCut(t)
	n, err := s.expire(ctx, archiveBucket, limit, func(ub *bolt.Bucket, max int) (int, error) {
		return deleteArchiveFront(ub, max, cut)
	})
	if err != nil {
		return n, fmt.Errorf("bbolt: expire archive: %w", err)
	}
	return n, nil
}

// expireCut returns the lowest ID kept by an expiry at t: messages
// archived before t, to the nanosecond.
func expireCut(t time.Time) uint64 {
	cut := storage.TimeID(t)
	if t.UnixMicro() >= 0 && t.Nanosecond()%1000 != 0 {
		cut++
	}
	return cut
}

// ExpireUserArchive implements storage.Archive. It applies the archive's
// log if it holds records of user's, then deletes from the front of
// user's archive only, as ExpireArchive does for each user (whole chunks,
// the front of the chunk holding the cut), in transactions of at most
// expireBatch messages, until it has deleted limit (limit <= 0: no
// limit): it reads no message it keeps but those of the
// chunk holding the cut, and no other archive. Each transaction is
// durable when it commits; replaying the log after a crash does not bring
// the messages back, since it skips IDs up to the last one in "meta".
func (s *Store) ExpireUserArchive(ctx context.Context, user string, t time.Time, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if user == "" {
		return 0, nil
	}
	if err := s.applyArchive(ctx, user); err != nil {
		return 0, fmt.Errorf("bbolt: expire archive of %q: %w", user, err)
	}
	cut := expireCut(t)
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		if limit > 0 && total >= limit {
			return total, nil
		}
		batch := expireBatch
		if limit > 0 {
			batch = min(batch, limit-total)
		}
		// Nothing to delete costs a read transaction, not a write.
		var due bool
		err := s.db.View(func(tx *bolt.Tx) error {
			ub := userBucket(tx, archiveBucket, user)
			if ub == nil {
				return nil
			}
			msgs := ub.Bucket([]byte(archiveMsgs))
			if msgs == nil {
				return nil
			}
			k, _ := msgs.Cursor().First()
			due = len(k) == 8 && binary.BigEndian.Uint64(k) < cut
			return nil
		})
		if err != nil || !due {
			if err != nil {
				err = fmt.Errorf("bbolt: expire archive of %q: %w", user, err)
			}
			return total, err
		}
		var n int
		err = s.db.Update(func(tx *bolt.Tx) error {
			n = 0
			ub := userBucket(tx, archiveBucket, user)
			if ub == nil {
				return nil
			}
			var err error
			n, err = deleteArchiveFront(ub, batch, cut)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("bbolt: expire archive of %q: %w", user, err)
		}
		total += n
		if n < batch {
			return total, nil
		}
	}
}

// deleteArchiveFront deletes at most max messages with IDs below cut from
// the front of the archive in ub: whole chunks, and the front of the chunk
// holding cut, which it writes again under its new first ID, with their
// index entries. It keeps the count right and returns how many it deleted.
func deleteArchiveFront(ub *bolt.Bucket, max int, cut uint64) (int, error) {
	msgs := ub.Bucket([]byte(archiveMsgs))
	idx := ub.Bucket([]byte(archiveWith))
	chunks := ub.Tx().Bucket([]byte(archiveChunks))
	if msgs == nil || idx == nil {
		return 0, nil
	}
	deleted := 0
	var recs []chunkRec
	var jids []string
	c := msgs.Cursor()
	for k, ref := c.First(); k != nil && deleted < max; k, ref = c.First() {
		if len(k) == 8 && binary.BigEndian.Uint64(k) >= cut {
			break
		}
		v, err := chunkAt(chunks, k, ref)
		if err != nil {
			return 0, err
		}
		ref = bytes.Clone(ref)
		if recs, err = decodeChunk(k, v, recs); err != nil {
			return 0, err
		}
		n := 0
		for n < len(recs) && n < max-deleted && recs[n].id < cut {
			n++
		}
		first := binary.BigEndian.Uint64(k)
		jids = chunkJIDs(jids[:0], func(i int) string { return string(recs[i].with) }, len(recs))
		// Encode what stays before the bucket changes under recs.
		var rest []byte
		var restJIDs []string
		if n < len(recs) {
			rest = []byte{archiveChunkV}
			for _, r := range recs[n:] {
				rest = appendChunkRec(rest, recs[n].id, r.id, string(r.with), r.data)
			}
			restJIDs = chunkJIDs(nil, func(i int) string { return string(recs[n+i].with) }, len(recs)-n)
		}
		restFirst := uint64(0)
		if n < len(recs) {
			restFirst = recs[n].id
		}
		for _, j := range jids {
			if err := idx.Delete(withKey(j, first)); err != nil {
				return 0, err
			}
		}
		if err := msgs.Delete(be64(first)); err != nil {
			return 0, err
		}
		deleted += n
		if rest == nil {
			if err := chunks.Delete(ref); err != nil {
				return 0, err
			}
			continue
		}
		if err := chunks.Put(ref, rest); err != nil {
			return 0, err
		}
		if err := msgs.Put(be64(restFirst), ref); err != nil {
			return 0, err
		}
		for _, j := range restJIDs {
			if err := idx.Put(withKey(j, restFirst), nil); err != nil {
				return 0, err
			}
		}
		break
	}
	if deleted == 0 {
		return 0, nil
	}
	meta, err := decodeArchiveMeta(ub.Get([]byte(archiveMeta)))
	if err != nil {
		return 0, err
	}
	meta.count -= min(meta.count, uint64(deleted))
	if err := ub.Put([]byte(archiveMeta), encodeArchiveMeta(meta)); err != nil {
		return 0, err
	}
	return deleted, nil
}

// DeleteArchive implements storage.Archive. It logs the deletion, so that
// no replay of the log after a crash can bring the messages back, and
// returns once the applier has deleted the user's chunks, dropped their
// bucket and deleted the log segments that held their messages.
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

package bbolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The archive's write-ahead log. AppendArchive encodes each message as a
// record into a buffer; one goroutine (the syncer) writes everything
// buffered with one write and one fdatasync (a batch) and then answers
// every append of that batch. Another goroutine (the applier) later
// applies the synced records to the bbolt file in large transactions and
// deletes the segments they came from.
//
// A segment is a file in the directory <database>.archive-wal named by its
// number (16 decimal digits), holding records one after another:
//
//	length   uint32 little-endian, of the payload
//	CRC32C   uint32 little-endian, of the payload (Castagnoli)
//	payload  kind byte, uvarint offset of the record in its batch, user
//	         as uvarint length and bytes, then
//	         for walAppend: uvarint ID, then the archive message record
//	                        (see archive.go) to the end
//	         for walDelete: nothing (the user's archive was deleted)
//
// Records are replayed in order: segments by number, records by offset.
// The offset in the batch tells replay where a record's batch began, so
// that it can tell the torn last batch of a crash (whose pages may have
// reached the disk in any order) from damage to acknowledged records.
const (
	walAppend = 1
	walDelete = 2

	walHeader    = 8
	walMaxRecord = 1 << 30
	walDirSuffix = ".archive-wal"
	walNameLen   = 16

	// Segments are created filled with zeros, about 5/4 of what the last
	// one held and within these bounds, so that writing a batch does
	// not grow the file: then fdatasync flushes only the data, not the
	// file system's journal.
	walPreallocMin = 64 << 10
	walPreallocMax = 64 << 20

	// When the last batch held more than one record, appends are
	// concurrent: the syncer then lets the goroutines that are ready to
	// run go first, up to walGatherYields times while the buffer grows
	// and holds fewer than walGatherMax records, so that more appends
	// share a write and fdatasync. After a batch of one (a lone writer)
	// it writes at once. (A timer cannot wait less than about a
	// millisecond in an idle process.)
	walGatherYields = 4
	walGatherMax    = 64

	// applyEntries is how many synced records make the applier start at
	// once; applyDelay is the longest a synced record waits otherwise.
	applyEntries = 4096
	applyDelay   = 250 * time.Millisecond
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walEntry is one record, decoded.
type walEntry struct {
	kind byte
	user string
	id   uint64
	with string // of an append, as in rec
	rec  []byte // an append's archive message record
}

// appendWALRecord appends e's record to b, a batch's buffer.
func appendWALRecord(b []byte, e *walEntry) []byte {
	start := len(b)
	b = append(b, make([]byte, walHeader)...)
	b = append(b, e.kind)
	b = binary.AppendUvarint(b, uint64(start))
	b = appendBytes(b, []byte(e.user))
	if e.kind == walAppend {
		b = binary.AppendUvarint(b, e.id)
		b = append(b, e.rec...)
	}
	payload := b[start+walHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
	return b
}

// walRecordSize bounds the size of e's payload.
func walRecordSize(e *walEntry) int {
	return 1 + 3*binary.MaxVarintLen64 + len(e.user) + len(e.rec)
}

// readWALRecord decodes the record at the start of data and returns it,
// its size and its offset in its batch. ok is false if data does not start
// with a whole record whose checksum matches; err is set if it does but
// its payload cannot be decoded.
func readWALRecord(data []byte) (e walEntry, size int, inBatch uint64, ok bool, err error) {
	if len(data) < walHeader {
		return walEntry{}, 0, 0, false, nil
	}
	n := binary.LittleEndian.Uint32(data)
	if n < 4 || n > walMaxRecord || uint64(n) > uint64(len(data)-walHeader) {
		return walEntry{}, 0, 0, false, nil
	}
	payload := data[walHeader : walHeader+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(data[4:]) {
		return walEntry{}, 0, 0, false, nil
	}
	d := decoder{data: payload}
	e.kind = d.u8()
	inBatch = d.uvarint("offset in batch")
	e.user = string(d.field("user"))
	switch {
	case d.err != nil:
	case e.user == "":
		d.fail("empty user")
	case e.kind == walAppend:
		e.id = d.uvarint("ID")
		if d.err == nil {
			m, err := decodeArchiveMsg(be64(e.id), d.data, false)
			if err != nil {
				return walEntry{}, 0, 0, true, err
			}
			e.with, e.rec = m.With, d.data
		}
	case e.kind == walDelete:
		if len(d.data) != 0 {
			d.fail("%d trailing bytes", len(d.data))
		}
	default:
		d.fail("unknown record kind %d", e.kind)
	}
	if d.err != nil {
		return walEntry{}, 0, 0, true, fmt.Errorf("%w: archive log record: %w", ErrCorrupt, d.err)
	}
	return e, walHeader + int(n), inBatch, true, nil
}

// readSegment decodes the records of a segment file's contents.
//
// A segment ends with its records, or at zeros: the unused end of its
// preallocated size. A bad record (short or failing its checksum) in the
// last segment holding any record is
// where the write of the last batch was cut by a crash, if it was: that
// batch was never acknowledged, and its pages may have reached the disk in
// any order, so good records of it may follow the bad one. readSegment
// drops the rest of the segment if every good record after the bad one
// belongs to a batch that began at or before it. A good record of a batch
// that began after it means the bad record was synced and acknowledged
// before: that, and any bad record in an earlier segment (closed only once
// all its writes were synced), is an error wrapping ErrCorrupt.
func readSegment(data []byte, last bool) ([]walEntry, error) {
	var entries []walEntry
	for off := 0; off < len(data); {
		e, n, _, ok, err := readWALRecord(data[off:])
		if err != nil {
			return nil, fmt.Errorf("offset %d: %w", off, err)
		}
		if !ok {
			if allZero(data[off:]) {
				break // the unused, preallocated end
			}
			if !last {
				return nil, fmt.Errorf("%w: archive log: bad record at offset %d of a closed segment", ErrCorrupt, off)
			}
			end := len(data) // without the zeros at the end
			for end > off && data[end-1] == 0 {
				end--
			}
			for next := off + 1; next < end; next++ {
				_, _, inBatch, ok, _ := readWALRecord(data[next:])
				if ok && inBatch <= uint64(next) && uint64(next)-inBatch > uint64(off) {
					return nil, fmt.Errorf("%w: archive log: bad record at offset %d before a later batch at %d", ErrCorrupt, off, uint64(next)-inBatch)
				}
			}
			break
		}
		entries = append(entries, e)
		off += n
	}
	return entries, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// segmentName returns the file name of segment n.
func segmentName(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for len(s) < walNameLen {
		s = "0" + s
	}
	return s
}

// listSegments returns the numbers of the segments in dir, ascending.
// Other files are ignored.
func listSegments(dir string) ([]uint64, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []uint64
	for _, de := range des {
		name := de.Name()
		if len(name) != walNameLen || !de.Type().IsRegular() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, n)
	}
	slices.Sort(segs)
	return segs, nil
}

// replayWAL applies the segments left in dir by a Store that was not
// closed, in order, each in one transaction, and deletes each once its
// transaction has committed. Applying is idempotent (see applyWAL), so a
// segment applied before a crash but not deleted is harmless. It returns
// the highest segment number found (0 if none).
func replayWAL(db *bolt.DB, dir string) (uint64, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return 0, fmt.Errorf("archive log: %w", err)
	}
	// Segments after the last one with data were created in advance
	// and never written.
	lastData := -1
	for i, n := range segs {
		data, err := os.ReadFile(filepath.Join(dir, segmentName(n)))
		if err != nil {
			return 0, fmt.Errorf("archive log: %w", err)
		}
		if !allZero(data) {
			lastData = i
		}
	}
	for i, n := range segs {
		path := filepath.Join(dir, segmentName(n))
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, fmt.Errorf("archive log: %w", err)
		}
		entries, err := readSegment(data, i >= lastData)
		if err != nil {
			return 0, fmt.Errorf("archive log segment %s: %w", segmentName(n), err)
		}
		if len(entries) > 0 {
			if err := db.Update(func(tx *bolt.Tx) error { return applyWAL(tx, entries) }); err != nil {
				return 0, fmt.Errorf("archive log segment %s: replay: %w", segmentName(n), err)
			}
		}
		if err := os.Remove(path); err != nil {
			return 0, fmt.Errorf("archive log: %w", err)
		}
	}
	if len(segs) > 0 {
		if err := syncDir(dir); err != nil {
			return 0, fmt.Errorf("archive log: %w", err)
		}
		return segs[len(segs)-1], nil
	}
	return 0, nil
}

// applyUser is a user's archive during applyWAL.
type applyUser struct {
	ub, msgs, idx *bolt.Bucket
	meta          archiveMetaRec
	adds          []*walEntry // to write, in ID order
	gone          bool        // deleted later in the round
}

// applyWAL applies entries, in order, in tx. An append whose ID is not
// above the user's last ID in the file has been applied before (IDs only
// grow within an archive, and a delete drops the last ID with the
// archive), so it is skipped: applying a segment again changes nothing,
// and does not bring back messages expired since. Each user's appends are
// written at the end, as chunks (see chunk.go).
func applyWAL(tx *bolt.Tx, entries []walEntry) error {
	top, err := tx.CreateBucketIfNotExists([]byte(archiveBucket))
	if err != nil {
		return err
	}
	chunks, err := tx.CreateBucketIfNotExists([]byte(archiveChunks))
	if err != nil {
		return err
	}
	chunks.FillPercent = 0.95 // keys only grow
	users := make(map[string]*applyUser)
	var order []*applyUser
	for i := range entries {
		e := &entries[i]
		if e.kind == walDelete {
			if u := users[e.user]; u != nil {
				u.gone = true
				delete(users, e.user)
			}
			if ub := top.Bucket([]byte(e.user)); ub != nil {
				if err := deleteChunks(ub, chunks); err != nil {
					return fmt.Errorf("delete %q: %w", e.user, err)
				}
				if err := top.DeleteBucket([]byte(e.user)); err != nil {
					return fmt.Errorf("delete %q: %w", e.user, err)
				}
			}
			continue
		}
		u := users[e.user]
		if u == nil {
			if u, err = openApplyUser(top, e.user); err != nil {
				return fmt.Errorf("user %q: %w", e.user, err)
			}
			users[e.user] = u
			order = append(order, u)
		}
		if e.id <= u.meta.last {
			continue
		}
		u.adds = append(u.adds, e)
		u.meta.last = e.id
		u.meta.count++
	}
	sc := applyScratch{chunks: chunks}
	for _, u := range order {
		if u.gone || len(u.adds) == 0 {
			continue
		}
		if err := writeChunks(u, u.adds, &sc); err != nil {
			return err
		}
		if err := u.ub.Put([]byte(archiveMeta), encodeArchiveMeta(u.meta)); err != nil {
			return err
		}
	}
	return nil
}

// deleteChunks deletes the chunks of the archive in ub from chunks.
func deleteChunks(ub, chunks *bolt.Bucket) error {
	msgs := ub.Bucket([]byte(archiveMsgs))
	if msgs == nil {
		return nil
	}
	var refs [][]byte
	if err := msgs.ForEach(func(_, ref []byte) error {
		refs = append(refs, bytes.Clone(ref))
		return nil
	}); err != nil {
		return err
	}
	for _, ref := range refs {
		if err := chunks.Delete(ref); err != nil {
			return err
		}
	}
	return nil
}

func openApplyUser(top *bolt.Bucket, user string) (*applyUser, error) {
	ub, err := top.CreateBucketIfNotExists([]byte(user))
	if err != nil {
		return nil, err
	}
	meta, err := decodeArchiveMeta(ub.Get([]byte(archiveMeta)))
	if err != nil {
		return nil, err
	}
	msgs, err := ub.CreateBucketIfNotExists([]byte(archiveMsgs))
	if err != nil {
		return nil, err
	}
	idx, err := ub.CreateBucketIfNotExists([]byte(archiveWith))
	if err != nil {
		return nil, err
	}
	msgs.FillPercent = 0.95 // keys only grow
	return &applyUser{ub: ub, msgs: msgs, idx: idx, meta: meta}, nil
}

// walUser is what the log knows of one user's archive. Users are
// forgotten once none of their records is pending.
type walUser struct {
	last    uint64 // the last ID assigned
	pending int    // records logged and not yet applied
}

// walWait is a batch of the syncer or a round of the applier: done is
// closed when it is over, and err is then its outcome.
type walWait struct {
	done chan struct{}
	err  error
}

func newWait() *walWait { return &walWait{done: make(chan struct{})} }

func (ww *walWait) end(err error) {
	ww.err = err
	close(ww.done)
}

// walStats count the log's work, for tests and benchmarks.
type walStats struct {
	batches, records, rounds, applied uint64
}

// statistics returns a copy of the log's counters.
func (w *wal) statistics() walStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// wal is the archive's write-ahead log. Lock order: fileMu, then mu.
type wal struct {
	db  *bolt.DB
	dir string

	// fileMu is held by the syncer while it writes and syncs, and by the
	// applier while it moves the syncer to a new segment.
	fileMu sync.Mutex
	seg    *os.File // the segment being written
	segN   uint64   // its number; changed only by the applier
	off    int64    // the size of its records

	mu        sync.Mutex
	closed    bool                // no more records are accepted
	failed    error               // a write failed and could not be undone
	users     map[string]*walUser // users with pending records, and more
	epoch     uint64              // counts users forgotten
	buf       []byte              // records not yet written
	bufEnts   []walEntry          // their entries
	batch     *walWait            // their batch
	spareBuf  []byte              // a written buffer, for reuse
	pending   []walEntry          // synced and not yet applied, in log order
	first     time.Time           // when pending last became non-empty
	round     *walWait            // the applier's next round
	flush     bool                // someone waits for round
	closeErr  error               // of the final round
	delay     time.Duration       // applyDelay, but for tests
	yields    int                 // walGatherYields, but for experiments
	lastBatch int                 // records in the last batch
	stats     walStats

	// Owned by the applier.
	old     []uint64 // closed segments still on disk
	nextSeg *os.File // segment segN+1, created in advance, or nil
	used    int64    // the size of the records of the last closed segment
	zeros   []byte

	keep atomic.Bool // tests: keep applied segments on disk

	work     chan struct{} // wakes the syncer
	kick     chan struct{} // wakes the applier
	quit     chan struct{} // closed by close and abandonNow
	abandon  bool          // set before quit is closed: stop as if crashed
	syncDone chan struct{} // closed when the syncer ends
	applied  chan struct{} // closed when the applier ends
}

// openWAL replays the segments left in dir, starts a new segment, the
// syncer and the applier.
func openWAL(db *bolt.DB, dir string) (*wal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("archive log: %w", err)
	}
	last, err := replayWAL(db, dir)
	if err != nil {
		return nil, err
	}
	w := &wal{
		db:       db,
		dir:      dir,
		segN:     last + 1,
		users:    make(map[string]*walUser),
		delay:    applyDelay,
		yields:   walGatherYields,
		batch:    newWait(),
		round:    newWait(),
		work:     make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		syncDone: make(chan struct{}),
		applied:  make(chan struct{}),
	}
	if w.seg, err = w.create(w.segN, walPreallocMin); err != nil {
		return nil, err
	}
	go w.syncLoop()
	go w.applyLoop()
	return w, nil
}

// create creates segment n filled with size zeros, and makes it and its
// name durable.
func (w *wal) create(n uint64, size int64) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(w.dir, segmentName(n)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("archive log: %w", err)
	}
	if w.zeros == nil {
		w.zeros = make([]byte, 1<<20)
	}
	for off := int64(0); off < size && err == nil; off += int64(len(w.zeros)) {
		_, err = f.WriteAt(w.zeros[:min(int64(len(w.zeros)), size-off)], off)
	}
	if err == nil {
		err = fdatasync(f)
	}
	if err == nil {
		err = syncDir(w.dir)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("archive log: %w", err)
	}
	return f, nil
}

// prealloc returns the size to create the next segment with.
func (w *wal) prealloc() int64 {
	const unit = 64 << 10
	size := (w.used*5/4 + unit - 1) / unit * unit
	return min(max(size, walPreallocMin), walPreallocMax)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// append logs an append of the message record rec with the party with to
// user's archive, with an ID of at least want and above the last ID of the
// archive, and returns the ID once the record is durable.
func (w *wal) append(user string, want uint64, with string, rec []byte) (uint64, error) {
	e := walEntry{kind: walAppend, user: user, with: with, rec: rec}
	b, err := w.log(&e, func(u *walUser) {
		e.id = max(want, u.last+1)
		u.last = e.id
	})
	if err != nil {
		return 0, err
	}
	<-b.done
	if b.err != nil {
		return 0, b.err
	}
	return e.id, nil
}

// deleteUser logs the deletion of user's archive and returns once the
// record is durable. The archive's IDs may start again from the lowest.
func (w *wal) deleteUser(user string) error {
	e := walEntry{kind: walDelete, user: user}
	b, err := w.log(&e, func(u *walUser) { u.last = 0 })
	if err != nil {
		return err
	}
	<-b.done
	return b.err
}

// log buffers e's record, after calling set with e's user under the lock,
// and returns the batch that will write it.
func (w *wal) log(e *walEntry, set func(u *walUser)) (*walWait, error) {
	if size := walRecordSize(e); size > walMaxRecord {
		return nil, fmt.Errorf("archive log: a record of %d bytes is too large", size)
	}
	w.mu.Lock()
	u, err := w.user(e.user)
	if err != nil {
		w.mu.Unlock()
		return nil, err
	}
	set(u)
	u.pending++
	w.buf = appendWALRecord(w.buf, e)
	w.bufEnts = append(w.bufEnts, *e)
	b := w.batch
	w.mu.Unlock()
	signal(w.work)
	return b, nil
}

// user returns user's state, reading the last ID from the file if it is
// not known. It is called with mu held, and may release it meanwhile.
func (w *wal) user(user string) (*walUser, error) {
	for {
		if w.closed {
			return nil, errClosed
		}
		if w.failed != nil {
			return nil, w.failed
		}
		if u := w.users[user]; u != nil {
			return u, nil
		}
		// Nothing of user's is pending, so the file holds their last
		// ID. Only a round applying records of user's could change it,
		// and such records need w.users[user]: the round then forgets
		// it again and bumps the epoch, so a stale read is not kept.
		epoch := w.epoch
		w.mu.Unlock()
		var meta archiveMetaRec
		err := w.db.View(func(tx *bolt.Tx) (err error) {
			if ub := userBucket(tx, archiveBucket, user); ub != nil {
				meta, err = decodeArchiveMeta(ub.Get([]byte(archiveMeta)))
			}
			return err
		})
		w.mu.Lock()
		if err != nil {
			return nil, err
		}
		if w.users[user] == nil && w.epoch == epoch {
			w.users[user] = &walUser{last: meta.last}
		}
	}
}

// pendingFor reports whether user has records not yet applied.
func (w *wal) pendingFor(user string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	u := w.users[user]
	return u != nil && u.pending > 0
}

// applyNow makes the applier apply every record synced so far, and waits
// until it has or ctx ends.
func (w *wal) applyNow(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errClosed
	}
	r := w.round
	w.flush = true
	w.mu.Unlock()
	signal(w.kick)
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncLoop is the syncer.
func (w *wal) syncLoop() {
	defer close(w.syncDone)
	for {
		select {
		case <-w.work:
			for {
				w.gather()
				if !w.syncBatch() {
					break
				}
			}
		case <-w.quit:
			if !w.abandon {
				for w.syncBatch() {
				}
			}
			// Nothing is added after quit; fail what an abandoned log
			// did not write.
			w.mu.Lock()
			b := w.batch
			w.batch = newWait()
			w.mu.Unlock()
			b.end(errClosed)
			return
		}
	}
}

// gather yields to the goroutines ready to run before a batch, while the
// last batch held more than one record, the buffer grows and holds fewer
// than walGatherMax records, at most w.yields times.
func (w *wal) gather() {
	n := -1
	for range w.yields {
		w.mu.Lock()
		more := w.lastBatch > 1 && len(w.bufEnts) > n && len(w.bufEnts) < walGatherMax
		n = len(w.bufEnts)
		w.mu.Unlock()
		if !more {
			return
		}
		runtime.Gosched()
	}
}

// syncBatch writes and syncs the records buffered, answers their appends,
// and reports whether there were any.
func (w *wal) syncBatch() bool {
	w.fileMu.Lock()
	defer w.fileMu.Unlock()
	w.mu.Lock()
	if len(w.buf) == 0 {
		w.mu.Unlock()
		return false
	}
	buf, ents, b := w.buf, w.bufEnts, w.batch
	w.lastBatch = len(ents)
	w.buf, w.bufEnts, w.spareBuf = w.spareBuf[:0], nil, nil
	w.batch = newWait()
	w.mu.Unlock()

	_, err := w.seg.WriteAt(buf, w.off)
	if err == nil {
		err = fdatasync(w.seg)
	}
	if err != nil {
		err = fmt.Errorf("archive log: %w", err)
		// Cut the failed records off, so that later ones follow good
		// ones; if that fails too, refuse all further appends.
		cerr := w.seg.Truncate(w.off)
		if cerr == nil {
			cerr = fdatasync(w.seg)
		}
		if cerr != nil {
			w.mu.Lock()
			w.failed = fmt.Errorf("%w; cutting it off failed: %w", err, cerr)
			w.mu.Unlock()
		}
	} else {
		w.off += int64(len(buf))
	}

	w.mu.Lock()
	if cap(buf) <= 1<<20 {
		w.spareBuf = buf
	}
	if err != nil {
		for i := range ents {
			w.unpend(ents[i].user)
		}
	} else {
		w.stats.batches++
		w.stats.records += uint64(len(ents))
		if len(w.pending) == 0 {
			w.first = time.Now()
		}
		w.pending = append(w.pending, ents...)
	}
	wake := err == nil && (len(w.pending) == len(ents) || len(w.pending) >= applyEntries)
	w.mu.Unlock()
	b.end(err)
	if wake {
		signal(w.kick)
	}
	return true
}

// unpend counts one record of user's as no longer pending, and forgets the
// user when none is left. Called with mu held.
func (w *wal) unpend(user string) {
	u := w.users[user]
	if u == nil {
		return
	}
	if u.pending--; u.pending <= 0 {
		delete(w.users, user)
		w.epoch++
	}
}

// applyLoop is the applier: it runs a round when applyEntries records are
// pending, when the oldest has waited applyDelay, or when asked to.
func (w *wal) applyLoop() {
	defer close(w.applied)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-w.quit:
			<-w.syncDone
			var err error
			if w.abandon {
				w.endRound(errClosed)
			} else {
				err = w.applyRound(true)
			}
			w.mu.Lock()
			w.closeErr = err
			w.mu.Unlock()
			return
		default:
		}
		w.mu.Lock()
		run := w.flush || len(w.pending) >= applyEntries
		wait := time.Hour
		if !run && len(w.pending) > 0 {
			wait = time.Until(w.first.Add(w.delay))
			run = wait <= 0
		}
		w.mu.Unlock()
		if run {
			if err := w.applyRound(false); err != nil {
				// Try again later rather than spin.
				timer.Reset(applyDelay)
				select {
				case <-timer.C:
				case <-w.quit:
				}
				timer.Stop()
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-w.kick:
		case <-timer.C:
		case <-w.quit:
		}
		timer.Stop()
	}
}

// endRound ends the applier's next round with err without applying.
func (w *wal) endRound(err error) {
	w.mu.Lock()
	r := w.round
	w.round = newWait()
	w.flush = false
	w.mu.Unlock()
	r.end(err)
}

// applyRound applies every synced record in one transaction and deletes
// the segments that held them. It first moves the syncer to a new segment,
// unless last is set: then the syncer has ended and the current segment
// is deleted too.
func (w *wal) applyRound(last bool) error {
	// Whoever asked for this round had their records pending before they
	// asked, so the round takes all records pending when it takes the
	// round, under the same lock; that needs a new segment if there are
	// any. Only the applier takes from pending, so once it is not empty
	// it stays so.
	var next *os.File
	for {
		w.fileMu.Lock()
		w.mu.Lock()
		if last || len(w.pending) == 0 || next != nil || w.nextSeg != nil {
			break
		}
		w.mu.Unlock()
		w.fileMu.Unlock()
		var err error
		if next, err = w.create(w.segN+1, w.prealloc()); err != nil {
			w.endRound(err)
			return err
		}
	}
	if !last && len(w.pending) > 0 && next == nil {
		next, w.nextSeg = w.nextSeg, nil
	}
	r := w.round
	w.round = newWait()
	w.flush = false
	var entries []walEntry
	prev := w.seg
	if next != nil || last {
		entries, w.pending = w.pending, nil
		w.old = append(w.old, w.segN)
		if next != nil {
			w.used = w.off
			w.seg, w.segN, w.off = next, w.segN+1, 0
		}
	}
	w.mu.Unlock()
	w.fileMu.Unlock()

	var err error
	if next != nil || last {
		if cerr := prev.Close(); cerr != nil {
			err = fmt.Errorf("archive log: %w", cerr)
		}
	}
	if last && w.nextSeg != nil {
		_ = w.nextSeg.Close()
		w.nextSeg = nil
		w.old = append(w.old, w.segN+1)
	}
	if err == nil && len(entries) > 0 {
		err = w.db.Update(func(tx *bolt.Tx) error { return applyWAL(tx, entries) })
		if err != nil {
			err = fmt.Errorf("archive log: apply: %w", err)
		}
	}
	applied := err == nil
	if applied && !w.keep.Load() {
		err = w.removeOld()
	}
	w.mu.Lock()
	if applied {
		w.stats.rounds++
		w.stats.applied += uint64(len(entries))
		for i := range entries {
			w.unpend(entries[i].user)
		}
	} else {
		// Try again in a later round; the records stay on disk.
		if len(w.pending) == 0 && len(entries) > 0 {
			w.first = time.Now()
		}
		w.pending = append(entries, w.pending...)
	}
	w.mu.Unlock()
	r.end(err)
	if next != nil && w.nextSeg == nil {
		// Have the next segment ready, so that the next round does not
		// wait for it. If this fails, the next round tries again.
		w.nextSeg, _ = w.create(w.segN+1, w.prealloc())
	}
	return err
}

// removeOld deletes the closed segments, all applied.
func (w *wal) removeOld() error {
	if len(w.old) == 0 {
		return nil
	}
	for len(w.old) > 0 {
		err := os.Remove(filepath.Join(w.dir, segmentName(w.old[0])))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("archive log: %w", err)
		}
		w.old = w.old[1:]
	}
	if err := syncDir(w.dir); err != nil {
		return fmt.Errorf("archive log: %w", err)
	}
	return nil
}

// close stops taking records, syncs and applies those taken, deletes the
// segments and then the directory.
func (w *wal) close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.applied
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.quit)
	<-w.applied
	w.mu.Lock()
	err := w.closeErr
	w.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w (the records stay in %s for the next Open)", err, w.dir)
	}
	if err := os.Remove(w.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("archive log: %w", err)
	}
	return nil
}

// abandonNow stops the log as a crash would: records buffered are not
// written, those synced are not applied and their segments stay. For
// tests.
func (w *wal) abandonNow() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.abandon = true
	w.mu.Unlock()
	close(w.quit)
	<-w.applied
	_ = w.seg.Close()
	if w.nextSeg != nil {
		_ = w.nextSeg.Close()
	}
}

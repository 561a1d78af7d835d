package bbolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// An archive chunk holds consecutive messages of one archive in one value.
// Chunks of all archives are in the top-level bucket "archive-chunks",
// keyed by the bucket's sequence as 8 bytes big-endian, so in the order
// they were written: a round's chunks fill new pages one after another,
// and do not rewrite each archive's last leaf page with the chunk it holds
// (bbolt does not split a leaf of four keys or fewer, so with values this
// large every new chunk would rewrite three older ones). A user's "msgs"
// bucket maps the ID of each chunk's first message (8 bytes big-endian)
// to the chunk's key. A chunk is version byte 2, then for each message, in
// ID order:
//
//	uvarint  ID minus the chunk's first ID (0 for the first)
//	uvarint  length of With, then With
//	uvarint  length of the message, then the message
//
// The applier writes each archive's messages of a round as chunks of at
// most chunkMax messages; it first fills the archive's last chunk if that
// holds fewer than chunkSmall, so that rounds of few messages do not leave
// many tiny chunks. A query therefore reads at most chunkMax messages it
// does not return at each end of its range, and one chunk per index entry.
const (
	archiveChunkV = 2
	chunkMax      = 64
	chunkSmall    = 16
)

// chunkRec is a message of a decoded chunk; With and Data point into the
// chunk's value.
type chunkRec struct {
	id         uint64
	with, data []byte
}

// appendChunkRec appends the message id (at least first) to b, a chunk
// whose first message has the ID first.
func appendChunkRec(b []byte, first, id uint64, with string, data []byte) []byte {
	b = binary.AppendUvarint(b, id-first)
	b = binary.AppendUvarint(b, uint64(len(with)))
	b = append(b, with...)
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// decodeChunk decodes the chunk with key and value val into dst[:0], reusing
// its memory, and returns it. The records point into val.
func decodeChunk(key, val []byte, dst []chunkRec) ([]chunkRec, error) {
	dst = dst[:0]
	if len(key) != 8 {
		return nil, fmt.Errorf("%w: archive chunk key %x", ErrCorrupt, key)
	}
	first := binary.BigEndian.Uint64(key)
	if len(val) == 0 || val[0] != archiveChunkV {
		return nil, fmt.Errorf("%w: archive chunk %x: not a version %d chunk", ErrCorrupt, key, archiveChunkV)
	}
	d := val[1:]
	prev := uint64(0)
	for len(d) > 0 {
		off, n := binary.Uvarint(d)
		if n <= 0 || off > ^uint64(0)-first || (len(dst) == 0) != (off == 0) || (len(dst) > 0 && first+off <= prev) {
			return nil, fmt.Errorf("%w: archive chunk %x: bad ID", ErrCorrupt, key)
		}
		d = d[n:]
		var r chunkRec
		r.id = first + off
		prev = r.id
		for f := range 2 {
			l, n := binary.Uvarint(d)
			if n <= 0 || l > uint64(len(d)-n) {
				return nil, fmt.Errorf("%w: archive chunk %x: bad length", ErrCorrupt, key)
			}
			p := d[n : n+int(l) : n+int(l)]
			if f == 0 {
				r.with = p
			} else {
				r.data = p
			}
			d = d[n+int(l):]
		}
		dst = append(dst, r)
	}
	if len(dst) == 0 {
		return nil, fmt.Errorf("%w: archive chunk %x: empty", ErrCorrupt, key)
	}
	return dst, nil
}

// chunkAt returns the chunk with the key k in a user's "msgs", whose value
// ref is its key in "archive-chunks".
func chunkAt(chunks *bolt.Bucket, k, ref []byte) ([]byte, error) {
	if chunks == nil || len(ref) != 8 {
		return nil, fmt.Errorf("%w: archive chunk %x: bad reference %x", ErrCorrupt, k, ref)
	}
	v := chunks.Get(ref)
	if v == nil {
		return nil, fmt.Errorf("%w: archive chunk %x: missing %x", ErrCorrupt, k, ref)
	}
	return v, nil
}

// matchWithBytes reports whether a message with the party got passes a
// query With want (XEP-0313 §4.1.1), without allocating.
func matchWithBytes(got []byte, want string) bool {
	if string(got) == want {
		return true
	}
	if i := slices.Index(got, '/'); i >= 0 {
		return string(got[:i]) == want
	}
	return false
}

// chunkJIDs appends to dst the distinct JIDs under which the index lists a
// chunk holding recs, the bare and full JIDs of their parties, sorted.
func chunkJIDs(dst []string, with func(i int) string, n int) []string {
	start := len(dst)
	for i := range n {
		w := with(i)
		bare, _, full := strings.Cut(w, "/")
		dst = append(dst, bare)
		if full {
			dst = append(dst, w)
		}
	}
	slices.Sort(dst[start:])
	return slices.Compact(dst)
}

// putChunkIndex adds the index entries of the chunk first for jids, unless
// present.
func putChunkIndex(idx *bolt.Bucket, jids []string, first uint64, sc *applyScratch) error {
	for _, j := range jids {
		sc.reserve(len(j) + 9)
		start := len(sc.arena)
		sc.arena = appendWithKey(sc.arena, j, first)
		k := sc.arena[start:len(sc.arena):len(sc.arena)]
		if idx.Get(k) != nil {
			sc.arena = sc.arena[:start]
			continue
		}
		if err := idx.Put(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// appendWithKey appends the index key of jid and id to b.
func appendWithKey(b []byte, jid string, id uint64) []byte {
	b = append(b, jid...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, id)
}

// writeChunks adds the messages adds, with IDs above every ID in the
// archive, to u's archive as chunks.
func writeChunks(u *applyUser, adds []*walEntry, sc *applyScratch) error {
	c := u.msgs.Cursor()
	k, ref := c.Last()
	if k != nil {
		v, err := chunkAt(sc.chunks, k, ref)
		if err != nil {
			return err
		}
		recs, err := decodeChunk(k, v, sc.recs)
		sc.recs = recs
		if err != nil {
			return err
		}
		if len(recs) < chunkSmall {
			n := min(chunkMax-len(recs), len(adds))
			first := binary.BigEndian.Uint64(k)
			sc.reserve(len(v) + recsSize(adds[:n]))
			start := len(sc.arena)
			sc.arena = append(sc.arena, v...)
			if sc.arena, err = appendChunkRecs(sc.arena, first, adds[:n]); err != nil {
				return err
			}
			if err := sc.chunks.Put(bytes.Clone(ref), sc.arena[start:len(sc.arena):len(sc.arena)]); err != nil {
				return err
			}
			sc.jids = chunkJIDs(sc.jids[:0], func(i int) string { return adds[i].with }, n)
			if err := putChunkIndex(u.idx, sc.jids, first, sc); err != nil {
				return err
			}
			adds = adds[n:]
		}
	}
	for len(adds) > 0 {
		n := min(chunkMax, len(adds))
		first := adds[0].id
		sc.reserve(1 + recsSize(adds[:n]))
		start := len(sc.arena)
		sc.arena = append(sc.arena, archiveChunkV)
		var err error
		if sc.arena, err = appendChunkRecs(sc.arena, first, adds[:n]); err != nil {
			return err
		}
		seq, err := sc.chunks.NextSequence()
		if err != nil {
			return err
		}
		ref := be64(seq)
		if err := sc.chunks.Put(ref, sc.arena[start:len(sc.arena):len(sc.arena)]); err != nil {
			return err
		}
		if err := u.msgs.Put(be64(first), ref); err != nil {
			return err
		}
		sc.jids = chunkJIDs(sc.jids[:0], func(i int) string { return adds[i].with }, n)
		if err := putChunkIndex(u.idx, sc.jids, first, sc); err != nil {
			return err
		}
		adds = adds[n:]
	}
	return nil
}

// appendChunkRecs appends the messages of the log records adds to the chunk
// b whose first ID is first.
func appendChunkRecs(b []byte, first uint64, adds []*walEntry) ([]byte, error) {
	for _, e := range adds {
		data, err := archiveMsgData(e.rec)
		if err != nil {
			return b, err
		}
		b = appendChunkRec(b, first, e.id, e.with, data)
	}
	return b, nil
}

// archiveMsgData returns the message in an archive message record (see
// archive.go), without copying it.
func archiveMsgData(rec []byte) ([]byte, error) {
	if len(rec) == 0 || rec[0] != archiveV1 {
		return nil, fmt.Errorf("%w: archive message record: bad version", ErrCorrupt)
	}
	l, n := binary.Uvarint(rec[1:])
	if n <= 0 || l > uint64(len(rec)-1-n) {
		return nil, fmt.Errorf("%w: archive message record: bad With", ErrCorrupt)
	}
	return rec[1+n+int(l):], nil
}

// applyScratch is memory applyWAL reuses from one chunk to the next. bbolt
// keeps the keys and values given to Put until the transaction ends, so
// they are cut from arena, which only grows: when append moves it, the
// slices already given keep the old array.
type applyScratch struct {
	chunks *bolt.Bucket // "archive-chunks"
	recs   []chunkRec
	arena  []byte
	jids   []string
}

// reserve makes room for n more bytes in arena, in a new array if needed
// (the old one stays with the slices given to bbolt).
func (sc *applyScratch) reserve(n int) {
	if cap(sc.arena)-len(sc.arena) < n {
		sc.arena = make([]byte, 0, max(n, 256<<10))
	}
}

// recsSize bounds the size of the chunk records of adds.
func recsSize(adds []*walEntry) int {
	n := 0
	for _, e := range adds {
		n += 3*binary.MaxVarintLen64 + len(e.with) + len(e.rec)
	}
	return n
}

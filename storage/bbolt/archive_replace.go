package bbolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

var _ storage.ArchiveReplacer = (*Store)(nil)

// ReplaceArchived implements storage.ArchiveReplacer. It applies the
// archive's log for user, then rewrites the one chunk holding the message
// in a short write transaction; the index by party is unchanged, since
// the party is. The log's replay after a crash does not bring the old
// data back: it skips IDs up to the last one in "meta".
func (s *Store) ReplaceArchived(ctx context.Context, user string, id uint64, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.applyArchive(ctx, user); err != nil {
		return fmt.Errorf("bbolt: replace in the archive of %q: %w", user, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		ub := userBucket(tx, archiveBucket, user)
		if ub == nil {
			return storage.ErrNotFound
		}
		msgs := ub.Bucket([]byte(archiveMsgs))
		chunks := tx.Bucket([]byte(archiveChunks))
		if msgs == nil {
			return storage.ErrNotFound
		}
		// The chunk holding id is the last one starting at or before it.
		c := msgs.Cursor()
		k, ref := c.Seek(be64(id))
		if k == nil || binary.BigEndian.Uint64(k) > id {
			k, ref = c.Prev()
		}
		if k == nil {
			return storage.ErrNotFound
		}
		v, err := chunkAt(chunks, k, ref)
		if err != nil {
			return err
		}
		recs, err := decodeChunk(k, v, nil)
		if err != nil {
			return err
		}
		found := false
		first := binary.BigEndian.Uint64(k)
		b := []byte{archiveChunkV}
		for _, r := range recs {
			d := r.data
			if r.id == id {
				d, found = data, true
			}
			b = appendChunkRec(b, first, r.id, string(r.with), d)
		}
		if !found {
			return storage.ErrNotFound
		}
		return chunks.Put(bytes.Clone(ref), b)
	})
	if err != nil {
		return fmt.Errorf("bbolt: replace in the archive of %q: %w", user, err)
	}
	return nil
}

package bbolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

// The offline store (storage.Offline) is the top-level bucket "offline".
// Inside it each user has a nested bucket named by their bare JID, holding:
//
//	"meta"  a record: version byte 1, then uvarints last Seq and count
//	"msgs"  a bucket of messages keyed by their Seq as 8 bytes big-endian,
//	        so in arrival order
//
// A message record is version byte 1, the stored time as a varint of Unix
// seconds, then the message bytes to the end. The user's bucket, and so the
// Seq counter, is kept when the queue empties, so that a Seq is never
// reused while a delivery may still delete up to it; DeleteOfflineUser
// drops it.
//
// ExpireOffline removes from the front of each queue while a message is
// older than the limit: it assumes, as happens when Stored is the time of
// the push, that Stored does not decrease along a queue. It works in
// transactions of at most expireBatch deletions.
const (
	offlineBucket = "offline"
	offlineMeta   = "meta"
	offlineMsgs   = "msgs"
	offlineV1     = 1
)

// expireBatch bounds the deletions of one expiry transaction, so that
// writers wait at most that long.
const expireBatch = 10000

var _ storage.Offline = (*Store)(nil)

// offlineMetaRec is a user's "meta" record.
type offlineMetaRec struct {
	seq, count uint64
}

func encodeOfflineMeta(m offlineMetaRec) []byte {
	b := []byte{offlineV1}
	b = binary.AppendUvarint(b, m.seq)
	return binary.AppendUvarint(b, m.count)
}

func decodeOfflineMeta(data []byte) (offlineMetaRec, error) {
	if data == nil {
		return offlineMetaRec{}, nil
	}
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != offlineV1 {
		d.fail("unknown offline meta version %d", v)
	}
	m := offlineMetaRec{seq: d.uvarint("seq"), count: d.uvarint("count")}
	if d.err == nil && len(d.data) != 0 {
		d.fail("%d trailing bytes", len(d.data))
	}
	if d.err != nil {
		return offlineMetaRec{}, fmt.Errorf("%w: offline meta: %w", ErrCorrupt, d.err)
	}
	return m, nil
}

func encodeOfflineMsg(m storage.OfflineMessage) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(m.Data))
	b = append(b, offlineV1)
	b = binary.AppendVarint(b, m.Stored.Unix())
	return append(b, m.Data...)
}

// decodeOfflineMsg decodes a message record; Data is a copy.
func decodeOfflineMsg(key, data []byte) (storage.OfflineMessage, error) {
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != offlineV1 {
		d.fail("unknown offline message version %d", v)
	}
	secs := d.varint("stored")
	if d.err != nil || len(key) != 8 {
		return storage.OfflineMessage{}, fmt.Errorf("%w: offline message %x: %v", ErrCorrupt, key, d.err)
	}
	return storage.OfflineMessage{
		Seq:    binary.BigEndian.Uint64(key),
		Stored: time.Unix(secs, 0).UTC(),
		Data:   bytes.Clone(d.data),
	}, nil
}

// storedBefore reports whether the message record data was stored before
// the Unix second cut. A record it cannot read counts as expired.
func storedBefore(data []byte, cut int64) bool {
	if len(data) < 2 || data[0] != offlineV1 {
		return true
	}
	secs, n := binary.Varint(data[1:])
	return n <= 0 || secs < cut
}

func be64(n uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n) }

// PushOffline implements storage.Offline. Concurrent pushes share one
// commit.
func (s *Store) PushOffline(ctx context.Context, user string, msg storage.OfflineMessage, limit int) error {
	if user == "" {
		return errors.New("bbolt: push offline: empty user")
	}
	rec := encodeOfflineMsg(msg)
	var count uint64
	var full bool
	err := s.commit.do(ctx, func(tx *bolt.Tx) (err error) {
		count, full, err = pushOfflineTx(tx, user, rec, limit)
		return err
	})
	if err != nil {
		return fmt.Errorf("bbolt: push offline for %q: %w", user, err)
	}
	if full {
		return fmt.Errorf("bbolt: push offline for %q: %d messages queued: %w", user, count, storage.ErrFull)
	}
	return nil
}

// pushOfflineTx appends the message record rec to user's queue unless it
// holds limit messages or more (limit > 0), and returns the count before
// the push and whether the queue was full.
func pushOfflineTx(tx *bolt.Tx, user string, rec []byte, limit int) (uint64, bool, error) {
	top, err := tx.CreateBucketIfNotExists([]byte(offlineBucket))
	if err != nil {
		return 0, false, err
	}
	ub, err := top.CreateBucketIfNotExists([]byte(user))
	if err != nil {
		return 0, false, err
	}
	meta, err := decodeOfflineMeta(ub.Get([]byte(offlineMeta)))
	if err != nil {
		return 0, false, err
	}
	if limit > 0 && meta.count >= uint64(limit) {
		return meta.count, true, nil
	}
	msgs, err := ub.CreateBucketIfNotExists([]byte(offlineMsgs))
	if err != nil {
		return 0, false, err
	}
	msgs.FillPercent = 0.95 // keys only grow
	count := meta.count
	meta.seq++
	meta.count++
	if err := msgs.Put(be64(meta.seq), rec); err != nil {
		return 0, false, err
	}
	return count, false, ub.Put([]byte(offlineMeta), encodeOfflineMeta(meta))
}

// OfflineMessages implements storage.Offline.
func (s *Store) OfflineMessages(ctx context.Context, user string) ([]storage.OfflineMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []storage.OfflineMessage
	err := s.db.View(func(tx *bolt.Tx) error {
		msgs := offlineMsgsBucket(tx, user)
		if msgs == nil {
			return nil
		}
		return msgs.ForEach(func(k, v []byte) error {
			m, err := decodeOfflineMsg(k, v)
			if err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bbolt: offline messages of %q: %w", user, err)
	}
	return out, nil
}

// CountOffline implements storage.Offline. It reads one small record.
func (s *Store) CountOffline(ctx context.Context, user string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		ub := userBucket(tx, offlineBucket, user)
		if ub == nil {
			return nil
		}
		meta, err := decodeOfflineMeta(ub.Get([]byte(offlineMeta)))
		n = int(meta.count)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("bbolt: count offline of %q: %w", user, err)
	}
	return n, nil
}

// DeleteOffline implements storage.Offline.
func (s *Store) DeleteOffline(ctx context.Context, user string, upTo uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Look first in a read transaction: nothing to delete costs no write.
	var found bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		if msgs := offlineMsgsBucket(tx, user); msgs != nil {
			k, _ := msgs.Cursor().First()
			found = k != nil && binary.BigEndian.Uint64(k) <= upTo
		}
		return nil
	})
	if !found {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		ub := userBucket(tx, offlineBucket, user)
		if ub == nil {
			return nil
		}
		_, err := deleteOfflineFront(ub, -1, func(k, _ []byte) bool { return binary.BigEndian.Uint64(k) <= upTo })
		return err
	})
	if err != nil {
		return fmt.Errorf("bbolt: delete offline of %q: %w", user, err)
	}
	return nil
}

// deleteOfflineFront deletes from the front of the queue in ub while del
// says so, at most max messages if max >= 0, keeps the count right and
// returns how many it deleted.
func deleteOfflineFront(ub *bolt.Bucket, max int, del func(k, v []byte) bool) (int, error) {
	msgs := ub.Bucket([]byte(offlineMsgs))
	if msgs == nil {
		return 0, nil
	}
	var keys [][]byte
	c := msgs.Cursor()
	for k, v := c.First(); k != nil && (max < 0 || len(keys) < max) && del(k, v); k, v = c.Next() {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return 0, nil
	}
	for _, k := range keys {
		if err := msgs.Delete(k); err != nil {
			return 0, err
		}
	}
	meta, err := decodeOfflineMeta(ub.Get([]byte(offlineMeta)))
	if err != nil {
		return 0, err
	}
	meta.count -= min(meta.count, uint64(len(keys)))
	if err := ub.Put([]byte(offlineMeta), encodeOfflineMeta(meta)); err != nil {
		return 0, err
	}
	return len(keys), nil
}

// ExpireOffline implements storage.Offline. It visits each user's bucket
// once and reads no message it keeps but the first of each queue.
func (s *Store) ExpireOffline(ctx context.Context, t time.Time, limit int) (int, error) {
	cut := t.Unix()
	if t.Nanosecond() > 0 {
		cut++ // stored before t, to the second
	}
	n, err := s.expire(ctx, offlineBucket, limit, func(ub *bolt.Bucket, max int) (int, error) {
		return deleteOfflineFront(ub, max, func(_, v []byte) bool { return storedBefore(v, cut) })
	})
	if err != nil {
		return n, fmt.Errorf("bbolt: expire offline: %w", err)
	}
	return n, nil
}

// expire runs del on every user bucket of the top-level bucket top, until
// it has deleted limit messages (limit <= 0: no limit), and returns the
// total deleted. It works in write transactions that each delete at most
// expireBatch messages and visit at most expireBatch users, so that
// writers never wait long. del deletes at most max and returns how many.
func (s *Store) expire(ctx context.Context, top string, limit int, del func(ub *bolt.Bucket, max int) (int, error)) (int, error) {
	total := 0
	var next []byte // the user to start the next transaction at
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
		finished := false
		var deleted int
		err := s.db.Update(func(tx *bolt.Tx) error {
			deleted = 0
			b := tx.Bucket([]byte(top))
			if b == nil {
				finished = true
				return nil
			}
			c := b.Cursor()
			k, v := c.First()
			if next != nil {
				k, v = c.Seek(next)
			}
			for visited := 0; k != nil; k, v = c.Next() {
				if v != nil {
					continue // not a bucket
				}
				n, err := del(b.Bucket(k), batch-deleted)
				if err != nil {
					return fmt.Errorf("user bucket %q: %w", k, err)
				}
				deleted += n
				visited++
				switch {
				case deleted >= batch:
					// This user may have more: start here next time.
					next = bytes.Clone(k)
					return nil
				case visited >= expireBatch:
					// Start after this user next time.
					next = append(bytes.Clone(k), 0)
					return nil
				}
			}
			finished = true
			return nil
		})
		if err != nil {
			return total, err
		}
		total += deleted
		if finished {
			return total, nil
		}
	}
}

// DeleteOfflineUser implements storage.Offline. It drops the user's bucket
// in the offline store.
func (s *Store) DeleteOfflineUser(ctx context.Context, user string) error {
	if err := s.dropUser(ctx, offlineBucket, user); err != nil {
		return fmt.Errorf("bbolt: delete offline of %q: %w", user, err)
	}
	return nil
}

func offlineMsgsBucket(tx *bolt.Tx, user string) *bolt.Bucket {
	ub := userBucket(tx, offlineBucket, user)
	if ub == nil {
		return nil
	}
	return ub.Bucket([]byte(offlineMsgs))
}

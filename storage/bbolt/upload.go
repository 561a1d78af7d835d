package bbolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

// The upload metadata (storage.Uploads) is the top-level bucket "uploads",
// created by the first upload so that older files need no migration. It
// holds three buckets:
//
//	"ids"     each upload's record under its ID
//	"owners"  a bucket per owner with at least one upload, named by their
//	          bare JID, holding:
//	  "meta"    the owner record: version byte 1, then uvarints count (how
//	            many uploads the owner has) and bytes (the sum of their
//	            sizes)
//	  "list"    the owner's uploads under the key created (8 bytes) and
//	            ID, so oldest first; the value is the upload's size, a
//	            uvarint
//	"expiry"  every upload under the key expiry (8 bytes) and ID, so
//	          soonest first; the value is empty
//
// A time in a key is its Unix microseconds, big-endian, with the sign bit
// flipped (as in the service data's expiry index), so keys sort in time
// order. An upload record is:
//
//	version      byte, 1
//	state        byte, 1 to 3 (storage.UploadSlot to UploadComplete)
//	created      varint, Unix microseconds, in years 1 to 9999
//	expires      varint, Unix microseconds, in years 1 to 9999
//	size         uvarint, at most 2⁶³-1
//	owner        uvarint length (at least 1), then bytes
//	filename     uvarint length, then bytes
//	contentType  the bytes to the end
//
// The ID is not part of the record: it is the key. The owner record makes
// the total limit cost one read; the day limit reads the owner's "list"
// from the day's start on, and no record. UserUploads reads the owner's
// list and their records, ExpiredUploads the front of "expiry" and the
// records it returns: neither reads another owner's or a later upload.
// Every write is one transaction, shared with concurrent writes (group
// commit); a write refused (ErrExists, ErrNotFound, ErrLimit) writes
// nothing and does not fail the others of its transaction. An owner's
// bucket is dropped with their last upload. IDs and owners are bolt keys:
// an ID is at most 32,760 bytes (8 less than a key, for the time before
// it in the indexes), an owner at most 32,768.
//
// Uploads are not deleted by DeleteUserData (see storage.Uploads): the
// upload module deletes a user's files and then their records.
const (
	uploadBucket = "uploads"
	uploadIDs    = "ids"
	uploadOwners = "owners"
	uploadMeta   = "meta"
	uploadList   = "list"
	uploadExpiry = "expiry"
	uploadV1     = 1

	maxUploadID    = bolt.MaxKeySize - 8
	maxUploadOwner = bolt.MaxKeySize
)

var _ storage.Uploads = (*Store)(nil)

// Unix microseconds of the first and last instants an upload's times may
// hold: years 1 to 9999.
var (
	minUploadMicro = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	maxUploadMicro = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC).UnixMicro()
)

// encodeUpload encodes u's record; u.ID is not part of it. Its times must
// lie in years 1 to 9999 (they are truncated to the microsecond).
func encodeUpload(u storage.Upload) []byte {
	b := make([]byte, 0, 2+4*binary.MaxVarintLen64+len(u.Owner)+len(u.Filename)+len(u.ContentType))
	b = append(b, uploadV1, byte(u.State))
	b = binary.AppendVarint(b, u.Created.UnixMicro())
	b = binary.AppendVarint(b, u.Expires.UnixMicro())
	b = binary.AppendUvarint(b, uint64(u.Size))
	b = appendBytes(b, []byte(u.Owner))
	b = appendBytes(b, []byte(u.Filename))
	return append(b, u.ContentType...)
}

// decodeUpload decodes the record of upload id. Its result shares no
// memory with data; anything but a well-formed record gives an error
// wrapping ErrCorrupt.
func decodeUpload(id, data []byte) (storage.Upload, error) {
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != uploadV1 {
		d.fail("unknown version %d", v)
	}
	u := storage.Upload{ID: string(id), State: storage.UploadState(d.u8())}
	if d.err == nil && !u.State.Valid() {
		d.fail("unknown state %d", u.State)
	}
	created, expires := d.varint("created"), d.varint("expires")
	for _, t := range []int64{created, expires} {
		if d.err == nil && (t < minUploadMicro || t > maxUploadMicro) {
			d.fail("time %d outside years 1 to 9999", t)
		}
	}
	size := d.uvarint("size")
	if d.err == nil && size > math.MaxInt64 {
		d.fail("size %d out of range", size)
	}
	owner := d.field("owner")
	if d.err == nil && len(owner) == 0 {
		d.fail("empty owner")
	}
	filename := d.field("filename")
	if d.err != nil {
		return storage.Upload{}, fmt.Errorf("%w: upload %q: %w", ErrCorrupt, id, d.err)
	}
	u.Created = time.UnixMicro(created).UTC()
	u.Expires = time.UnixMicro(expires).UTC()
	u.Size = int64(size)
	u.Owner = string(owner)
	u.Filename = string(filename)
	u.ContentType = string(d.data)
	return u, nil
}

// uploadOwnerRec is an owner's "meta" record.
type uploadOwnerRec struct {
	count, bytes uint64
}

func encodeUploadOwner(m uploadOwnerRec) []byte {
	b := []byte{uploadV1}
	b = binary.AppendUvarint(b, m.count)
	return binary.AppendUvarint(b, m.bytes)
}

func decodeUploadOwner(data []byte) (uploadOwnerRec, error) {
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != uploadV1 {
		d.fail("unknown version %d", v)
	}
	m := uploadOwnerRec{count: d.uvarint("count"), bytes: d.uvarint("bytes")}
	if d.err == nil && (m.count == 0 || m.bytes > math.MaxInt64) {
		d.fail("counts %d and %d out of range", m.count, m.bytes)
	}
	if d.err == nil && len(d.data) != 0 {
		d.fail("%d trailing bytes", len(d.data))
	}
	if d.err != nil {
		return uploadOwnerRec{}, fmt.Errorf("%w: upload owner record: %w", ErrCorrupt, d.err)
	}
	return m, nil
}

// uploadKey returns an index key: the 8-byte time t and the ID.
func uploadKey(t time.Time, id string) []byte {
	return append(expiryBytes(t), id...)
}

// uploadSize decodes the value of an owner's "list" entry.
func uploadSize(k, v []byte) (uint64, error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || w != len(v) || n > math.MaxInt64 {
		return 0, fmt.Errorf("%w: upload list entry %x: bad size %x", ErrCorrupt, k, v)
	}
	return n, nil
}

// checkNewUpload returns an error if u or lim cannot be stored.
func checkNewUpload(u storage.Upload, lim storage.UploadLimits) error {
	if len(u.ID) > maxUploadID || len(u.Owner) > maxUploadOwner {
		return fmt.Errorf("ID of %d bytes or owner of %d bytes too long", len(u.ID), len(u.Owner))
	}
	return storage.CheckNewUpload(u, lim)
}

// uploadTx is the upload buckets of a transaction; its fields are nil
// before the first upload.
type uploadTx struct {
	tx                  *bolt.Tx
	ids, owners, expiry *bolt.Bucket
}

func openUploads(tx *bolt.Tx) (uploadTx, error) {
	t := uploadTx{tx: tx}
	top := tx.Bucket([]byte(uploadBucket))
	if top == nil {
		return t, nil
	}
	t.ids, t.owners, t.expiry = top.Bucket([]byte(uploadIDs)), top.Bucket([]byte(uploadOwners)), top.Bucket([]byte(uploadExpiry))
	if t.ids == nil || t.owners == nil || t.expiry == nil {
		return t, fmt.Errorf("%w: %q bucket incomplete", ErrCorrupt, uploadBucket)
	}
	return t, nil
}

// create makes the buckets, if they are not there yet.
func (t *uploadTx) create() error {
	if t.ids != nil {
		return nil
	}
	top, err := t.tx.CreateBucketIfNotExists([]byte(uploadBucket))
	if err != nil {
		return err
	}
	for _, b := range []struct {
		name string
		to   **bolt.Bucket
	}{{uploadIDs, &t.ids}, {uploadOwners, &t.owners}, {uploadExpiry, &t.expiry}} {
		if *b.to, err = top.CreateBucketIfNotExists([]byte(b.name)); err != nil {
			return err
		}
	}
	return nil
}

// get returns upload id and whether it exists.
func (t uploadTx) get(id string) (storage.Upload, bool, error) {
	if t.ids == nil {
		return storage.Upload{}, false, nil
	}
	data := t.ids.Get([]byte(id))
	if data == nil {
		return storage.Upload{}, false, nil
	}
	u, err := decodeUpload([]byte(id), data)
	return u, err == nil, err
}

// uploadOwner is an owner's bucket in a transaction.
type uploadOwner struct {
	b, list *bolt.Bucket
	rec     uploadOwnerRec
}

// owner returns owner's bucket, or nil if they have no uploads.
func (t uploadTx) owner(owner string) (*uploadOwner, error) {
	if t.owners == nil {
		return nil, nil
	}
	b := t.owners.Bucket([]byte(owner))
	if b == nil {
		return nil, nil
	}
	o := &uploadOwner{b: b, list: b.Bucket([]byte(uploadList))}
	data := b.Get([]byte(uploadMeta))
	if data == nil || o.list == nil {
		return nil, fmt.Errorf("%w: upload owner %q incomplete", ErrCorrupt, owner)
	}
	var err error
	if o.rec, err = decodeUploadOwner(data); err != nil {
		return nil, err
	}
	return o, nil
}

// bytesSince returns the sum of the sizes of the owner's uploads created
// at or after start.
func (o *uploadOwner) bytesSince(start time.Time) (uint64, error) {
	var sum uint64
	c := o.list.Cursor()
	for k, v := c.Seek(expiryBytes(start)); k != nil; k, v = c.Next() {
		n, err := uploadSize(k, v)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// uploadUpdate runs fn in a write transaction shared with other writes.
// fn returns refused (an error wrapping ErrNotFound, ErrExists or
// ErrLimit) only before it has written anything: then its request commits
// nothing and the others of its batch commit. fn may run more than once.
func (s *Store) uploadUpdate(ctx context.Context, fn func(t uploadTx) (refused, err error)) error {
	var refused error
	err := s.commit.do(ctx, func(tx *bolt.Tx) error {
		t, err := openUploads(tx)
		if err != nil {
			return err
		}
		refused, err = fn(t)
		return err
	})
	if err != nil {
		return err
	}
	return refused
}

// uploadView runs fn in a read transaction.
func (s *Store) uploadView(ctx context.Context, fn func(t uploadTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		t, err := openUploads(tx)
		if err != nil {
			return err
		}
		return fn(t)
	})
}

// CreateUpload implements storage.Uploads. It reads the owner's record
// and, for the day limit, their uploads of the day.
func (s *Store) CreateUpload(ctx context.Context, u storage.Upload, lim storage.UploadLimits) error {
	if err := checkNewUpload(u, lim); err != nil {
		return fmt.Errorf("bbolt: create upload %q of %q: %w", u.ID, u.Owner, err)
	}
	rec := encodeUpload(u)
	size := uint64(u.Size)
	err := s.uploadUpdate(ctx, func(t uploadTx) (error, error) {
		if _, ok, err := t.get(u.ID); ok || err != nil {
			return storage.ErrExists, err
		}
		o, err := t.owner(u.Owner)
		if err != nil {
			return nil, err
		}
		var total, day uint64
		if o != nil {
			total = o.rec.bytes
			if lim.MaxDayBytes > 0 {
				if day, err = o.bytesSince(lim.DayStart); err != nil {
					return nil, err
				}
			}
		}
		// Sums are at most twice MaxInt64, so they cannot overflow.
		if lim.MaxBytes > 0 && total+size > uint64(lim.MaxBytes) {
			return fmt.Errorf("%d bytes in all, more than %d: %w", total+size, lim.MaxBytes, storage.ErrLimit), nil
		}
		if lim.MaxDayBytes > 0 && day+size > uint64(lim.MaxDayBytes) {
			return fmt.Errorf("%d bytes since %v, more than %d: %w", day+size, lim.DayStart.UTC(), lim.MaxDayBytes, storage.ErrLimit), nil
		}
		if total+size > math.MaxInt64 {
			return nil, fmt.Errorf("%d bytes in all, more than can be counted", total+size)
		}

		if err := t.create(); err != nil {
			return nil, err
		}
		if o == nil {
			b, err := t.owners.CreateBucket([]byte(u.Owner))
			if err != nil {
				return nil, err
			}
			o = &uploadOwner{b: b}
			if o.list, err = b.CreateBucket([]byte(uploadList)); err != nil {
				return nil, err
			}
		}
		o.rec.count++
		o.rec.bytes += size
		for _, put := range []struct {
			b    *bolt.Bucket
			k, v []byte
		}{
			{t.ids, []byte(u.ID), rec},
			{o.list, uploadKey(u.Created, u.ID), binary.AppendUvarint(nil, size)},
			{t.expiry, uploadKey(u.Expires, u.ID), []byte{}},
			{o.b, []byte(uploadMeta), encodeUploadOwner(o.rec)},
		} {
			if err := put.b.Put(put.k, put.v); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("bbolt: create upload %q of %q: %w", u.ID, u.Owner, err)
	}
	return nil
}

// Upload implements storage.Uploads.
func (s *Store) Upload(ctx context.Context, id string) (storage.Upload, error) {
	if id == "" {
		return storage.Upload{}, errors.New("bbolt: upload: empty ID")
	}
	var u storage.Upload
	err := s.uploadView(ctx, func(t uploadTx) error {
		var (
			ok  bool
			err error
		)
		u, ok, err = t.get(id)
		if err == nil && !ok {
			err = storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return storage.Upload{}, fmt.Errorf("bbolt: upload %q: %w", id, err)
	}
	return u, nil
}

// SetUploadState implements storage.Uploads.
func (s *Store) SetUploadState(ctx context.Context, id string, from, to storage.UploadState, expires time.Time) error {
	if id == "" || !from.Valid() || !to.Valid() {
		return fmt.Errorf("bbolt: set state of upload %q from %d to %d: empty ID or unknown state", id, from, to)
	}
	if !expires.IsZero() {
		if err := storage.CheckUploadTime("expiry", expires); err != nil {
			return fmt.Errorf("bbolt: set state of upload %q: %w", id, err)
		}
	}
	err := s.uploadUpdate(ctx, func(t uploadTx) (error, error) {
		u, ok, err := t.get(id)
		if !ok || err != nil {
			return storage.ErrNotFound, err
		}
		if u.State != from {
			return fmt.Errorf("it is in state %d: %w", u.State, storage.ErrExists), nil
		}
		u.State = to
		if !expires.IsZero() {
			if err := t.expiry.Delete(uploadKey(u.Expires, id)); err != nil {
				return nil, err
			}
			u.Expires = expires
			if err := t.expiry.Put(uploadKey(u.Expires, id), []byte{}); err != nil {
				return nil, err
			}
		}
		return nil, t.ids.Put([]byte(id), encodeUpload(u))
	})
	if err != nil {
		return fmt.Errorf("bbolt: set state of upload %q from %d to %d: %w", id, from, to, err)
	}
	return nil
}

// DeleteUpload implements storage.Uploads. Deleting an owner's last
// upload drops the owner's bucket. A record that cannot be read is left
// as it is, and the error wraps ErrCorrupt.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("bbolt: delete upload: empty ID")
	}
	// Look first in a read transaction: deleting what is not there costs
	// no write.
	var found bool
	err := s.uploadView(ctx, func(t uploadTx) error {
		found = t.ids != nil && t.ids.Get([]byte(id)) != nil
		return nil
	})
	if err != nil || !found {
		return err
	}
	err = s.uploadUpdate(ctx, func(t uploadTx) (error, error) {
		u, ok, err := t.get(id)
		if !ok || err != nil {
			return nil, err
		}
		o, err := t.owner(u.Owner)
		if err != nil {
			return nil, err
		}
		listKey := uploadKey(u.Created, id)
		if o == nil || o.list.Get(listKey) == nil || o.rec.bytes < uint64(u.Size) {
			return nil, fmt.Errorf("%w: upload %q is not in the list of %q", ErrCorrupt, id, u.Owner)
		}
		for _, del := range []struct {
			b *bolt.Bucket
			k []byte
		}{
			{t.ids, []byte(id)},
			{o.list, listKey},
			{t.expiry, uploadKey(u.Expires, id)},
		} {
			if err := del.b.Delete(del.k); err != nil {
				return nil, err
			}
		}
		o.rec.count--
		o.rec.bytes -= uint64(u.Size)
		if o.rec.count == 0 {
			return nil, t.owners.DeleteBucket([]byte(u.Owner))
		}
		return nil, o.b.Put([]byte(uploadMeta), encodeUploadOwner(o.rec))
	})
	if err != nil {
		return fmt.Errorf("bbolt: delete upload %q: %w", id, err)
	}
	return nil
}

// UserUploads implements storage.Uploads. It reads the owner's list and
// their records.
func (s *Store) UserUploads(ctx context.Context, owner string) ([]storage.Upload, error) {
	if owner == "" {
		return nil, errors.New("bbolt: uploads of user: empty owner")
	}
	var out []storage.Upload
	err := s.uploadView(ctx, func(t uploadTx) error {
		o, err := t.owner(owner)
		if o == nil || err != nil {
			return err
		}
		out = make([]storage.Upload, 0, min(o.rec.count, 1024))
		c := o.list.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			u, err := t.indexed(k)
			if err != nil {
				return err
			}
			if u.Owner != owner || !bytes.Equal(k[:8], expiryBytes(u.Created)) {
				return fmt.Errorf("%w: list of %q: entry %x names upload %q of %q created %v", ErrCorrupt, owner, k, u.ID, u.Owner, u.Created)
			}
			out = append(out, u)
		}
		if uint64(len(out)) != o.rec.count {
			return fmt.Errorf("%w: %q counts %d uploads, has %d", ErrCorrupt, owner, o.rec.count, len(out))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bbolt: uploads of %q: %w", owner, err)
	}
	return out, nil
}

// indexed returns the upload an index key (a time and an ID) names.
func (t uploadTx) indexed(k []byte) (storage.Upload, error) {
	if len(k) <= 8 {
		return storage.Upload{}, fmt.Errorf("%w: upload index key %x", ErrCorrupt, k)
	}
	id := string(k[8:])
	u, ok, err := t.get(id)
	if err == nil && !ok {
		err = fmt.Errorf("%w: upload index key %x without its upload", ErrCorrupt, k)
	}
	return u, err
}

// ExpiredUploads implements storage.Uploads. It reads the expiry index
// from its front, and no upload it does not return.
func (s *Store) ExpiredUploads(ctx context.Context, t time.Time, max int) ([]storage.Upload, error) {
	if max < 1 {
		return nil, fmt.Errorf("bbolt: expired uploads: max %d is less than 1", max)
	}
	cut := expiryBytes(t)
	var out []storage.Upload
	err := s.uploadView(ctx, func(tx uploadTx) error {
		if tx.expiry == nil {
			return nil
		}
		c := tx.expiry.Cursor()
		for k, _ := c.First(); k != nil && len(out) < max && bytes.Compare(k[:min(8, len(k))], cut) <= 0; k, _ = c.Next() {
			u, err := tx.indexed(k)
			if err != nil {
				return err
			}
			if !bytes.Equal(k[:8], expiryBytes(u.Expires)) {
				return fmt.Errorf("%w: expiry index entry %x of upload %q expiring %v", ErrCorrupt, k, u.ID, u.Expires)
			}
			out = append(out, u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bbolt: expired uploads: %w", err)
	}
	return out, nil
}

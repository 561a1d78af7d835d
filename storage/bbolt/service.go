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

// The service data (storage.ServiceData) is two top-level buckets, created
// by the first put so that older files need no migration:
//
//	"service"         a nested bucket per namespace, named by it, holding
//	                  each entry's record under its key
//	"service-expiry"  the expiry index: for each entry with an expiry, the
//	                  key expiry (8 bytes), namespace length (uvarint),
//	                  namespace, key; the value is empty
//
// An expiry is stored as its Unix microseconds, big-endian, with the sign
// bit flipped, so that the index is in time order. An entry record is:
//
//	version  byte, 1
//	expiry   byte 0 for none, or byte 1 and the 8-byte expiry
//	value    the bytes to the end
//
// A namespace's bucket is dropped with its last entry. ExpireServiceData
// reads the index from its front while entries are due, so its cost grows
// with what it removes, not with what it keeps, in transactions of at most
// expireBatch deletions. DeleteServiceNamespace deletes the index entries
// of the namespace's entries and drops its bucket in one transaction.
const (
	serviceBucket = "service"
	serviceExpiry = "service-expiry"
	serviceV1     = 1
)

var _ storage.ServiceData = (*Store)(nil)

var errNoNamespace = errors.New("bbolt: service data: empty namespace")

// expiryBytes returns the 8-byte form of an expiry, the order of the
// index. Times outside years 1 to 9999 are taken as the nearest end of that
// range, so that the conversion cannot overflow.
func expiryBytes(t time.Time) []byte {
	if first := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC); t.Before(first) {
		t = first
	}
	if last := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC); t.After(last) {
		t = last
	}
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(t.UnixMicro())^1<<63)
}

func expiryTime(b []byte) time.Time {
	return time.UnixMicro(int64(binary.BigEndian.Uint64(b) ^ 1<<63)).UTC()
}

// encodeServiceRecord returns the record of an entry; exp is nil or the
// 8-byte expiry.
func encodeServiceRecord(value, exp []byte) []byte {
	b := make([]byte, 0, 10+len(value))
	if exp == nil {
		b = append(b, serviceV1, 0)
	} else {
		b = append(b, serviceV1, 1)
		b = append(b, exp...)
	}
	return append(b, value...)
}

// decodeServiceRecord splits a record into its value and its 8-byte
// expiry (nil for none). Both share memory with data.
func decodeServiceRecord(key, data []byte) (value, exp []byte, err error) {
	switch {
	case len(data) < 2 || data[0] != serviceV1:
		err = errors.New("bad header")
	case data[1] == 0:
		return data[2:], nil, nil
	case data[1] != 1:
		err = fmt.Errorf("unknown expiry kind %d", data[1])
	case len(data) < 10:
		err = errors.New("truncated expiry")
	default:
		return data[10:], data[2:10], nil
	}
	return nil, nil, fmt.Errorf("%w: service record %q: %w", ErrCorrupt, key, err)
}

// serviceIndexKey returns the expiry index key of an entry.
func serviceIndexKey(exp []byte, namespace, key []byte) []byte {
	b := make([]byte, 0, 8+binary.MaxVarintLen64+len(namespace)+len(key))
	b = append(b, exp...)
	b = appendBytes(b, namespace)
	return append(b, key...)
}

// parseServiceIndexKey splits an index key. The results share memory with
// k.
func parseServiceIndexKey(k []byte) (exp, namespace, key []byte, ok bool) {
	if len(k) < 8 {
		return nil, nil, nil, false
	}
	n, w := binary.Uvarint(k[8:])
	rest := k[8:]
	if w <= 0 || n > uint64(len(rest)-w) {
		return nil, nil, nil, false
	}
	rest = rest[w:]
	return k[:8], rest[:n], rest[n:], true
}

// serviceNamespace returns namespace's bucket, or nil.
func serviceNamespace(tx *bolt.Tx, namespace string) *bolt.Bucket {
	return userBucket(tx, serviceBucket, namespace)
}

// live reports whether an entry with the 8-byte expiry exp (nil for none)
// has not expired at now (also 8 bytes).
func live(exp, now []byte) bool { return exp == nil || bytes.Compare(now, exp) < 0 }

// ServiceValue implements storage.ServiceData.
func (s *Store) ServiceValue(ctx context.Context, namespace, key string) ([]byte, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, err
	}
	if namespace == "" {
		return nil, time.Time{}, errNoNamespace
	}
	now := expiryBytes(time.Now())
	var (
		value   []byte
		expires time.Time
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := serviceNamespace(tx, namespace)
		if b == nil || key == "" {
			return storage.ErrNotFound
		}
		rec := b.Get([]byte(key))
		if rec == nil {
			return storage.ErrNotFound
		}
		v, exp, err := decodeServiceRecord([]byte(key), rec)
		if err != nil {
			return err
		}
		if !live(exp, now) {
			return storage.ErrNotFound
		}
		value = bytes.Clone(v)
		if value == nil {
			value = []byte{}
		}
		if exp != nil {
			expires = expiryTime(exp)
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("bbolt: service value %q in %q: %w", key, namespace, err)
	}
	return value, expires, nil
}

// PutServiceValue implements storage.ServiceData. Concurrent puts share
// one commit.
func (s *Store) PutServiceValue(ctx context.Context, namespace, key string, value []byte, expires time.Time) error {
	if namespace == "" || key == "" {
		return fmt.Errorf("bbolt: put service value %q in %q: empty namespace or key", key, namespace)
	}
	if y := expires.UTC().Year(); !expires.IsZero() && (y < 1 || y > 9999) {
		return fmt.Errorf("bbolt: put service value %q in %q: expiry %v outside years 1 to 9999", key, namespace, expires)
	}
	var exp []byte
	if !expires.IsZero() {
		exp = expiryBytes(expires)
	}
	rec := encodeServiceRecord(value, exp)
	err := s.commit.do(ctx, func(tx *bolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists([]byte(serviceBucket))
		if err != nil {
			return err
		}
		b, err := top.CreateBucketIfNotExists([]byte(namespace))
		if err != nil {
			return err
		}
		if err := unindexServiceEntry(tx, namespace, key, b.Get([]byte(key))); err != nil {
			return err
		}
		if err := b.Put([]byte(key), rec); err != nil {
			return err
		}
		if exp == nil {
			return nil
		}
		idx, err := tx.CreateBucketIfNotExists([]byte(serviceExpiry))
		if err != nil {
			return err
		}
		return idx.Put(serviceIndexKey(exp, []byte(namespace), []byte(key)), []byte{})
	})
	if err != nil {
		return fmt.Errorf("bbolt: put service value %q in %q: %w", key, namespace, err)
	}
	return nil
}

// unindexServiceEntry deletes the index entry of the entry whose record is
// rec, if it has an expiry. A record it cannot read has no index entry it
// can find; the expiry sweep drops such strays.
func unindexServiceEntry(tx *bolt.Tx, namespace, key string, rec []byte) error {
	if rec == nil {
		return nil
	}
	_, exp, err := decodeServiceRecord([]byte(key), rec)
	if err != nil || exp == nil {
		return nil
	}
	idx := tx.Bucket([]byte(serviceExpiry))
	if idx == nil {
		return nil
	}
	return idx.Delete(serviceIndexKey(exp, []byte(namespace), []byte(key)))
}

// DeleteServiceValue implements storage.ServiceData. Deleting a
// namespace's last entry drops the namespace's bucket.
func (s *Store) DeleteServiceValue(ctx context.Context, namespace, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if namespace == "" {
		return errNoNamespace
	}
	if key == "" {
		return nil
	}
	// Look first in a read transaction: deleting what is not there costs
	// no write.
	var found bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		if b := serviceNamespace(tx, namespace); b != nil {
			found = b.Get([]byte(key)) != nil
		}
		return nil
	})
	if !found {
		return nil
	}
	err := s.commit.do(ctx, func(tx *bolt.Tx) error {
		b := serviceNamespace(tx, namespace)
		if b == nil {
			return nil
		}
		if err := unindexServiceEntry(tx, namespace, key, b.Get([]byte(key))); err != nil {
			return err
		}
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
		return dropEmptyNamespace(tx, b, []byte(namespace))
	})
	if err != nil {
		return fmt.Errorf("bbolt: delete service value %q in %q: %w", key, namespace, err)
	}
	return nil
}

// dropEmptyNamespace drops the namespace's bucket b if it is empty.
func dropEmptyNamespace(tx *bolt.Tx, b *bolt.Bucket, namespace []byte) error {
	if k, _ := b.Cursor().First(); k != nil {
		return nil
	}
	return tx.Bucket([]byte(serviceBucket)).DeleteBucket(namespace)
}

// ServiceKeys implements storage.ServiceData. It seeks to the start of the
// page and reads no entry past its end.
func (s *Store) ServiceKeys(ctx context.Context, namespace string, q storage.ServiceKeysQuery) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if namespace == "" {
		return nil, errNoNamespace
	}
	if q.Max < 1 {
		return nil, fmt.Errorf("bbolt: service keys of %q: Max %d is less than 1", namespace, q.Max)
	}
	now := expiryBytes(time.Now())
	prefix, after := []byte(q.Prefix), []byte(q.After)
	var keys []string
	err := s.db.View(func(tx *bolt.Tx) error {
		b := serviceNamespace(tx, namespace)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		start := prefix
		if bytes.Compare(after, prefix) > 0 {
			start = after
		}
		k, v := c.Seek(start)
		if len(after) > 0 && bytes.Equal(k, after) {
			k, v = c.Next()
		}
		// Keys come sorted by bytes, which is how Go sorts strings.
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(keys) < q.Max; k, v = c.Next() {
			_, exp, err := decodeServiceRecord(k, v)
			if err != nil {
				return err
			}
			if live(exp, now) {
				keys = append(keys, string(k))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bbolt: service keys of %q: %w", namespace, err)
	}
	return keys, nil
}

// DeleteServiceNamespace implements storage.ServiceData. It reads every
// entry of the namespace to delete their index entries, in one
// transaction: for 100,000 entries, half with an expiry, about 80 ms on
// the development machine (BenchmarkServiceData).
func (s *Store) DeleteServiceNamespace(ctx context.Context, namespace string) error {
	if namespace == "" {
		return errNoNamespace
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var found bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		found = serviceNamespace(tx, namespace) != nil
		return nil
	})
	if !found {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := serviceNamespace(tx, namespace)
		if b == nil {
			return nil
		}
		err := b.ForEach(func(k, v []byte) error {
			return unindexServiceEntry(tx, namespace, string(k), v)
		})
		if err != nil {
			return err
		}
		return tx.Bucket([]byte(serviceBucket)).DeleteBucket([]byte(namespace))
	})
	if err != nil {
		return fmt.Errorf("bbolt: delete service namespace %q: %w", namespace, err)
	}
	return nil
}

// ExpireServiceData implements storage.ServiceData. It reads the expiry
// index from its front, so it reads nothing it keeps, in write
// transactions that each visit at most expireBatch index entries. An index
// entry left by a changed expiry is dropped without counting towards
// limit.
func (s *Store) ExpireServiceData(ctx context.Context, t time.Time, limit int) (int, error) {
	cut := expiryBytes(t)
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		if limit > 0 && total >= limit {
			return total, nil
		}
		var (
			removed  int
			finished bool
		)
		err := s.db.Update(func(tx *bolt.Tx) error {
			removed = 0
			idx := tx.Bucket([]byte(serviceExpiry))
			if idx == nil {
				finished = true
				return nil
			}
			c := idx.Cursor()
			visited := 0
			for k, _ := c.First(); k != nil && bytes.Compare(k[:min(8, len(k))], cut) <= 0; k, _ = c.First() {
				if visited == expireBatch || limit > 0 && total+removed >= limit {
					return nil
				}
				visited++
				if err := expireServiceEntry(tx, bytes.Clone(k), &removed); err != nil {
					return err
				}
			}
			finished = true
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("bbolt: expire service data: %w", err)
		}
		total += removed
		if finished {
			return total, nil
		}
	}
}

// expireServiceEntry deletes the index entry k and the entry it names,
// and adds 1 to removed if it deleted an entry. An index entry whose entry
// has another expiry (or is gone) is only dropped; an entry whose record
// cannot be read is deleted with its index entry.
func expireServiceEntry(tx *bolt.Tx, k []byte, removed *int) error {
	if err := tx.Bucket([]byte(serviceExpiry)).Delete(k); err != nil {
		return err
	}
	exp, namespace, key, ok := parseServiceIndexKey(k)
	if !ok {
		return nil
	}
	b := userBucket(tx, serviceBucket, string(namespace))
	if b == nil {
		return nil
	}
	rec := b.Get(key)
	if rec == nil {
		return nil
	}
	if _, recExp, err := decodeServiceRecord(key, rec); err == nil && !bytes.Equal(recExp, exp) {
		return nil
	}
	if err := b.Delete(key); err != nil {
		return err
	}
	*removed++
	return dropEmptyNamespace(tx, b, namespace)
}

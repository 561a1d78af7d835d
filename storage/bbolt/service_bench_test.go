package bbolt

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

// benchServiceKeys is the size of the namespace the service data
// benchmarks use; every second entry has an expiry, one a second.
const benchServiceKeys = 100_000

var benchServiceStart = time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)

// benchServiceStore returns a new store holding benchServiceKeys entries
// of about 100 bytes in the namespace "big", written straight in a few
// transactions (through PutServiceValue each would cost a commit).
func benchServiceStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "kiez.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	value := make([]byte, 100)
	const perTx = 20_000
	for start := 0; start < benchServiceKeys; start += perTx {
		err := s.db.Update(func(tx *bolt.Tx) error {
			top, err := tx.CreateBucketIfNotExists([]byte(serviceBucket))
			if err != nil {
				return err
			}
			ns, err := top.CreateBucketIfNotExists([]byte("big"))
			if err != nil {
				return err
			}
			idx, err := tx.CreateBucketIfNotExists([]byte(serviceExpiry))
			if err != nil {
				return err
			}
			for i := start; i < start+perTx; i++ {
				key := fmt.Appendf(nil, "key-%07d", i)
				var exp []byte
				if i%2 == 0 {
					exp = expiryBytes(benchServiceStart.Add(time.Duration(i) * time.Second))
					if err := idx.Put(serviceIndexKey(exp, []byte("big"), key), []byte{}); err != nil {
						return err
					}
				}
				if err := ns.Put(key, encodeServiceRecord(value, exp)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkServiceData measures, on a namespace of benchServiceKeys
// entries, a page of 100 keys from the middle, one value, a sweep that
// removes 1,000 entries, and deleting the whole namespace.
func BenchmarkServiceData(b *testing.B) {
	b.Run("Keys100", func(b *testing.B) {
		s := benchServiceStore(b)
		q := storage.ServiceKeysQuery{After: fmt.Sprintf("key-%07d", benchServiceKeys/2), Max: 100}
		for b.Loop() {
			if keys, err := s.ServiceKeys(b.Context(), "big", q); err != nil || len(keys) != 100 {
				b.Fatal(len(keys), err)
			}
		}
	})
	b.Run("Value", func(b *testing.B) {
		s := benchServiceStore(b)
		key := fmt.Sprintf("key-%07d", benchServiceKeys/2+1)
		for b.Loop() {
			if _, _, err := s.ServiceValue(b.Context(), "big", key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Expire1000", func(b *testing.B) {
		var s *Store
		var cut time.Time
		for b.Loop() {
			if s == nil || !cut.Add(2000*time.Second).Before(benchServiceStart.Add(benchServiceKeys*time.Second)) {
				b.StopTimer()
				s, cut = benchServiceStore(b), benchServiceStart.Add(-time.Second)
				b.StartTimer()
			}
			cut = cut.Add(2000 * time.Second) // 1,000 entries with an expiry
			if n, err := s.ExpireServiceData(b.Context(), cut, 0); err != nil || n != 1000 {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("DeleteNamespace", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			s := benchServiceStore(b)
			b.StartTimer()
			if err := s.DeleteServiceNamespace(b.Context(), "big"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

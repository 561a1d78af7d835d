package bbolt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

var uploadGoldenTime = time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)

var uploadGolden = storage.Upload{
	ID: "x", Owner: "a@b", Filename: "f.jpg", Size: 300, ContentType: "image/jpeg",
	State: storage.UploadComplete, Created: uploadGoldenTime, Expires: uploadGoldenTime.Add(24 * time.Hour),
}

// TestUploadRecordFormats pins the bytes of the upload records and index
// keys (version 1), so that a change of format cannot go unnoticed: files
// written by older versions must still read.
func TestUploadRecordFormats(t *testing.T) {
	minimal := storage.Upload{ID: "y", Owner: "a", State: storage.UploadSlot, Expires: time.Unix(0, 1000).UTC()}
	for _, tt := range []struct {
		name string
		got  []byte
		want string
	}{
		// version, state, created, expires, size, owner, filename, type
		{"upload", encodeUpload(uploadGolden), "01" + "03" + "80c99cb0aca09b06" + "80c9d78db0a59b06" + "ac02" + "03614062" + "05662e6a7067" + "696d6167652f6a706567"},
		// created at the zero Time, expiring a microsecond after 1970
		{"minimal upload", encodeUpload(minimal), "0101" + "ffffddf2dfffdfdc01" + "02" + "00" + "0161" + "00"},
		{"owner", encodeUploadOwner(uploadOwnerRec{count: 2, bytes: 300}), "0102ac02"},
		{"index key", uploadKey(uploadGoldenTime, "x"), "8006368163039240" + "78"},
	} {
		if h := hex.EncodeToString(tt.got); h != tt.want {
			t.Errorf("%s = %s, want %s", tt.name, h, tt.want)
		}
	}
	hexBytes := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if u, err := decodeUpload([]byte("x"), hexBytes("010380c99cb0aca09b0680c9d78db0a59b06ac020361406205662e6a7067696d6167652f6a706567")); err != nil || u != uploadGolden {
		t.Errorf("decodeUpload = %+v, %v; want %+v", u, err, uploadGolden)
	}
	if u, err := decodeUpload([]byte("y"), hexBytes("0101ffffddf2dfffdfdc010200016100")); err != nil || u != minimal {
		t.Errorf("decodeUpload of the minimal record = %+v, %v; want %+v", u, err, minimal)
	}
	if o, err := decodeUploadOwner(hexBytes("0102ac02")); err != nil || o != (uploadOwnerRec{count: 2, bytes: 300}) {
		t.Errorf("decodeUploadOwner = %+v, %v", o, err)
	}
	for _, bad := range []string{
		"",
		"02030000000000",                     // version 2
		"01040000000000",                     // state 4
		"01000000000000",                     // state 0
		"010300000000",                       // truncated
		"0103000000000161ff",                 // filename longer than the record
		"0103000000000000",                   // empty owner
		"0103fffffffffffffffffe01000000",     // created out of range
		"01030000ffffffffffffffffff01000161", // size past 2⁶³-1
	} {
		if u, err := decodeUpload([]byte("z"), hexBytes(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeUpload(%s) = %+v, %v; want ErrCorrupt", bad, u, err)
		}
	}
	for _, bad := range []string{"", "0100ac02", "0102ac0200", "020102"} {
		if o, err := decodeUploadOwner(hexBytes(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeUploadOwner(%s) = %+v, %v; want ErrCorrupt", bad, o, err)
		}
	}
}

func FuzzDecodeUploadRecords(f *testing.F) {
	f.Add(encodeUpload(uploadGolden))
	f.Add(encodeUpload(storage.Upload{Owner: "a", State: storage.UploadSlot, Expires: time.Unix(0, 1000)}))
	f.Add(encodeUploadOwner(uploadOwnerRec{count: 2, bytes: 300}))
	f.Add([]byte{})
	f.Add([]byte{uploadV1, 1, 0x80, 0}) // a non-minimal varint
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		if u, err := decodeUpload([]byte("id"), in); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeUpload error %v does not wrap ErrCorrupt", err)
			}
		} else {
			for i := range in {
				in[i] ^= 0xff // the result must not share memory with its input
			}
			again, err := decodeUpload([]byte("id"), encodeUpload(u))
			if err != nil || again != u {
				t.Fatalf("upload round trip: %+v → %+v, %v", u, again, err)
			}
			copy(in, data)
		}
		if o, err := decodeUploadOwner(in); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeUploadOwner error %v does not wrap ErrCorrupt", err)
			}
		} else if again, err := decodeUploadOwner(encodeUploadOwner(o)); err != nil || again != o {
			t.Fatalf("owner round trip: %+v → %+v, %v", o, again, err)
		}
	})
}

// TestUploadsAgainstMemory runs one random sequence of operations on a
// Store and on the memory backend and compares every result; at points on
// the way and after it, the file's counts and indexes must agree with the
// records.
func TestUploadsAgainstMemory(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "kiez.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := memory.New()
	rng := rand.New(rand.NewPCG(3, 4))
	owners := []string{"a@example.org", "b@example.org", "c@example.org"}
	ids := []string{"i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8", "i9", "i10", "i11", "i12"}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	// Times on a coarse grid, so that ties happen, with nanoseconds to
	// cut.
	when := func() time.Time {
		return base.Add(time.Duration(rng.IntN(20))*time.Hour + time.Duration(rng.IntN(3))*time.Microsecond + time.Duration(rng.IntN(1000)))
	}
	state := func() storage.UploadState { return storage.UploadState(1 + rng.IntN(3)) }
	kind := func(err error) string {
		for _, e := range []error{storage.ErrNotFound, storage.ErrExists, storage.ErrLimit} {
			if errors.Is(err, e) {
				return e.Error()
			}
		}
		if err != nil {
			return "error"
		}
		return "ok"
	}
	for op := range 3000 {
		var got, want string
		switch r := rng.IntN(20); {
		case r < 8:
			u := storage.Upload{ID: pick(ids), Owner: pick(owners), Filename: fmt.Sprintf("f%d", op), Size: int64(rng.IntN(100)),
				ContentType: "text/plain", State: storage.UploadSlot, Created: when(), Expires: when()}
			var lim storage.UploadLimits
			if rng.IntN(2) == 0 {
				lim.MaxBytes = int64(rng.IntN(400))
			}
			if rng.IntN(2) == 0 {
				lim.MaxDayBytes, lim.DayStart = int64(rng.IntN(200)), when()
			}
			got, want = kind(s.CreateUpload(ctx, u, lim)), kind(m.CreateUpload(ctx, u, lim))
		case r < 12:
			id, from, to := pick(ids), state(), state()
			var exp time.Time
			if rng.IntN(2) == 0 {
				exp = when()
			}
			got, want = kind(s.SetUploadState(ctx, id, from, to, exp)), kind(m.SetUploadState(ctx, id, from, to, exp))
		case r < 15:
			id := pick(ids)
			got, want = kind(s.DeleteUpload(ctx, id)), kind(m.DeleteUpload(ctx, id))
		case r < 17:
			owner := pick(owners)
			u1, e1 := s.UserUploads(ctx, owner)
			u2, e2 := m.UserUploads(ctx, owner)
			got, want = fmt.Sprint(u1, kind(e1)), fmt.Sprint(u2, kind(e2))
		default:
			at, max := when(), 1+rng.IntN(5)
			u1, e1 := s.ExpiredUploads(ctx, at, max)
			u2, e2 := m.ExpiredUploads(ctx, at, max)
			got, want = fmt.Sprint(u1, kind(e1)), fmt.Sprint(u2, kind(e2))
		}
		if got != want {
			t.Fatalf("operation %d: bbolt %s, memory %s", op, got, want)
		}
		if op%100 == 99 {
			checkUploadFile(t, s.db)
		}
	}
	for _, id := range ids {
		u1, e1 := s.Upload(ctx, id)
		u2, e2 := m.Upload(ctx, id)
		if u1 != u2 || kind(e1) != kind(e2) {
			t.Errorf("upload %s: bbolt %+v, %v; memory %+v, %v", id, u1, e1, u2, e2)
		}
	}
	checkUploadFile(t, s.db)
}

// checkUploadFile fails unless every upload record is in its owner's list
// and in the expiry index under its times, every index entry names a
// record, and every owner's counts agree with their list.
func checkUploadFile(t *testing.T, db *bolt.DB) {
	t.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		ut, err := openUploads(tx)
		if err != nil || ut.ids == nil {
			return err
		}
		records := 0
		err = ut.ids.ForEach(func(id, v []byte) error {
			records++
			u, err := decodeUpload(id, v)
			if err != nil {
				return err
			}
			o, err := ut.owner(u.Owner)
			if err != nil || o == nil {
				return fmt.Errorf("upload %s: owner %s: %v", id, u.Owner, err)
			}
			size := o.list.Get(uploadKey(u.Created, u.ID))
			if n, err := uploadSize(nil, size); err != nil || n != uint64(u.Size) {
				return fmt.Errorf("upload %s: list entry %x, size %d", id, size, u.Size)
			}
			if ut.expiry.Get(uploadKey(u.Expires, u.ID)) == nil {
				return fmt.Errorf("upload %s: no expiry index entry", id)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n := ut.expiry.Stats().KeyN; n != records {
			return fmt.Errorf("%d expiry index entries for %d uploads", n, records)
		}
		listed := 0
		err = ut.owners.ForEach(func(owner, _ []byte) error {
			o, err := ut.owner(string(owner))
			if err != nil {
				return err
			}
			var count, sum uint64
			err = o.list.ForEach(func(k, v []byte) error {
				n, err := uploadSize(k, v)
				if err != nil {
					return err
				}
				u, err := ut.indexed(k)
				if err != nil || u.Owner != string(owner) {
					return fmt.Errorf("list of %s: entry %x names %+v, %v", owner, k, u, err)
				}
				count++
				sum += n
				return nil
			})
			if err != nil {
				return err
			}
			if count != o.rec.count || sum != o.rec.bytes {
				return fmt.Errorf("owner %s counts %d uploads of %d bytes, has %d of %d", owner, o.rec.count, o.rec.bytes, count, sum)
			}
			listed += int(count)
			return nil
		})
		if err != nil {
			return err
		}
		if listed != records {
			return fmt.Errorf("%d uploads listed for %d records", listed, records)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package bbolt

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// recordSeeds are accounts whose encodings seed FuzzDecodeAccount and
// which TestRecordRoundTrip checks.
func recordSeeds() []storage.Account {
	return []storage.Account{
		{
			JID: "alice@example.org",
			Keys: map[storage.Hash]storage.SCRAMKeys{
				storage.SHA1:   {Salt: []byte("salt-1"), Iterations: 4096, StoredKey: bytes.Repeat([]byte{1}, 20), ServerKey: bytes.Repeat([]byte{2}, 20)},
				storage.SHA256: {Salt: []byte("salt-256"), Iterations: 4096, StoredKey: bytes.Repeat([]byte{3}, 32), ServerKey: bytes.Repeat([]byte{4}, 32)},
				storage.SHA512: {Salt: []byte("salt-512"), Iterations: 10000, StoredKey: bytes.Repeat([]byte{5}, 64), ServerKey: bytes.Repeat([]byte{6}, 64)},
			},
			Created:   time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC),
			LastLogin: time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC),
		},
		{
			JID:  "empty@example.org",
			Keys: map[storage.Hash]storage.SCRAMKeys{},
		},
		{
			JID: "edges@example.org",
			Keys: map[storage.Hash]storage.SCRAMKeys{
				"":              {},
				storage.SHA256:  {Iterations: -1},
				"SHA3-512-PLUS": {Salt: []byte{0}, Iterations: 1 << 40, StoredKey: []byte{}, ServerKey: nil},
			},
			Created:   time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC),
			LastLogin: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
		},
		{
			JID:     "epoch@example.org",
			Created: time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC),
			Keys: map[storage.Hash]storage.SCRAMKeys{
				storage.SHA1: {Salt: []byte("s"), Iterations: 1, StoredKey: []byte("k"), ServerKey: []byte("v")},
			},
			LastLogin: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		},
	}
}

// normalize returns a as decoding should give it back: empty byte slices
// as nil and a non-nil map.
func normalize(a storage.Account) storage.Account {
	keys := make(map[storage.Hash]storage.SCRAMKeys, len(a.Keys))
	for h, k := range a.Keys {
		for _, b := range []*[]byte{&k.Salt, &k.StoredKey, &k.ServerKey} {
			if len(*b) == 0 {
				*b = nil
			}
		}
		keys[h] = k
	}
	a.Keys = keys
	return a
}

func TestRecordRoundTrip(t *testing.T) {
	for _, want := range recordSeeds() {
		t.Run(want.JID, func(t *testing.T) {
			rec, err := encodeAccount(want)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			got, err := decodeAccount(want.JID, rec)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if w := normalize(want); !reflect.DeepEqual(got, w) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, w)
			}
		})
	}
}

func TestRecordZeroTime(t *testing.T) {
	rec, err := encodeAccount(storage.Account{JID: "a@example.org"})
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	a, err := decodeAccount("a@example.org", rec)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	// Exactly the zero value, not just an equal instant.
	if a.Created != (time.Time{}) || a.LastLogin != (time.Time{}) {
		t.Errorf("zero days decode to %#v, %#v", a.Created, a.LastLogin)
	}
}

func TestRecordDaysOutOfRange(t *testing.T) {
	for _, day := range []time.Time{
		time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		if _, err := encodeAccount(storage.Account{JID: "a@example.org", Created: day}); err == nil {
			t.Errorf("encoding Created %v succeeded", day)
		}
		if _, err := encodeAccount(storage.Account{JID: "a@example.org", LastLogin: day}); err == nil {
			t.Errorf("encoding LastLogin %v succeeded", day)
		}
	}
}

func TestRecordDecodeErrors(t *testing.T) {
	valid, err := encodeAccount(recordSeeds()[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"version 0", []byte{0}},
		{"version 2", append([]byte{2}, valid[1:]...)},
		{"only version", []byte{recordVersion}},
		{"bad varint", []byte{recordVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"day too late", append([]byte{recordVersion}, 0xfe, 0xff, 0xff, 0xff, 0x0f, 0, 0)},
		{"count lies", []byte{recordVersion, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"length lies", []byte{recordVersion, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0}},
		{"repeated hash", []byte{recordVersion, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"truncated", valid[:len(valid)-1]},
		{"trailing", append(bytes.Clone(valid), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := decodeAccount("a@example.org", tt.data)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode = %+v, %v; want ErrCorrupt", a, err)
			}
			t.Log(err)
		})
	}
}

// TestRecordGolden decodes a version 1 record written by an earlier build
// (testdata/account-v1.bin, the encoding of recordSeeds()[0]). Records on
// disk outlive the code that wrote them: if this fails, the format changed
// without a new version and a decoder for the old one.
func TestRecordGolden(t *testing.T) {
	rec, err := os.ReadFile("testdata/account-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	want := recordSeeds()[0]
	got, err := decodeAccount(want.JID, rec)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !reflect.DeepEqual(got, normalize(want)) {
		t.Errorf("decoded\n %+v\nwant\n %+v", got, want)
	}
	again, err := encodeAccount(got)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	if !bytes.Equal(again, rec) {
		t.Errorf("encoding changed:\n got %x\nwant %x", again, rec)
	}
}

func FuzzDecodeAccount(f *testing.F) {
	golden, err := os.ReadFile("testdata/account-v1.bin")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	for _, a := range recordSeeds() {
		rec, err := encodeAccount(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		a, err := decodeAccount("fuzz@example.org", in)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// The result must not share memory with its input.
		for i := range in {
			in[i] ^= 0xff
		}
		again, err := decodeAccount("fuzz@example.org", data)
		if err != nil {
			t.Fatalf("second decode of the same bytes: %v", err)
		}
		if !reflect.DeepEqual(a, again) {
			t.Fatalf("decoded account changed with its input:\n%+v\n%+v", a, again)
		}
		// Whatever decodes must encode, and decode to the same again.
		rec, err := encodeAccount(a)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", a, err)
		}
		b, err := decodeAccount("fuzz@example.org", rec)
		if err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the account:\n%+v\n%+v", a, b)
		}
	})
}

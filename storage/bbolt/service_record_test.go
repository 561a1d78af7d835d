package bbolt

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"
)

// TestServiceRecordGolden decodes a service data record written by version
// 1 (testdata/service-record-v1.bin: the value <room name='Kitchen'/>,
// expiring at 2400-01-01 00:00:00.123456 UTC). If this fails, the format
// changed without a new version.
func TestServiceRecordGolden(t *testing.T) {
	rec, err := os.ReadFile("testdata/service-record-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	value, exp, err := decodeServiceRecord([]byte("k"), rec)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := time.Date(2400, 1, 1, 0, 0, 0, 123456000, time.UTC)
	if string(value) != "<room name='Kitchen'/>" || !expiryTime(exp).Equal(want) {
		t.Errorf("decoded %q expiring %v, want the kitchen expiring %v", value, expiryTime(exp), want)
	}
	if again := encodeServiceRecord(value, expiryBytes(want)); !bytes.Equal(again, rec) {
		t.Errorf("encoding changed:\n got %x\nwant %x", again, rec)
	}
}

// Expiries keep their order in the index, before and after 1970 too, and
// times beyond years 1 to 9999 are taken as the nearest end.
func TestServiceExpiryOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Unix(0, 0),
		time.Unix(0, 1000),
		time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		if bytes.Compare(expiryBytes(times[i-1]), expiryBytes(times[i])) >= 0 {
			t.Errorf("%v does not sort before %v", times[i-1], times[i])
		}
	}
	for _, tt := range times[1:] {
		if got := expiryTime(expiryBytes(tt)); !got.Equal(tt) {
			t.Errorf("%v comes back as %v", tt, got)
		}
	}
	for _, tt := range []struct{ t, as time.Time }{
		{time.Date(-300000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC), times[len(times)-1]},
	} {
		if got := expiryTime(expiryBytes(tt.t)); !got.Equal(tt.as) {
			t.Errorf("%v is taken as %v, want %v", tt.t, got, tt.as)
		}
	}
}

func FuzzDecodeServiceRecords(f *testing.F) {
	golden, err := os.ReadFile("testdata/service-record-v1.bin")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add(encodeServiceRecord(nil, nil))
	f.Add(encodeServiceRecord([]byte("v"), expiryBytes(time.Unix(0, 0))))
	f.Add(serviceIndexKey(expiryBytes(time.Unix(1, 0)), []byte("muc:conference.example.org"), []byte("room")))
	f.Fuzz(func(t *testing.T, data []byte) {
		if value, exp, err := decodeServiceRecord([]byte("k"), data); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("record decode error %v does not wrap ErrCorrupt", err)
			}
		} else {
			again := encodeServiceRecord(value, exp)
			if !bytes.Equal(again, data) {
				t.Fatalf("record round trip: %x → %x", data, again)
			}
		}
		if exp, ns, key, ok := parseServiceIndexKey(data); ok {
			if again := serviceIndexKey(exp, ns, key); !bytes.Equal(again, data) {
				// A uvarint may have redundant bytes; its value must agree.
				if e2, ns2, key2, ok := parseServiceIndexKey(again); !ok || !bytes.Equal(e2, exp) || !bytes.Equal(ns2, ns) || !bytes.Equal(key2, key) {
					t.Fatalf("index key round trip: %x → %x", data, again)
				}
			}
		}
	})
}

package bbolt

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/internal/rosterver"
)

func rosterSeeds() []storage.RosterItem {
	return []storage.RosterItem{
		{JID: "carol@example.org", Name: "Carol ✓", Groups: []string{"Friends", "Work"}, Subscription: storage.SubBoth, Ask: true, Approved: true, PendingIn: true},
		{JID: "dave@example.org", Subscription: storage.SubNone},
		{JID: "eve@example.org", Subscription: storage.SubFrom, Groups: []string{"x"}, PendingIn: true},
	}
}

// TestRosterRecordGolden decodes a roster item record written by version 1
// (testdata/roster-item-v1.bin, the encoding of rosterSeeds()[0] at
// counter 300). If this fails, the format changed without a new version.
func TestRosterRecordGolden(t *testing.T) {
	rec, err := os.ReadFile("testdata/roster-item-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	want := rosterSeeds()[0]
	got, ver, err := decodeRosterItem(want.JID, rec)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !reflect.DeepEqual(got, want) || ver != 300 {
		t.Errorf("decoded %+v at %d, want %+v at 300", got, ver, want)
	}
	if again := encodeRosterItem(got, ver); !bytes.Equal(again, rec) {
		t.Errorf("encoding changed:\n got %x\nwant %x", again, rec)
	}
}

func FuzzDecodeRosterRecords(f *testing.F) {
	golden, err := os.ReadFile("testdata/roster-item-v1.bin")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	for i, it := range rosterSeeds() {
		f.Add(encodeRosterItem(it, uint64(i)))
	}
	f.Add(encodeRosterMeta(rosterMetaRec{ver: rosterver.Version{Gen: 0xdeadbeef, N: 7}, floor: 2, tombs: 3}))
	f.Add(encodeTombstone(12))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		if it, ver, err := decodeRosterItem("c@example.org", in); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("item decode error %v does not wrap ErrCorrupt", err)
			}
		} else {
			for i := range in {
				in[i] ^= 0xff // the result must not share memory with its input
			}
			again, ver2, err := decodeRosterItem("c@example.org", encodeRosterItem(it, ver))
			if err != nil || ver2 != ver || !reflect.DeepEqual(again, it) {
				t.Fatalf("item round trip: %+v at %d → %+v at %d, %v", it, ver, again, ver2, err)
			}
		}
		if m, err := decodeRosterMeta(data); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("meta decode error %v does not wrap ErrCorrupt", err)
			}
		} else if again, err := decodeRosterMeta(encodeRosterMeta(m)); err != nil || again != m {
			t.Fatalf("meta round trip: %+v → %+v, %v", m, again, err)
		}
		if v, err := decodeTombstone("c@example.org", data); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("tombstone decode error %v does not wrap ErrCorrupt", err)
			}
		} else if again, err := decodeTombstone("c@example.org", encodeTombstone(v)); err != nil || again != v {
			t.Fatalf("tombstone round trip: %d → %d, %v", v, again, err)
		}
	})
}

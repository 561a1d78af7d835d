package bbolt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// TestRecordFormats pins the bytes of the offline and archive records, so
// that a change of format cannot go unnoticed: files written by older
// versions must still read.
func TestRecordFormats(t *testing.T) {
	stored := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		got  []byte
		want string
	}{
		{"archive meta", encodeArchiveMeta(archiveMetaRec{last: 1748779200000000, count: 3}), "0180e0869896d08d0303"},
		{"archive message", encodeArchiveMsg("bob@example.org/r", []byte("<m/>")), "0111626f62406578616d706c652e6f72672f723c6d2f3e"},
		{"archive chunk", appendChunkRec(appendChunkRec([]byte{archiveChunkV}, 7, 7, "bob@example.org/r", []byte("<m/>")), 7, 300, "c@d", nil), "020011626f62406578616d706c652e6f72672f72043c6d2f3ea5020363406400"},
		{"archive index", withKey("bob@example.org", 0x0102030405060708), "626f62406578616d706c652e6f7267000102030405060708"},
		{"offline meta", encodeOfflineMeta(offlineMetaRec{seq: 300, count: 2}), "01ac0202"},
		{"offline message", encodeOfflineMsg(storage.OfflineMessage{Stored: stored, Data: []byte("<m/>")}), "018083e2830d3c6d2f3e"},
	} {
		if h := hex.EncodeToString(tt.got); h != tt.want {
			t.Errorf("%s = %s, want %s", tt.name, h, tt.want)
		}
	}
	m, err := decodeArchiveMsg(be64(7), encodeArchiveMsg("bob@example.org/r", []byte("<m/>")), true)
	if err != nil || m.ID != 7 || m.With != "bob@example.org/r" || string(m.Data) != "<m/>" {
		t.Errorf("decodeArchiveMsg = %+v, %v", m, err)
	}
	recs, err := decodeChunk(be64(7), appendChunkRec(appendChunkRec([]byte{archiveChunkV}, 7, 7, "bob@example.org/r", []byte("<m/>")), 7, 300, "c@d", nil), nil)
	if err != nil || len(recs) != 2 || recs[0].id != 7 || string(recs[0].with) != "bob@example.org/r" || string(recs[0].data) != "<m/>" || recs[1].id != 300 || string(recs[1].with) != "c@d" || len(recs[1].data) != 0 {
		t.Errorf("decodeChunk = %+v, %v", recs, err)
	}
	o, err := decodeOfflineMsg(be64(9), encodeOfflineMsg(storage.OfflineMessage{Stored: stored.Add(700 * time.Millisecond), Data: []byte("<m/>")}))
	if err != nil || o.Seq != 9 || !o.Stored.Equal(stored) || string(o.Data) != "<m/>" {
		t.Errorf("decodeOfflineMsg = %+v, %v", o, err)
	}
}

func FuzzDecodeArchiveRecords(f *testing.F) {
	f.Add(encodeArchiveMsg("bob@example.org/r", []byte("<m/>")))
	f.Add(encodeArchiveMsg("", nil))
	f.Add(encodeArchiveMeta(archiveMetaRec{last: 1 << 60, count: 5}))
	f.Add([]byte{})
	f.Add([]byte{1, 0x80, 0}) // a length in a non-minimal varint
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		if m, err := decodeArchiveMsg(be64(1), in, true); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeArchiveMsg error %v does not wrap ErrCorrupt", err)
			}
		} else {
			// The result must survive a round trip and not share memory
			// with its input.
			enc := encodeArchiveMsg(m.With, m.Data)
			for i := range in {
				in[i] ^= 0xff
			}
			again, err := decodeArchiveMsg(be64(1), enc, true)
			if err != nil || again.With != m.With || !bytes.Equal(again.Data, m.Data) {
				t.Fatalf("round trip of %+v = %+v, %v", m, again, err)
			}
			if !bytes.Equal(encodeArchiveMsg(m.With, m.Data), enc) {
				t.Fatal("the decoded message changed with its input")
			}
		}
		if _, err := decodeArchiveMeta(data); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeArchiveMeta error %v does not wrap ErrCorrupt", err)
		}
	})
}

func FuzzDecodeArchiveChunk(f *testing.F) {
	f.Add(uint64(7), appendChunkRec(appendChunkRec([]byte{archiveChunkV}, 7, 7, "bob@example.org/r", []byte("<m/>")), 7, 300, "c@d", nil))
	f.Add(uint64(1), []byte{archiveChunkV})
	f.Add(uint64(0), []byte{})
	f.Add(^uint64(0), []byte{archiveChunkV, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, first uint64, data []byte) {
		recs, err := decodeChunk(be64(first), data, nil)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeChunk error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// IDs strictly increase from the key, and the chunk survives a
		// round trip.
		enc := []byte{archiveChunkV}
		for i, r := range recs {
			if (i == 0 && r.id != first) || (i > 0 && r.id <= recs[i-1].id) {
				t.Fatalf("IDs %+v from %d", recs, first)
			}
			enc = appendChunkRec(enc, first, r.id, string(r.with), r.data)
		}
		again, err := decodeChunk(be64(first), enc, nil)
		if err != nil || len(again) != len(recs) {
			t.Fatalf("round trip: %d records, %v", len(again), err)
		}
		for i := range again {
			if again[i].id != recs[i].id || !bytes.Equal(again[i].with, recs[i].with) || !bytes.Equal(again[i].data, recs[i].data) {
				t.Fatalf("round trip of record %d: %+v, want %+v", i, again[i], recs[i])
			}
		}
	})
}

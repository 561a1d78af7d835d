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

package bbolt

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

func FuzzDecodeOfflineRecords(f *testing.F) {
	f.Add(encodeOfflineMsg(storage.OfflineMessage{Stored: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), Data: []byte("<m/>")}))
	f.Add(encodeOfflineMsg(storage.OfflineMessage{}))
	f.Add(encodeOfflineMeta(offlineMetaRec{seq: 1 << 40, count: 3}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		m, err := decodeOfflineMsg(be64(1), in)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeOfflineMsg error %v does not wrap ErrCorrupt", err)
			}
		} else {
			want := bytes.Clone(m.Data)
			for i := range in {
				in[i] ^= 0xff
			}
			if !bytes.Equal(m.Data, want) {
				t.Fatal("the decoded message changed with its input")
			}
			// A record that decodes is not expired before its own time,
			// and is after a second later.
			if storedBefore(data, m.Stored.Unix()) || !storedBefore(data, m.Stored.Unix()+1) {
				t.Fatalf("storedBefore disagrees with the decoded time %v", m.Stored)
			}
		}
		if _, err := decodeOfflineMeta(data); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeOfflineMeta error %v does not wrap ErrCorrupt", err)
		}
	})
}

package offline_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/modules/offline"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
)

// TestStoredFormats: records in bbolt in the module's earlier binary format
// and in the current one (stanza.Marshal's, golden bytes in
// stanza/testdata/stored) are both delivered whole, with a delay, and
// deleted.
func TestStoredFormats(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "kiez.db"), bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := start(t, db, offline.Options{})
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, file := range []string{"offline-v1-full.bin", "mam-full.xml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "stanza", "testdata", "stored", file))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.PushOffline(t.Context(), alice.String(), storage.OfflineMessage{Stored: at, Data: data}, 0); err != nil {
			t.Fatal(err)
		}
	}
	a := e.online(t, alice, 0)
	for range 2 {
		got := a.Expect(servertest.ByID("m1"))
		out := text(got)
		for _, want := range []string{
			`from="bob@example.org/laptop"`, `xml:lang="de"`, `plain="x&#x9;y"`, `a0:extra="v&quot;&lt;"`,
			`<body>a &amp; &lt;b&gt; "q" line` + "\n" + `next ` + "\U0001F600" + `</body>`,
			`<x xmlns="urn:example"><y xmlns=""><z a="1">deep</z></y><w/></x>`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("delivered %s\nwithout %s", out, want)
			}
		}
		if from, stamp := delay(t, got); from != "localhost" || !stamp.Equal(at) {
			t.Errorf("delay from %q at %v, want localhost at %v", from, stamp, at)
		}
	}
	a.Sync()
	if n := e.count(t, alice); n != 0 {
		t.Fatalf("%d messages left after delivery", n)
	}
}

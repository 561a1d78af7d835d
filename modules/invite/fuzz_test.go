package invite

import (
	"encoding/json"
	"testing"
)

// FuzzParseRecord: stored records never panic the parser, and a record it
// accepts survives a round trip and yields a URI.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"d":"example.org","k":"account","t":1700000000}`))
	f.Add([]byte(`{"d":"example.org","c":"alice@example.org","k":"contact","t":1700000000}`))
	f.Add([]byte(`{"d":"example.org","k":"account","u":"juliet","t":1}`))
	f.Add([]byte(`{"d":"Example.org","k":"contact"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, ok := parseRecord(b)
		if !ok {
			return
		}
		again, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if back, ok := parseRecord(again); !ok || back != rec {
			t.Fatalf("round trip of %q: %+v %v", b, back, ok)
		}
		if uri("AAAAAAAAAAAAAAAAAAAAAAAA", rec) == "" {
			t.Fatal("no URI")
		}
	})
}

package caps_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/caps"
)

// FuzzParse: Parse never panics, fails only with ErrMalformed, and what it
// accepts verifies against its own ver and reads back the same from
// Query.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		q + id + `<identity category='client' type='pc'/>` + end,
		q + id + x + ft + `<field var='a'><value>2</value><value>1</value></field></x>` + x + `<field var='FORM_TYPE'><value>urn:b</value></field></x>` + end,
		q + `<identity xml:lang='de' category='a-b' type='x' name='&lt;&amp;lt;'/>` + id + `<feature var='a&lt;b'/>` + end,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		toks, err := stanza.ParseElement(data)
		if err != nil {
			return
		}
		in, err := caps.ParseTokens(toks)
		if err != nil {
			if !errors.Is(err, caps.ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		for _, h := range []string{caps.SHA1, caps.SHA256} {
			ver, err := in.Ver(h)
			if err != nil || !in.Verify(h, ver) {
				t.Fatalf("%s: ver %q, %v not verified", h, ver, err)
			}
		}
		back, err := caps.ParseTokens(stanza.Resolve(in.Query("n#v"), ""))
		if err != nil {
			t.Fatalf("Query of a parsed answer does not parse: %v", err)
		}
		if back.Input() != in.Input() {
			t.Fatalf("S %q after Query, want %q", back.Input(), in.Input())
		}
	})
}

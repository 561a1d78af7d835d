package server

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kiez-im/kiez/stanza"
)

// FuzzInbound feeds arbitrary bytes through the inbound path every client
// stream takes (header, element framing, size and depth caps, restricted
// XML, stanza parsing) and checks that it never panics or hangs, and that
// every stanza it accepts survives being written out and read back.
func FuzzInbound(f *testing.F) {
	for _, b := range fuzzSeeds(f, "../testdata/stream/*.xml") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := newXMLIn(bufio.NewReader(bytes.NewReader(data)), nsClient, 4096, 16)
		if _, err := in.readHeader(); err != nil {
			return
		}
		for n := 0; n < 100; n++ {
			start, err := in.next()
			if err != nil {
				return
			}
			if stanza.KindOf(start.Name) == 0 {
				if _, err := in.readElement(); err != nil {
					return
				}
				continue
			}
			st, err := in.readStanza(start)
			var ae *stanza.AddressError
			if err != nil && !errors.As(err, &ae) {
				return
			}
			roundTrip(t, st)
		}
	})
}

// roundTrip writes st the way the server sends it and parses it again.
func roundTrip(t *testing.T, st *stanza.Stanza) {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
	if err := st.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&buf)
	d.Strict = true
	var got *stanza.Stanza
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("reparse %q: %v", buf.String(), err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local != "stream" {
			got, err = stanza.Read(d, se, 0)
			if err != nil {
				t.Fatalf("reparse %q: %v", buf.String(), err)
			}
			break
		}
	}
	if got.ID != st.ID || got.Type != st.Type || !got.To.Equal(st.To) || !got.From.Equal(st.From) || got.Lang != st.Lang {
		t.Fatalf("header changed: %+v → %+v", st, got)
	}
	want := normalise(st.Inner)
	if g := normalise(got.Inner); !reflect.DeepEqual(g, want) {
		t.Fatalf("inner changed:\n%#v\n%#v\n%s", want, g, buf.String())
	}
}

// normalise merges adjacent text and drops attribute prefixes, which the
// writer may choose differently.
func normalise(toks []xml.Token) []xml.Token {
	var out []xml.Token
	for _, t := range toks {
		switch tt := t.(type) {
		case xml.CharData:
			if len(out) > 0 {
				if prev, ok := out[len(out)-1].(xml.CharData); ok {
					out[len(out)-1] = append(append(xml.CharData{}, prev...), tt...)
					continue
				}
			}
			out = append(out, append(xml.CharData{}, tt...))
		case xml.StartElement:
			se := xml.StartElement{Name: tt.Name}
			for _, a := range tt.Attr {
				se.Attr = append(se.Attr, a)
			}
			out = append(out, se)
		default:
			out = append(out, t)
		}
	}
	return out
}

var _ = io.EOF

// fuzzSeeds returns the contents of the files glob matches, a fuzz
// target's seeds.
func fuzzSeeds(f *testing.F, glob string) [][]byte {
	f.Helper()
	paths, err := filepath.Glob(glob)
	if err != nil {
		f.Fatal(err)
	}
	var seeds [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

package server

import (
	"encoding/xml"
	"strings"
	"testing"
)

// FuzzAuthenticate feeds arbitrary children of a SASL2 <authenticate/>
// (XEP-0388, with Bind 2 and FAST elements) to its parser and checks that
// it never panics and that what it reports holds together. Its seeds are
// the bodies in testdata/sasl2.
func FuzzAuthenticate(f *testing.F) {
	for _, b := range fuzzSeeds(f, "testdata/sasl2/*.xml") {
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, body string) {
		d := xml.NewDecoder(strings.NewReader(`<authenticate xmlns='urn:xmpp:sasl:2'>` + body + `</authenticate>`))
		if _, err := d.Token(); err != nil { // <authenticate>
			return
		}
		// The tokens inside <authenticate/>, as readElement gives them.
		var toks []xml.Token
	read:
		for depth := 0; len(toks) < 1000; {
			tok, err := d.Token()
			if err != nil {
				return
			}
			switch tok.(type) {
			case xml.StartElement:
				depth++
			case xml.EndElement:
				if depth == 0 {
					break read
				}
				depth--
			}
			toks = append(toks, xml.CopyToken(tok))
		}
		req, err := parseAuthenticate(toks)
		if err != nil {
			return
		}
		if req.fastCountBad && req.fastCount == nil {
			t.Fatal("a bad count without a count")
		}
		if (req.fastInvalidate || req.fastCount != nil) && !req.fast {
			t.Fatal("<fast/> attributes without <fast/>")
		}
		if req.present && req.data == nil {
			t.Fatal("an initial response present without data")
		}
	})
}

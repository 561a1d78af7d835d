package server

import (
	"encoding/xml"
	"strings"
	"testing"
)

// FuzzAuthenticate feeds arbitrary children of a SASL2 <authenticate/>
// (XEP-0388, with Bind 2 and FAST elements) to its parser and checks that
// it never panics and that what it reports holds together.
func FuzzAuthenticate(f *testing.F) {
	for _, s := range []string{
		`<initial-response>AGFsaWNlAHB3</initial-response><user-agent id='u1'><software>x</software></user-agent>`,
		`<initial-response>=</initial-response><bind xmlns='urn:xmpp:bind:0'><tag>t</tag><enable xmlns='urn:xmpp:carbons:2'/>` +
			`<enable xmlns='urn:xmpp:sm:3' resume='true' max='60'/><inactive xmlns='urn:xmpp:csi:0'/></bind>`,
		`<initial-response/><fast xmlns='urn:xmpp:fast:0' count='7' invalidate='1'/><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>`,
		`<fast xmlns='urn:xmpp:fast:0' count='-1'/><resume xmlns='urn:xmpp:sm:3' previd='x' h='1'/>`,
	} {
		f.Add(s)
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

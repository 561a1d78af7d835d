package caps_test

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/caps"
)

// parseFile parses a disco#info query from testdata.
func parseFile(t *testing.T, name string) caps.Info {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return parseXML(t, string(data))
}

func parseXML(t *testing.T, s string) caps.Info {
	t.Helper()
	in, err := parse(s)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return in
}

func parse(s string) (caps.Info, error) {
	toks, err := stanza.ParseElement([]byte(s))
	if err != nil {
		return caps.Info{}, err
	}
	return caps.ParseTokens(toks)
}

// The worked examples of XEP-0115 §5.2 and §5.3: their S and ver, exactly.
func TestXEPExamples(t *testing.T) {
	for _, tc := range []struct {
		file, s, ver string
	}{
		{
			file: "simple.xml",
			s: "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<" +
				"http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<",
			ver: "QgayPKawpkPSDYmwT/WM94uAlu0=",
		},
		{
			file: "complex.xml",
			s: "client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<" +
				"http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<" +
				"ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<",
			ver: "q07IKJEyjvHSyhy//CH0CxmKi8w=",
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			in := parseFile(t, tc.file)
			if got := in.Input(); got != tc.s {
				t.Errorf("S\n got %q\nwant %q", got, tc.s)
			}
			ver, err := in.Ver(caps.SHA1)
			if err != nil || ver != tc.ver {
				t.Errorf("ver %q, %v; want %q", ver, err, tc.ver)
			}
			if !in.Verify(caps.SHA1, tc.ver) {
				t.Errorf("Verify(%q) = false", tc.ver)
			}
			if in.Verify(caps.SHA1, "QgayPKawpkPSDYmwT/WM94uAlu1=") || in.Verify(caps.SHA1, "") {
				t.Errorf("Verify accepts a wrong ver")
			}
		})
	}
}

// SHA-256 and SHA-512 hash the same S (expected values from
// "openssl dgst -binary -sha256 | base64"); other functions are not
// supported.
func TestHashes(t *testing.T) {
	in := parseFile(t, "simple.xml")
	for h, want := range map[string]string{
		caps.SHA256: "Wr6IGEKhx6b9627gBmi/cCmpxXBc/GYq5zWuYfWGWoc=",
		caps.SHA512: "fRSVSbrOODMrPDQyHoSWoR+RemysUcEeGGhMh+kl/hGp9UrJxyDnrh9BymsL57Am/eToRZ/T4s6QBqeC6LVmoQ==",
	} {
		if got, err := in.Ver(h); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", h, got, err, want)
		}
		if !caps.Supported(h) || !in.Verify(h, want) {
			t.Errorf("%s not supported or not verified", h)
		}
	}
	for _, h := range []string{"md5", "SHA-1", "sha3-256", ""} {
		if caps.Supported(h) {
			t.Errorf("%q supported", h)
		}
		if _, err := in.Ver(h); !errors.Is(err, caps.ErrUnsupportedHash) {
			t.Errorf("Ver(%q): %v, want ErrUnsupportedHash", h, err)
		}
		if in.Verify(h, "QgayPKawpkPSDYmwT/WM94uAlu0=") {
			t.Errorf("Verify(%q) = true", h)
		}
	}
}

const (
	q   = `<query xmlns='http://jabber.org/protocol/disco#info'>`
	end = `</query>`
	id  = `<identity category='client' type='pc'/>`
	x   = `<x xmlns='jabber:x:data' type='result'>`
	ft  = `<field var='FORM_TYPE' type='hidden'><value>urn:example</value></field>`
)

// Answers XEP-0115 §5.4 calls ill-formed.
func TestParseMalformed(t *testing.T) {
	for name, s := range map[string]string{
		"not a query":        `<query xmlns='jabber:iq:roster'/>`,
		"not disco#info":     `<x xmlns='http://jabber.org/protocol/disco#info'/>`,
		"duplicate identity": q + `<identity category='client' type='pc' name='A'/><identity category='client' name='A' type='pc'/>` + end,
		"duplicate identity with lang": q + `<identity xml:lang='en' category='client' type='pc'/>` +
			`<identity xml:lang='en' category='client' type='pc'/>` + end,
		"identity without category": q + `<identity type='pc'/>` + end,
		"identity without type":     q + `<identity category='client'/>` + end,
		"duplicate feature":         q + id + `<feature var='urn:a'/><feature var='urn:b'/><feature var='urn:a'/>` + end,
		"feature without var":       q + id + `<feature/>` + end,
		"two FORM_TYPE fields":      q + id + x + ft + `<field var='FORM_TYPE' type='hidden'><value>urn:other</value></field></x>` + end,
		"FORM_TYPE values differ":   q + id + x + `<field var='FORM_TYPE' type='hidden'><value>urn:a</value><value>urn:b</value></field></x>` + end,
		"field twice":               q + id + x + ft + `<field var='a'><value>1</value></field><field var='a'/></x>` + end,
		"two forms of one type":     q + id + x + ft + `</x>` + x + ft + `<field var='a'/></x>` + end,
		"FORM_TYPE values differ, not hidden": q + id + x +
			`<field var='FORM_TYPE'><value>urn:a</value><value>urn:b</value></field></x>` + end,
	} {
		t.Run(name, func(t *testing.T) {
			if in, err := parse(s); !errors.Is(err, caps.ErrMalformed) {
				t.Fatalf("got %+v, %v; want ErrMalformed", in, err)
			}
		})
	}
	if _, err := caps.ParseTokens(nil); !errors.Is(err, caps.ErrMalformed) {
		t.Errorf("no tokens: %v", err)
	}
}

// Forms §5.4 ignores, and what else the hash does not cover, leave the
// verification string as if they were not there.
func TestParseIgnored(t *testing.T) {
	base := parseXML(t, q+id+`<feature var='urn:a'/>`+end)
	want, _ := base.Ver(caps.SHA1)
	for name, extra := range map[string]string{
		"form without FORM_TYPE":   x + `<field var='a'><value>1</value></field></x>`,
		"FORM_TYPE not hidden":     x + `<field var='FORM_TYPE'><value>urn:a</value></field></x>`,
		"FORM_TYPE of other type":  x + `<field var='FORM_TYPE' type='text-single'><value>urn:a</value></field></x>`,
		"FORM_TYPE without value":  x + `<field var='FORM_TYPE' type='hidden'/></x>`,
		"other namespace":          `<x xmlns='urn:other'><field var='FORM_TYPE' type='hidden'><value>urn:a</value></field></x>`,
		"other children":           `<item jid='a@b'/><feature xmlns='urn:other' var='urn:b'/>`,
		"duplicate ignored forms":  x + `<field var='a'/></x>` + x + `<field var='a'/></x>`,
		"text between":             "\n  text\n",
		"two not hidden same type": x + `<field var='FORM_TYPE'><value>urn:a</value></field></x>` + x + `<field var='FORM_TYPE'><value>urn:a</value></field></x>`,
	} {
		t.Run(name, func(t *testing.T) {
			in := parseXML(t, q+id+`<feature var='urn:a'/>`+extra+end)
			if got, _ := in.Ver(caps.SHA1); got != want {
				t.Errorf("ver %q (S %q), want %q", got, in.Input(), want)
			}
		})
	}
	// Repeated equal FORM_TYPE values are one value; fields without a var
	// are left out.
	in := parseXML(t, q+id+x+`<field var='FORM_TYPE' type='hidden'><value>urn:a</value><value>urn:a</value></field>`+
		`<field type='fixed'><value>note</value></field><field var='b'><value>2</value><value>1</value><value/></field></x>`+end)
	if got, want := in.Input(), "client/pc//<urn:a<b<<1<2<"; got != want {
		t.Errorf("S %q, want %q", got, want)
	}
}

// Identities are sorted by category, type and lang; implementations that
// sort the joined strings instead are verified too.
func TestIdentityOrder(t *testing.T) {
	in := caps.Info{Identities: []caps.Identity{
		{Category: "a-b", Type: "x"},
		{Category: "a", Type: "x"},
		{Category: "a", Type: "w", Lang: "en", Name: "Z"},
		{Category: "a", Type: "w", Lang: "de", Name: "Y"},
	}}
	if got, want := in.Input(), "a/w/de/Y<a/w/en/Z<a/x//<a-b/x//<"; got != want {
		t.Fatalf("S %q, want %q", got, want)
	}
	ver, _ := in.Ver(caps.SHA1)
	if !in.Verify(caps.SHA1, ver) {
		t.Fatal("own ver not verified")
	}
	// The joined strings sort "a-b/" before "a/" ('-' < '/').
	sum := sha1.Sum([]byte("a-b/x//<a/w/de/Y<a/w/en/Z<a/x//<"))
	if !in.Verify(caps.SHA1, base64.StdEncoding.EncodeToString(sum[:])) {
		t.Error("ver of the joined order not verified")
	}
	// Input leaves in as it was.
	if in.Identities[0].Category != "a-b" {
		t.Error("Input sorted the caller's slice")
	}
}

func TestFromStanza(t *testing.T) {
	p := &stanza.Stanza{Kind: stanza.Presence}
	if _, ok := caps.FromStanza(p); ok {
		t.Fatal("caps in an empty presence")
	}
	c := caps.Caps{Hash: caps.SHA1, Node: "http://code.google.com/p/exodus", Ver: "QgayPKawpkPSDYmwT/WM94uAlu0="}
	p.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "show"}, "away"))
	p.AppendChild(c.TokenReader())
	got, ok := caps.FromStanza(p)
	if !ok || got != c || got.Legacy() {
		t.Fatalf("got %+v, %v; want %+v", got, ok, c)
	}
	if n := got.DiscoNode(); n != "http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Errorf("node %q", n)
	}
	legacy := &stanza.Stanza{Kind: stanza.Presence}
	legacy.AppendChild(caps.Caps{Node: "http://psi-im.org/caps", Ver: "0.11"}.TokenReader())
	if got, ok := caps.FromStanza(legacy); !ok || !got.Legacy() || got.Ver != "0.11" {
		t.Errorf("legacy: %+v, %v", got, ok)
	}
	nover := &stanza.Stanza{Kind: stanza.Presence}
	nover.AppendChild(stanza.Elem(xml.Name{Space: caps.NS, Local: "c"}, []xml.Attr{stanza.Attr("hash", "sha-1")}))
	if _, ok := caps.FromStanza(nover); ok {
		t.Error("caps without ver")
	}
}

// Query writes what Parse reads back, node included.
func TestQuery(t *testing.T) {
	for _, file := range []string{"simple.xml", "complex.xml"} {
		in := parseFile(t, file)
		toks := stanza.Resolve(in.Query("urn:node#ver"), "")
		back, err := caps.ParseTokens(toks)
		if err != nil {
			t.Fatal(err)
		}
		if back.Input() != in.Input() {
			t.Errorf("%s: S %q after Query, want %q", file, back.Input(), in.Input())
		}
		var b strings.Builder
		if err := stanza.WriteTokens(&b, toks, ""); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), `node="urn:node#ver"`) && !strings.Contains(b.String(), `node='urn:node#ver'`) {
			t.Errorf("no node in %s", b.String())
		}
	}
}

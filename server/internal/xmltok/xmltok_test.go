package xmltok

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// chunkReader returns its data a few bytes per Read, so that tokens span
// the bufio.Reader's refills.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.n, len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// result is one step of a decoder: a token or an error.
type result struct {
	tok  xml.Token
	kind Kind // of err
	err  error
}

func (r result) String() string {
	if r.err != nil {
		return fmt.Sprintf("error(%d) %v", r.kind, r.err)
	}
	return fmt.Sprintf("%T %q", r.tok, fmt.Sprint(r.tok))
}

// stdKind classifies an encoding/xml error as Decoder does.
func stdKind(err error) Kind {
	var se *xml.SyntaxError
	if !errors.As(err, &se) {
		if strings.HasPrefix(err.Error(), "xml: unsupported version") {
			return Malformed
		}
		return -1
	}
	switch m := se.Msg; {
	case strings.HasPrefix(m, "invalid character entity"):
		return Entity
	case strings.HasPrefix(m, "invalid UTF-8"), strings.HasPrefix(m, "illegal character code"):
		return Char
	case m == "unexpected EOF", m == "unexpected EOF in CDATA section":
		return Truncated
	}
	return Malformed
}

func kindOf(err error) Kind {
	var se *SyntaxError
	if errors.As(err, &se) {
		return se.Kind
	}
	return -1
}

const maxSteps = 500

func stdTokens(data []byte) []result {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	var out []result
	for len(out) < maxSteps {
		t, err := d.Token()
		if err != nil {
			out = append(out, result{err: err, kind: stdKind(err)})
			return out
		}
		out = append(out, result{tok: xml.CopyToken(t)})
	}
	return out
}

func ourTokens(data []byte, chunk, bufSize int) []result {
	d := NewDecoder(bufio.NewReaderSize(&chunkReader{data: data, n: chunk}, bufSize))
	var out []result
	for len(out) < maxSteps {
		t, err := d.Token()
		if err != nil {
			out = append(out, result{err: err, kind: kindOf(err)})
			return out
		}
		out = append(out, result{tok: xml.CopyToken(t)})
	}
	return out
}

// normal makes tokens comparable: no attributes is no attributes, no text
// is no text.
func normal(t xml.Token) xml.Token {
	switch tt := t.(type) {
	case xml.StartElement:
		if len(tt.Attr) == 0 {
			tt.Attr = nil
		}
		return tt
	case xml.CharData:
		if len(tt) == 0 {
			return xml.CharData(nil)
		}
	}
	return t
}

// compare checks that Decoder reads data as encoding/xml does, but for
// the documented differences.
func compare(t *testing.T, data []byte, chunk, bufSize int) {
	t.Helper()
	want := stdTokens(data)
	got := ourTokens(data, chunk, bufSize)
	for i := range got {
		if i >= len(want) {
			t.Fatalf("%q (chunk %d): token %d: got %v, encoding/xml ended", data, chunk, i, got[i])
		}
		g, w := got[i], want[i]
		switch gt := g.tok.(type) {
		case xml.Comment, xml.Directive:
			// Returned as soon as recognised; encoding/xml reads on and
			// may find an error in it.
			if w.err == nil && reflect.TypeOf(w.tok) != reflect.TypeOf(g.tok) {
				t.Fatalf("%q (chunk %d): token %d: got %v, want %v", data, chunk, i, g, w)
			}
			return
		case xml.ProcInst:
			if gt.Target == "xml" && w.err != nil && strings.HasPrefix(w.err.Error(), "xml: encoding ") {
				return // an encoding for the caller to refuse
			}
		}
		if g.err != nil || w.err != nil {
			if g.err == nil || w.err == nil || g.kind != w.kind {
				t.Fatalf("%q (chunk %d): token %d: got %v, want %v", data, chunk, i, g, w)
			}
			if w.kind == -1 && g.err != w.err {
				t.Fatalf("%q (chunk %d): token %d: got %v, want %v", data, chunk, i, g, w)
			}
			return
		}
		if !reflect.DeepEqual(normal(g.tok), normal(w.tok)) {
			t.Fatalf("%q (chunk %d): token %d:\ngot  %#v\nwant %#v", data, chunk, i, g.tok, w.tok)
		}
	}
}

var cases = []string{
	``,
	`<a/>`,
	`<a></a>`,
	`<a b='1' c="2"/>`,
	`<a b='1'c='2'/>`,
	`<a  b = '1'	/>`,
	"<a\r\nb='x\r\ny\rz'>t\r\nu\rv</a>",
	`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='en'>`,
	`<?xml version='1.0' encoding='UTF-8'?><a/>`,
	`<?xml version='1.1'?><a/>`,
	`<?xml version='1.0' encoding='ISO-8859-1'?><a/>`,
	`<?xml?><a/>`,
	`<?foo bar baz?><a/>`,
	`<??><a/>`,
	`<?1x?><a/>`,
	`<?x ?? >?>`,
	`<message to='a@b' type='chat' id='1'><body>Hallo &amp; &lt;tschüss&gt; &#x1F600; &#65; &apos;&quot;</body></message>`,
	`<a>&lol;</a>`,
	`<a>&amp</a>`,
	`<a>&#xD800;</a>`,
	`<a>&#0;</a>`,
	`<a>&#;</a>`,
	`<a>&#x;</a>`,
	`<a>&#1114112;</a>`,
	`<a>&#99999999999999999999999;</a>`,
	`<a>&</a>`,
	`<a>&;</a>`,
	`<a>& b</a>`,
	`<a b='&amp;&lt;&#x41;'/>`,
	`<a b='&lol;'/>`,
	`<a b='&amp'/>`,
	`<a b='x<y'/>`,
	`<a b='&am<y'/>`,
	"<a b='\x01<'/>",
	"<a b='\x01'/>",
	`<a b=x/>`,
	`<a b/>`,
	`<a b c='1'/>`,
	`<a b='1' <`,
	`<a <b/>`,
	`<a/ >`,
	`<>`,
	`< a/>`,
	`<1a/>`,
	`<a:b:c/>`,
	`<:a/>`,
	`<a:/>`,
	`<a xmlns:p='urn:p'><p:b p:c='1' d='2' xml:lang='de'/></a>`,
	`<a xmlns='urn:x'><b/><c xmlns=''/><d xmlns='urn:y'><e/></d><f/></a>`,
	`<p:a xmlns:p='urn:p'></p:a>`,
	`<p:a xmlns:p='urn:p'></q:a>`,
	`<p:a xmlns:p='urn:p'></a>`,
	`<a></b>`,
	`</a>`,
	`<a></a >`,
	`<a></a b>`,
	`<a></>`,
	`<a><!-- hi --></a>`,
	`<a><!-x></a>`,
	`<!DOCTYPE lol [<!ENTITY lol "lol">]><a/>`,
	`<a><![CDATA[x<y&z]]]]></a>`,
	`<a><![CDATA[x]]></a>`,
	`<a><![CDAT[x]]></a>`,
	"<a><![CDATA[\x01]]></a>",
	`<a>x]]>y</a>`,
	`<a>x]]&gt;y]]</a>`,
	"<a>\xff\xfe</a>",
	"<a>\x01</a>",
	"<a>\u00e9\u4e16\U0001F600</a>",
	"<a>\uFFFE</a>",
	"<\u00e9l\u00e8ve attr\u00e9='1'/>",
	"<a\u00d7/>",
	`<a>text`,
	`<a b='1`,
	`<a b=`,
	`<a b`,
	`<a`,
	`<`,
	`<!`,
	`<!-`,
	`<![CDA`,
	`<a><![CDATA[x`,
	`<?xml`,
	`<?xml version='1.0'`,
	`text`,
	`<a>&am`,
	`<a>&#x4`,
	`<a b='&am`,
	`  <a/>  `,
	`<a/><b/>`,
	`<xmlns/>`,
	`<xmlns:a/>`,
	`<a xmlns:p=''><p:b/></a>`,
	`<a xmlns:xml='urn:z'><xml:b/></a>`,
	`<a b='1' b='2'/>`,
}

func TestMatchesEncodingXML(t *testing.T) {
	seeds, _ := filepath.Glob("../../../testdata/stream/*.xml")
	inputs := append([]string(nil), cases...)
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		for _, chunk := range []int{1, 3, 7, 4096} {
			compare(t, []byte(in), chunk, 16)
		}
		compare(t, []byte(in), 4096, 4096)
	}
}

func FuzzMatchesEncodingXML(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c), uint8(3))
	}
	seeds, _ := filepath.Glob("../../../testdata/stream/*.xml")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(5))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		compare(t, data, int(chunk%32)+1, 16)
		compare(t, data, 1<<16, 1<<16)
	})
}

func TestBudget(t *testing.T) {
	in := `<a>` + strings.Repeat("x", 100) + `</a><b/>`
	for _, tc := range []struct {
		budget int
		ok     int // tokens read before ErrTooBig
	}{
		{3, 1},   // the start tag exactly
		{2, 0},   // not even that
		{50, 2},  // the text goes beyond: what fits is returned
		{103, 2}, // the text exactly
		{107, 3}, // the end tag exactly
		{111, 5}, // <b/>: start and end
	} {
		d := NewDecoder(bufio.NewReaderSize(&chunkReader{data: []byte(in), n: 7}, 16))
		d.SetBudget(tc.budget)
		n := 0
		for {
			_, err := d.Token()
			if err != nil {
				if tc.ok == 5 && err == io.EOF {
					break
				}
				if !errors.Is(err, ErrTooBig) {
					t.Fatalf("budget %d: after %d tokens: %v", tc.budget, n, err)
				}
				break
			}
			n++
		}
		if n != tc.ok {
			t.Errorf("budget %d: %d tokens before ErrTooBig, want %d", tc.budget, n, tc.ok)
		}
	}
}

// TestConsumesOnlyItsTokens: what follows a token stays in the reader,
// for a TLS handshake to read.
func TestConsumesOnlyItsTokens(t *testing.T) {
	br := bufio.NewReader(strings.NewReader(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>` + "\x16\x03\x01"))
	d := NewDecoder(br)
	for range 2 {
		if _, err := d.Token(); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := br.Peek(br.Buffered()); string(got) != "\x16\x03\x01" {
		t.Fatalf("left %q", got)
	}
}

func TestResetForgetsNamespaces(t *testing.T) {
	br := bufio.NewReader(strings.NewReader(`<s:stream xmlns='jabber:client' xmlns:s='urn:s'><s:stream xmlns:s='urn:t'><a/>`))
	d := NewDecoder(br)
	d.Token()
	d.Reset()
	if d.Depth() != 0 {
		t.Fatalf("depth %d after Reset", d.Depth())
	}
	tok, _ := d.Token()
	if got := tok.(xml.StartElement).Name; got != (xml.Name{Space: "urn:t", Local: "stream"}) {
		t.Fatalf("restarted stream: %v", got)
	}
	tok, _ = d.Token()
	if got := tok.(xml.StartElement).Name; got != (xml.Name{Local: "a"}) {
		t.Fatalf("after Reset: %v (the old default namespace applies)", got)
	}
}

// benchStream is a stream of typical stanzas after its header.
var benchStream = func() string {
	const st = `<message to='bob@localhost' type='chat' id='purple1a2b3c4d'><body>Hello there, how are you doing today? Fine, thanks.</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>` +
		`<presence><show>away</show><status>out &amp; about</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://conversations.im' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>` +
		`<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`
	return `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>` + strings.Repeat(st, 100)
}()

// BenchmarkDecoder and BenchmarkEncodingXML read the same stream of
// stanzas through a 512-byte bufio.Reader, as a client connection does.
func BenchmarkDecoder(b *testing.B) {
	b.SetBytes(int64(len(benchStream)))
	b.ReportAllocs()
	r := strings.NewReader(benchStream)
	br := bufio.NewReaderSize(r, 512)
	for b.Loop() {
		r.Reset(benchStream)
		br.Reset(r)
		d := NewDecoder(br)
		for {
			if _, err := d.Token(); err != nil {
				break
			}
		}
	}
}

func BenchmarkEncodingXML(b *testing.B) {
	b.SetBytes(int64(len(benchStream)))
	b.ReportAllocs()
	r := strings.NewReader(benchStream)
	br := bufio.NewReaderSize(r, 512)
	for b.Loop() {
		r.Reset(benchStream)
		br.Reset(r)
		d := xml.NewDecoder(br)
		d.Strict = true
		for {
			if _, err := d.Token(); err != nil {
				break
			}
		}
	}
}

package stanza_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
)

// parse reads the first stanza of a jabber:client stream fragment.
func parse(t *testing.T, s string) *stanza.Stanza {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>` + s))
	d.Strict = true
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local != "stream" {
			st, err := stanza.Read(d, se, 0)
			if err != nil {
				t.Fatalf("read %q: %v", s, err)
			}
			return st
		}
	}
}

func write(t *testing.T, st *stanza.Stanza) string {
	t.Helper()
	var b bytes.Buffer
	if err := st.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestWrite(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{`<message to='b@x' id='1' type='chat'><body>a &amp; &lt;b&gt; "q"</body></message>`,
			`<message id="1" type="chat" to="b@x"><body>a &amp; &lt;b&gt; "q"</body></message>`},
		{`<presence/>`, `<presence/>`},
		{`<iq type='get' id='x'><query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>`,
			`<iq id="x" type="get"><query xmlns="jabber:iq:roster"><item jid="a@b"/></query></iq>`},
		{`<message xml:lang='de'><body xml:lang='en'>hi</body></message>`,
			`<message xml:lang="de"><body xml:lang="en">hi</body></message>`},
		{`<message><x xmlns='urn:a' xmlns:p='urn:p' p:attr='v&quot;'/></message>`,
			`<message><x xmlns="urn:a" xmlns:a0="urn:p" a0:attr="v&quot;"/></message>`},
		{`<message><a xmlns='urn:a'><b xmlns=''/></a></message>`,
			`<message><a xmlns="urn:a"><b xmlns=""/></a></message>`},
		{"<message><body>line\r\nnext</body></message>",
			"<message><body>line\nnext</body></message>"},
		{`<message><body>&#x1F600;</body></message>`, "<message><body>\U0001F600</body></message>"},
	} {
		if got := write(t, parse(t, tc.in)); got != tc.out {
			t.Errorf("%s\n got %s\nwant %s", tc.in, got, tc.out)
		}
	}
}

func TestWriteReplacesInvalidCharacters(t *testing.T) {
	st := &stanza.Stanza{Kind: stanza.Message}
	st.AppendChild(stanza.TextElem(xml.Name{Local: "body"}, "a\x00b\xffc"))
	got := write(t, st)
	if got != "<message><body>a\uFFFDb\uFFFDc</body></message>" {
		t.Fatalf("got %q", got)
	}
}

func TestReadRejectsBadAddresses(t *testing.T) {
	d := xml.NewDecoder(strings.NewReader(`<message xmlns='jabber:client' to='@b'><body>x</body></message>`))
	tok, _ := d.Token()
	got, err := stanza.Read(d, tok.(xml.StartElement), 0)
	var ae *stanza.AddressError
	if !errorsAs(err, &ae) || ae.Attr != "to" {
		t.Fatalf("err = %v, want an AddressError for to", err)
	}
	if got == nil || got.To.String() != "" {
		t.Fatalf("stanza %+v", got)
	}
}

func TestReadDepthLimit(t *testing.T) {
	in := `<message xmlns='jabber:client'>` + strings.Repeat("<a>", 5) + strings.Repeat("</a>", 5) + `</message>`
	for _, tc := range []struct {
		max int
		ok  bool
	}{{5, true}, {4, false}, {0, true}} {
		d := xml.NewDecoder(strings.NewReader(in))
		tok, _ := d.Token()
		_, err := stanza.Read(d, tok.(xml.StartElement), tc.max)
		if (err == nil) != tc.ok {
			t.Errorf("max %d: err %v", tc.max, err)
		}
	}
}

func TestReplies(t *testing.T) {
	st := parse(t, `<iq type='get' id='q1' from='a@x/r' to='x'><query xmlns='urn:q'/></iq>`)
	res := st.ResultReply(stanza.Elem(xml.Name{Space: "urn:q", Local: "query"}, nil,
		stanza.Elem(xml.Name{Local: "item"}, []xml.Attr{stanza.Attr("n", "1")})))
	if got, want := write(t, res), `<iq id="q1" type="result" from="x" to="a@x/r"><query xmlns="urn:q"><item n="1"/></query></iq>`; got != want {
		t.Errorf("result:\n got %s\nwant %s", got, want)
	}
	e := st.ErrorReply(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
	if got, want := write(t, e), `<iq id="q1" type="error" from="x" to="a@x/r"><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`; got != want {
		t.Errorf("error:\n got %s\nwant %s", got, want)
	}
	m := parse(t, `<message id='m' from='a@x/r' to='b@x'><body>hi</body></message>`)
	if got := write(t, m.ErrorReply(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})); strings.Contains(got, "<body>") {
		t.Errorf("message error echoes the original content: %s", got)
	}
}

func TestChildAndClone(t *testing.T) {
	st := parse(t, `<message><thread>t</thread><x xmlns='urn:x'><body>inner</body></x><body>outer</body></message>`)
	if b, ok := st.ChildText(xml.Name{Local: "body"}); !ok || b != "outer" {
		t.Fatalf("body %q %v: must be the direct child, not the nested one", b, ok)
	}
	if !st.HasChild(xml.Name{Space: "urn:x", Local: "x"}) || st.HasChild(xml.Name{Space: "urn:y", Local: "x"}) {
		t.Fatal("HasChild namespace matching")
	}
	p, _, ok := st.Payload()
	if !ok || p.Name.Local != "thread" {
		t.Fatalf("payload %v", p.Name)
	}
	c := st.Clone()
	c.To = jid.MustParse("c@x")
	c.Inner[1] = xml.CharData("changed")
	if b, _ := st.ChildText(xml.Name{Local: "thread"}); b != "t" || st.To.String() != "" {
		t.Fatal("changing the clone changed the original")
	}
}

func ExampleStanza_ErrorReply() {
	msg := &stanza.Stanza{Kind: stanza.Message, ID: "m1", Type: "chat",
		From: jid.MustParse("alice@example.org/phone"), To: jid.MustParse("nobody@example.org")}
	msg.AppendChild(stanza.TextElem(xml.Name{Local: "body"}, "hello"))
	reply := msg.ErrorReply(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
	var b bytes.Buffer
	reply.WriteTo(&b)
	fmt.Println(b.String())
	// Output: <message id="m1" type="error" from="nobody@example.org" to="alice@example.org/phone"><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>
}

// A stored message's inner XML, kept as Raw, is written verbatim inside a
// wrapper in another namespace, and the result parses back to the same
// message.
func TestRawInner(t *testing.T) {
	orig := parse(t, `<message type='chat' to='b@example.org'><body>hi &amp; bye</body><x xmlns='urn:example'><y/></x></message>`)
	var inner bytes.Buffer
	if err := stanza.WriteTokens(&inner, orig.Inner, stanza.NSClient); err != nil {
		t.Fatal(err)
	}
	msg := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: jid.MustParse("b@example.org")}
	msg.Inner = []xml.Token{
		xml.StartElement{Name: xml.Name{Space: "urn:xmpp:forward:0", Local: "forwarded"}},
		xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "message"}},
		stanza.Raw(inner.Bytes()),
		xml.EndElement{Name: xml.Name{Space: stanza.NSClient, Local: "message"}},
		xml.EndElement{Name: xml.Name{Space: "urn:xmpp:forward:0", Local: "forwarded"}},
	}
	if _, _, ok := msg.Clone().Child(xml.Name{Local: "forwarded"}); !ok {
		t.Fatal("Child does not find the wrapper of a Raw payload")
	}
	var out bytes.Buffer
	if err := msg.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	want := `<message type="chat" to="b@example.org"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client"><body>hi &amp; bye</body><x xmlns="urn:example"><y/></x></message></forwarded></message>`
	if out.String() != want {
		t.Fatalf("got  %s\nwant %s", out.String(), want)
	}
	back := parse(t, out.String())
	_, r, ok := back.Child(xml.Name{Space: "urn:xmpp:forward:0", Local: "forwarded"})
	if !ok {
		t.Fatal("no forwarded element after a round trip")
	}
	var names []string
	for {
		tok, err := r.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			names = append(names, se.Name.Space+" "+se.Name.Local)
		}
	}
	if got := strings.Join(names, ","); got != "urn:xmpp:forward:0 forwarded,jabber:client message,jabber:client body,urn:example x,urn:example y" {
		t.Fatalf("parsed names %s", got)
	}
}

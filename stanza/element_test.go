package stanza_test

import (
	"encoding/xml"
	"fmt"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/stanza"
)

// names lists the elements an iterator yields as "space local".
func names(seq func(func(stanza.Element) bool)) string {
	var out []string
	for el := range seq {
		out = append(out, el.Name.Space+" "+el.Name.Local)
	}
	return strings.Join(out, ",")
}

func TestElementView(t *testing.T) {
	st := parse(t, `<iq type='set' id='1'><query xmlns='jabber:iq:roster' ver='v1'>text<item jid='a@x' name='A' xmlns:p='urn:p' p:jid='no'><group>G1</group><group>G<b/>2</group></item><item jid='b@x'/></query></iq>`)
	st.Inner = append(st.Inner, stanza.Raw(`<raw/>`))
	if got := names(st.Children()); got != "jabber:iq:roster query" {
		t.Fatalf("stanza children %s", got)
	}
	q, ok := st.PayloadElement()
	if !ok || q.Name.Local != "query" || q.Attr("ver") != "v1" || q.Text() != "text" {
		t.Fatalf("payload %v %q %q", q.Name, q.Attr("ver"), q.Text())
	}
	if got := names(q.Children()); got != "jabber:iq:roster item,jabber:iq:roster item" {
		t.Fatalf("query children %s", got)
	}
	item, ok := q.Child(xml.Name{Local: "item"})
	if !ok || item.Attr("jid") != "a@x" || item.Attr("name") != "A" {
		t.Fatalf("item %v jid %q", item.Name, item.Attr("jid"))
	}
	if v, ok := item.LookupAttr("missing"); ok || v != "" {
		t.Fatal("LookupAttr found an attribute that is not there")
	}
	var groups []string
	for g := range item.Children() {
		groups = append(groups, g.Text())
	}
	if strings.Join(groups, ",") != "G1,G2" {
		t.Fatalf("group texts %q: Text must skip the children's text", groups)
	}
	if _, ok := q.Child(xml.Name{Space: "urn:other", Local: "item"}); ok {
		t.Fatal("Child matched another namespace")
	}
	if !q.HasChild(xml.Name{Space: "jabber:iq:roster", Local: "item"}) || q.HasChild(xml.Name{Local: "group"}) {
		t.Fatal("HasChild must look at direct children only")
	}
	if toks := item.Tokens(); len(toks) != 11 || toks[0].(xml.StartElement).Name.Local != "item" || toks[10].(xml.EndElement).Name.Local != "item" {
		t.Fatalf("item tokens %v", toks)
	}
	if _, ok := st.ChildElement(xml.Name{Local: "raw"}); ok {
		t.Fatal("a Raw token was taken for an element")
	}
	var zero stanza.Element
	if zero.Attr("x") != "" || zero.Text() != "" || zero.Inner() != nil || names(zero.Children()) != "" {
		t.Fatal("the zero Element is not empty")
	}
	// Stopping early.
	n := 0
	for range q.Children() {
		n++
		break
	}
	if n != 1 {
		t.Fatal("break did not stop the iterator")
	}
}

func TestLookupAttr(t *testing.T) {
	attrs := []xml.Attr{{Name: xml.Name{Space: "urn:p", Local: "a"}, Value: "ns"}, stanza.Attr("a", "plain"), stanza.Attr("e", "")}
	if v, ok := stanza.LookupAttr(attrs, "a"); !ok || v != "plain" {
		t.Fatalf("a = %q %v, want the attribute without a namespace", v, ok)
	}
	if v, ok := stanza.LookupAttr(attrs, "e"); !ok || v != "" {
		t.Fatal("an empty attribute is there")
	}
	if stanza.AttrValue(attrs, "none") != "" {
		t.Fatal("AttrValue of a missing attribute")
	}
}

func TestWithoutChildren(t *testing.T) {
	st := parse(t, `<message to='b@x'><body>hi</body><drop xmlns='urn:d'><x/></drop><keep/><drop xmlns='urn:d'/></message>`)
	drop := func(el stanza.Element) bool { return el.Name.Local == "drop" }
	before := write(t, st)
	c := st.WithoutChildren(drop)
	if c == st {
		t.Fatal("nothing was dropped")
	}
	if got := write(t, c); got != `<message to="b@x"><body>hi</body><keep/></message>` {
		t.Fatalf("got %s", got)
	}
	if write(t, st) != before {
		t.Fatal("the original changed")
	}
	c.AppendChild(stanza.Elem(xml.Name{Local: "more"}, nil))
	if write(t, st) != before {
		t.Fatal("appending to the copy changed the original")
	}
	if st.WithoutChildren(func(stanza.Element) bool { return false }) != st {
		t.Fatal("a copy although nothing was dropped")
	}
}

// Walking a stanza's children allocates nothing.
func TestChildrenAllocs(t *testing.T) {
	st := parse(t, `<message><body>hi</body><x xmlns='urn:x'><y a='1'/></x><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		for el := range st.Children() {
			if el.Attr("a") == "" {
				n++
			}
			for range el.Children() {
				n++
			}
		}
		if _, ok := st.ChildElement(xml.Name{Local: "active"}); ok {
			n++
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
}

func ExampleStanza_Children() {
	st, _ := stanza.FromTokens(stanza.Elem(xml.Name{Space: stanza.NSClient, Local: "iq"}, []xml.Attr{stanza.Attr("type", "set")},
		stanza.Elem(xml.Name{Space: "urn:xmpp:blocking", Local: "block"}, nil,
			stanza.Elem(xml.Name{Local: "item"}, []xml.Attr{stanza.Attr("jid", "romeo@example.net")}),
			stanza.Elem(xml.Name{Local: "item"}, []xml.Attr{stanza.Attr("jid", "tybalt@example.net")}))))
	for payload := range st.Children() {
		for item := range payload.Children() {
			fmt.Println(payload.Name.Local, item.Name.Local, item.Attr("jid"))
		}
	}
	// Output:
	// block item romeo@example.net
	// block item tybalt@example.net
}

package stanza_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
)

// storedSources are the messages the golden records in testdata/stored
// were made from: mam-NAME.xml by the archive's serialiser and
// offline-v1-NAME.bin by the offline module's encoder, as they were before
// both used Marshal.
var storedSources = map[string]string{
	"full":       `<message id='m1' type='chat' xml:lang='de' from='bob@example.org/laptop' to='alice@example.org/phone' xmlns:p='urn:p' p:extra='v&quot;&lt;' plain='x&#x9;y'><body>a &amp; &lt;b&gt; "q" ` + "line\r\nnext \U0001F600" + `</body><thread>t1</thread><active xmlns='http://jabber.org/protocol/chatstates'/><x xmlns='urn:example'><y xmlns=''><z a='1'>deep</z></y><w/></x><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`,
	"empty":      `<message/>`,
	"headeronly": `<message id='e' type='normal' to='carol@example.org'/>`,
}

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "stored", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameStanza fails unless got is want with its inner XML either Raw (as
// Unmarshal returns it) or parsed.
func sameStanza(t *testing.T, what string, got, want *stanza.Stanza) {
	t.Helper()
	if got.Kind != want.Kind || got.ID != want.ID || got.Type != want.Type || got.Lang != want.Lang ||
		!got.From.Equal(want.From) || !got.To.Equal(want.To) || fmt.Sprint(got.Attrs) != fmt.Sprint(want.Attrs) {
		t.Errorf("%s: header %+v, want %+v", what, got, want)
	}
	if g, w := write(t, got), write(t, want); g != w {
		t.Errorf("%s: writes\n%s\nwant\n%s", what, g, w)
	}
}

func TestStoredGolden(t *testing.T) {
	for name, src := range storedSources {
		want := parse(t, src)
		current := golden(t, "mam-"+name+".xml")
		if got := stanza.Marshal(want); !bytes.Equal(got, current) {
			t.Errorf("%s: Marshal changed the archive's format:\n got %s\nwant %s", name, got, current)
		}
		for _, file := range []string{"mam-" + name + ".xml", "offline-v1-" + name + ".bin"} {
			data := golden(t, file)
			st, err := stanza.Unmarshal(data)
			if err != nil {
				t.Errorf("%s: %v", file, err)
				continue
			}
			if len(want.Inner) > 0 {
				if _, raw := st.Inner[0].(stanza.Raw); len(st.Inner) != 1 || !raw {
					t.Errorf("%s: inner %v, want one Raw token", file, st.Inner)
				}
			}
			sameStanza(t, file, st, want)
			if err := st.ParseRaw(); err != nil {
				t.Fatalf("%s: ParseRaw: %v", file, err)
			}
			for _, tok := range st.Inner {
				if _, raw := tok.(stanza.Raw); raw {
					t.Errorf("%s: Raw left after ParseRaw", file)
				}
			}
			sameStanza(t, file+" parsed", st, want)
			// Either format, placed in an archive result, is the current
			// one.
			raw, err := stanza.RawElement(data)
			if err != nil || !bytes.Equal(raw, current) {
				t.Errorf("%s: RawElement %s, %v; want %s", file, raw, err, current)
			}
		}
	}
}

func TestStoredRoundTrip(t *testing.T) {
	for _, src := range []string{
		`<iq type='get' id='q' to='example.org'><query xmlns='jabber:iq:version'/></iq>`,
		`<presence from='a@example.org/r'><show>away</show><status>&lt;out&gt;</status></presence>`,
		`<message to='b@example.org'><body>x</body><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>y</body></message></forwarded></message>`,
	} {
		want := parse(t, src)
		data := stanza.Marshal(want)
		st, err := stanza.Unmarshal(data)
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		sameStanza(t, src, st, want)
		// A stored message placed verbatim in another element parses back.
		wrapper := &stanza.Stanza{Kind: stanza.Message}
		wrapper.AppendChild(stanza.Elem(xml.Name{Space: "urn:xmpp:forward:0", Local: "forwarded"}, nil))
		raw, _ := stanza.RawElement(data)
		wrapper.Inner = append(wrapper.Inner[:1], raw, wrapper.Inner[1])
		if err := wrapper.ParseRaw(); err != nil {
			t.Fatal(err)
		}
		fwd, _ := wrapper.PayloadElement()
		inner, ok := fwd.Child(xml.Name{Space: stanza.NSClient, Local: want.Kind.String()})
		if !ok {
			t.Fatalf("%s: no stanza in the wrapper", src)
		}
		again, err := stanza.FromTokens(stanza.Tokens(inner.Tokens()...))
		if err != nil {
			t.Fatal(err)
		}
		sameStanza(t, src+" in a wrapper", again, want)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	v1 := golden(t, "offline-v1-full.bin")
	for _, data := range []string{
		"",
		"\x02rest",
		"x",
		`<message>`,
		`<message xmlns="jabber:client"`,
		`<message xmlns="jabber:client">`,
		`<message xmlns="jabber:client"><body/>`,
		`<message xmlns="jabber:client"><body/></messag>`,
		`<message xmlns="jabber:client"><body/></message>x`,
		`<message xmlns="jabber:client"/>x`,
		`<message xmlns="jabber:server"/>`,
		`<r xmlns="jabber:client"/>`,
		`<message xmlns="jabber:client" to="@x"/>`,
		`<?xml version="1.0"?><message xmlns="jabber:client"/>`,
		string(v1[:20]),
		"\x01\x05ab",
	} {
		if st, err := stanza.Unmarshal([]byte(data)); !errors.Is(err, stanza.ErrStored) {
			t.Errorf("%q: %+v, %v; want ErrStored", data, st, err)
		}
	}
	st := &stanza.Stanza{Kind: stanza.Message, Inner: []xml.Token{stanza.Raw(`<a>`)}}
	if err := st.ParseRaw(); !errors.Is(err, stanza.ErrStored) {
		t.Errorf("ParseRaw of broken XML: %v", err)
	}
}

// FuzzUnmarshal checks stored records: whatever is stored, Unmarshal
// neither panics nor accepts what it cannot keep, and a record it reads
// is stored again as it reads back.
func FuzzUnmarshal(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "stored", "*"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := stanza.Unmarshal(data)
		if err != nil {
			if !errors.Is(err, stanza.ErrStored) {
				t.Fatalf("error %v does not wrap ErrStored", err)
			}
			return
		}
		again, err := stanza.Unmarshal(stanza.Marshal(st))
		if err != nil {
			t.Fatalf("%q: stored again: %v", data, err)
		}
		var a, b bytes.Buffer
		st.WriteTo(&a)
		again.WriteTo(&b)
		if a.String() != b.String() {
			t.Fatalf("%q: %s became %s", data, a.String(), b.String())
		}
		if _, err := stanza.RawElement(data); err != nil {
			t.Fatalf("RawElement: %v", err)
		}
	})
}

func ExampleUnmarshal() {
	msg := &stanza.Stanza{Kind: stanza.Message, ID: "m1", Type: "chat", To: jid.MustParse("juliet@example.org")}
	msg.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "Wherefore art thou?"))
	data := stanza.Marshal(msg)
	fmt.Printf("%s\n", data)

	st, err := stanza.Unmarshal(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s %s %s\n", st.ID, st.To, st.Inner[0].(stanza.Raw))
	// Output:
	// <message xmlns="jabber:client" id="m1" type="chat" to="juliet@example.org"><body>Wherefore art thou?</body></message>
	// m1 juliet@example.org <body>Wherefore art thou?</body>
}

package mam

import (
	"bytes"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

// FuzzParsePrefs checks the stored preference record: whatever is stored,
// parsing never fails, and a parsed record survives a round trip.
func FuzzParsePrefs(f *testing.F) {
	f.Add([]byte("always"))
	f.Add([]byte("roster\n+bob@example.org\n-carol@example.org/phone"))
	f.Add([]byte("never\n\n+\n-"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := parsePrefs(b)
		again := parsePrefs(p.marshal())
		if again.def != p.def || len(again.always) != len(p.always) || len(again.never) != len(p.never) {
			if bytes.ContainsRune([]byte(p.def), '\n') {
				return
			}
			t.Fatalf("round trip of %q: %+v became %+v", b, p, again)
		}
	})
}

// FuzzParseQuery feeds arbitrary <query/> elements to the query parser,
// which must answer a request or a stanza error and never panic.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		`<query xmlns='urn:xmpp:mam:2' queryid='f27'/>`,
		`<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='with'><value>juliet@capulet.lit</value></field><field var='start'><value>2010-06-07T00:00:00Z</value></field><field var='ids'><value>1</value><value>2</value></field></x><set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set><flip-page/></query>`,
		`<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><after>123</after><index>3</index></set></query>`,
		`<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>1</max><max>2</max><after/></set></query>`,
		`<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field><value>1</value></field></x></query>`,
	} {
		f.Add([]byte(s))
	}
	store := memory.New()
	m, err := New(Options{}, Deps{Archive: store, KV: store})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		toks, err := stanza.ParseElement(b)
		if err != nil {
			return
		}
		iq := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set, ID: "q", From: jid.MustParse("a@b/c"), Inner: toks}
		req, e := m.parseQuery(stanza.IQ{Stanza: iq})
		if (req == nil) == (e == nil) {
			t.Fatalf("request %v and error %v", req, e)
		}
		if req != nil && req.max < -1 {
			t.Fatalf("max %d", req.max)
		}
	})
}

package mam

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

// recorder is a ResponseWriter that serialises the answer, as the
// server would.
type recorder struct {
	buf    *bytes.Buffer
	result bool
}

func (r *recorder) Result(payload xml.TokenReader) error {
	st := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Result, ID: "q"}
	st.AppendChild(payload)
	r.result = true
	return st.WriteTo(r.buf)
}

func (r *recorder) Error(e mstanza.Error) error { return e }

// BenchmarkQueryLatest50 measures the server side of the most common
// query, the newest page of 50 messages in an archive of 10,000: parsing
// the query, reading the page from the in-memory store, and serialising
// the 50 result messages and the <fin/> answer (what a session's writer
// would put on the wire).
func BenchmarkQueryLatest50(b *testing.B) {
	ctx := context.Background()
	store := memory.New()
	m, err := New(Options{}, Deps{Archive: store, KV: store})
	if err != nil {
		b.Fatal(err)
	}
	alice := jid.MustParse("alice@example.org/phone")
	bob := jid.MustParse("bob@example.org/laptop")
	at := time.Now().Add(-time.Hour)
	for i := range 10000 {
		msg := &stanza.Stanza{Kind: stanza.Message, Type: "chat", ID: fmt.Sprint("m", i), From: bob, To: alice}
		msg.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, fmt.Sprintf("message number %d, of a typical length for a chat", i)))
		if _, err := store.AppendArchive(ctx, "alice@example.org", at.Add(time.Duration(i)*time.Millisecond), bob.String(), stanza.Marshal(msg)); err != nil {
			b.Fatal(err)
		}
	}
	q := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set, ID: "q", From: alice}
	q.AppendChild(stanza.Elem(xml.Name{Space: NS, Local: "query"}, []xml.Attr{stanza.Attr("queryid", "f27")},
		stanza.Elem(xml.Name{Space: NSRSM, Local: "set"}, nil,
			stanza.TextElem(xml.Name{Space: NSRSM, Local: "max"}, "50"),
			stanza.Elem(xml.Name{Space: NSRSM, Local: "before"}, nil))))
	var buf bytes.Buffer
	results := 0
	send := func(st *stanza.Stanza) bool {
		results++
		st.WriteTo(&buf)
		return true
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		buf.Reset()
		results = 0
		w := &recorder{buf: &buf}
		if err := m.runQuery(ctx, stanza.IQ{Stanza: q}, w, send); err != nil || !w.result || results != 50 {
			b.Fatalf("query: %v, result %v, %d messages", err, w.result, results)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

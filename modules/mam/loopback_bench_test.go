package mam_test

import (
	"encoding/xml"
	"fmt"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

// BenchmarkQueryLatest50Loopback measures the newest page of 50 messages
// of a 10,000-message archive over loopback with a real client: from
// sending the query until the client has parsed the 50 results and the
// iq answer (the client runs in the same process).
func BenchmarkQueryLatest50Loopback(b *testing.B) {
	store := memory.New()
	m, err := mam.New(mam.Options{}, mam.Deps{Archive: store, KV: store})
	if err != nil {
		b.Fatal(err)
	}
	srv := servertest.Start(b, server.Config{Accounts: store, Modules: []server.Module{m}})
	alice := srv.AddUser(b, "alice", "pw")
	at := time.Now().Add(-time.Hour)
	for i := range 10000 {
		data := fmt.Sprintf(`<message xmlns="jabber:client" id="m%d" type="chat" from="bob@localhost/laptop" to="alice@localhost/phone"><body>message number %d, of a typical length for a chat</body></message>`, i, i)
		if _, err := store.AppendArchive(b.Context(), alice.String(), at.Add(time.Duration(i)*time.Millisecond), "bob@localhost/laptop", []byte(data)); err != nil {
			b.Fatal(err)
		}
	}
	c := srv.Connect(b, alice, "pw")
	b.ResetTimer()
	for n := range b.N {
		id := fmt.Sprint("q", n)
		c.Send(&stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set, ID: id, To: jid.JID{}, Inner: stanza.Resolve(
			stanza.Elem(xml.Name{Space: mam.NS, Local: "query"}, nil,
				stanza.Elem(xml.Name{Space: mam.NSRSM, Local: "set"}, nil,
					stanza.TextElem(xml.Name{Space: mam.NSRSM, Local: "max"}, "50"),
					stanza.Elem(xml.Name{Space: mam.NSRSM, Local: "before"}, nil))), stanza.NSClient)})
		results := 0
		for {
			st := c.Expect(func(s *stanza.Stanza) bool { return true })
			if st.ID == id {
				break
			}
			results++
		}
		if results != 50 {
			b.Fatalf("%d results", results)
		}
	}
}

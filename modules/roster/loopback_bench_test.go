package roster_test

import (
	"encoding/xml"
	"fmt"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// BenchmarkRosterGetLoopback measures a full roster get of 1,000 items
// over loopback with a real client: from sending the iq until the client
// has parsed the whole result (the client runs in the same process).
func BenchmarkRosterGetLoopback(b *testing.B) {
	store := memory.New()
	m, err := roster.New(roster.Options{}, roster.Deps{Store: store})
	if err != nil {
		b.Fatal(err)
	}
	srv := servertest.Start(b, server.Config{Accounts: store, Modules: []server.Module{m}})
	alice := srv.AddUser(b, "alice", "pw")
	for i := 0; i < 1000; i++ {
		_, err := store.SetRosterItem(b.Context(), alice.String(), storage.RosterItem{
			JID: fmt.Sprintf("contact%04d@example.org", i), Name: fmt.Sprintf("Contact %d", i),
			Groups: []string{"Friends"}, Subscription: storage.SubBoth,
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	c := srv.Connect(b, alice, "pw")
	q := xml.Name{Space: roster.NS, Local: "query"}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		id := fmt.Sprintf("g%d", n)
		c.Send(&stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Get, ID: id, To: jid.JID{},
			Inner: []xml.Token{xml.StartElement{Name: q}, xml.EndElement{Name: q}}})
		res := c.Expect(servertest.ByID(id))
		if res.Type != stanza.Result || len(res.Inner) < 4000 {
			b.Fatalf("roster result of %d tokens", len(res.Inner))
		}
	}
}

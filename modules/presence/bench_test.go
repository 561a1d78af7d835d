package presence_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/presence"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// BenchmarkBroadcast500 measures one presence broadcast from a user with
// 500 contacts, all online with mutual subscriptions, over loopback: from
// the user's <presence/> until every contact's client has read it. The
// server and the 500 mellium clients share the process (and the 2 cores),
// so the figure is an upper bound of the server's share.
func BenchmarkBroadcast500(b *testing.B) {
	srv, alice, names := broadcastSetup(b, 500)
	clients := make([]*servertest.Client, len(names))
	for i, name := range names {
		clients[i] = srv.Connect(b, jid.MustParse(name+"@localhost"), "pw")
		clients[i].Send(&stanza.Stanza{Kind: stanza.Presence})
	}
	a := srv.Connect(b, alice, "pw")
	for _, c := range clients {
		c.Sync()
	}
	show := func(n int) *stanza.Stanza {
		st := &stanza.Stanza{Kind: stanza.Presence}
		st.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "status"}, fmt.Sprint(n)))
		return st
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		a.Send(show(n))
		want := fmt.Sprint(n)
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Expect(func(st *stanza.Stanza) bool {
					s, _ := st.ChildText(xml.Name{Local: "status"})
					return st.Kind == stanza.Presence && st.From.Bare().Equal(alice) && s == want
				})
			}()
		}
		wg.Wait()
	}
	b.StopTimer()
}

// broadcastSetup starts a server with the presence and roster modules, the
// account alice and n contacts c0 … c(n-1) (password "pw") with mutual
// subscriptions to alice, and returns the contacts' localparts.
func broadcastSetup(b *testing.B, n int) (*servertest.Server, jid.JID, []string) {
	b.Helper()
	store := memory.New()
	r, err := roster.New(roster.Options{}, roster.Deps{Store: store})
	if err != nil {
		b.Fatal(err)
	}
	p, err := presence.New(presence.Options{}, presence.Deps{Roster: r})
	if err != nil {
		b.Fatal(err)
	}
	srv := servertest.Start(b, server.Config{Accounts: store, Modules: []server.Module{p, r}})
	alice := srv.AddUser(b, "alice", "pw")
	ctx := context.Background()
	both := func(it storage.RosterItem, _ bool) (storage.RosterItem, bool, error) {
		it.Subscription = storage.SubBoth
		return it, false, nil
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i)
		c := srv.AddUser(b, names[i], "pw")
		if err := r.Update(ctx, alice, c, both); err != nil {
			b.Fatal(err)
		}
		if err := r.Update(ctx, c, alice, both); err != nil {
			b.Fatal(err)
		}
	}
	return srv, alice, names
}

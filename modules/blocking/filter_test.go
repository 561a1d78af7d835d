package blocking_test

import (
	"context"
	"encoding/xml"
	"errors"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/modules/blocking"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

var xmlBody = xml.Name{Space: stanza.NSClient, Local: "body"}

// origins is a module with a sub-domain service "svc", both sending
// stanzas through its Host, as modules and services do.
type origins struct{ host server.Host }

func (*origins) Name() string { return "origins" }

func (o *origins) Init(ctx context.Context, h server.Host) error {
	o.host = h
	return nil
}

func (o *origins) Services() []server.Service {
	return []server.Service{{Subdomain: "svc", Name: "Test",
		Handler: server.StanzaHandlerFunc(func(context.Context, *stanza.Stanza) error { return nil })}}
}

// Blocking stops stanzas whatever their origin: a module's push to a
// session, a module's broadcast through the router, and a service's
// message, on the blocking user's side both ways.
func TestBlockingEveryOrigin(t *testing.T) {
	store := memory.New()
	blk, err := blocking.New(blocking.Options{}, blocking.Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	mod := &origins{}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{mod, blk}})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	carol := srv.AddUser(t, "carol", "pw")
	a := srv.Connect(t, alice, "pw")
	b := srv.Connect(t, bob, "pw")
	for _, c := range []*servertest.Client{a, b} {
		c.Send(&stanza.Stanza{Kind: stanza.Presence})
		c.Sync()
	}
	if r := do(t, a, "b1", items("block", "bob@localhost", "svc.localhost")); r.Type != stanza.Result {
		t.Fatalf("block: %s", text(r))
	}
	ctx := context.Background()
	aliceSess := mod.host.Sessions(alice)[0]
	from := func(j jid.JID, body string) *stanza.Stanza {
		m := chat(alice, "", body)
		m.From = j
		return m
	}

	// A module's push to alice's session, from bob: stopped; from carol:
	// delivered.
	if err := mod.host.SendTo(ctx, aliceSess, from(bob, "pushed from bob")); !errors.Is(err, filter.ErrDrop) {
		t.Errorf("SendTo from a blocked contact: %v, want filter.ErrDrop", err)
	}
	if err := mod.host.SendTo(ctx, aliceSess, from(carol, "pushed from carol")); err != nil {
		t.Errorf("SendTo from carol: %v", err)
	}
	// A module routing alice's message to bob (her side stops it) and
	// bob's to alice (her side stops it).
	toBob := chat(bob, "", "routed from alice")
	toBob.From = aliceSess.JID()
	mod.host.Router().Route(ctx, toBob)
	mod.host.Router().Route(ctx, from(jid.MustParse("bob@localhost/x"), "routed from bob"))
	// A service's message to alice.
	mod.host.Router().Route(ctx, from(jid.MustParse("svc.localhost"), "from the service"))

	a.Expect(servertest.Body("pushed from carol"))
	blocked := func(st *stanza.Stanza) bool {
		body, _ := st.ChildText(xmlBody)
		return body == "pushed from bob" || body == "routed from bob" || body == "from the service"
	}
	a.SyncNone(blocked)
	b.SyncNone(servertest.Body("routed from alice"))
}

package presence_test

import (
	"context"
	"encoding/xml"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/blocking"
	"github.com/kiez-im/kiez/modules/presence"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// env is a server with the roster and presence modules and the users
// alice, bob and carol.
type env struct {
	srv               *servertest.Server
	roster            *roster.Module
	alice, bob, carol jid.JID
}

func start(t *testing.T) *env {
	t.Helper()
	store := memory.New()
	r, err := roster.New(roster.Options{}, roster.Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	p, err := presence.New(presence.Options{}, presence.Deps{Roster: r})
	if err != nil {
		t.Fatal(err)
	}
	// The roster tells presence of the items an account deletion removes
	// (OnRemove): the order of the modules does not matter.
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{r, p}})
	return &env{
		srv: srv, roster: r,
		alice: srv.AddUser(t, "alice", "pw"),
		bob:   srv.AddUser(t, "bob", "pw"),
		carol: srv.AddUser(t, "carol", "pw"),
	}
}

// online connects user, fetches the roster (so the session gets pushes)
// and sends initial presence.
func (e *env) online(t *testing.T, user jid.JID) *servertest.Client {
	t.Helper()
	c := e.srv.Connect(t, user, "pw")
	q := xml.Name{Space: roster.NS, Local: "query"}
	c.Send(&stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Get, ID: "roster-get",
		Inner: []xml.Token{xml.StartElement{Name: q}, xml.EndElement{Name: q}}})
	c.Expect(servertest.ByID("roster-get"))
	c.Send(&stanza.Stanza{Kind: stanza.Presence})
	c.Sync()
	return c
}

// item returns user's item for contact; a missing item is the zero item.
func (e *env) item(t *testing.T, user, contact jid.JID) storage.RosterItem {
	t.Helper()
	it, _, err := e.roster.Item(context.Background(), user, contact)
	if err != nil {
		t.Fatal(err)
	}
	if it.Subscription == "" {
		it.Subscription = storage.SubNone
	}
	return it
}

func (e *env) wantSub(t *testing.T, user, contact jid.JID, sub storage.Subscription, ask bool) {
	t.Helper()
	it := e.item(t, user, contact)
	if it.Subscription != sub || it.Ask != ask {
		t.Fatalf("%s's item for %s: subscription %s ask %v, want %s ask %v", user, contact, it.Subscription, it.Ask, sub, ask)
	}
}

func pres(typ string, to jid.JID) *stanza.Stanza {
	return &stanza.Stanza{Kind: stanza.Presence, Type: typ, To: to}
}

// isPres matches presence of type typ from from (bare or full, exactly).
func isPres(typ string, from jid.JID) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Presence && st.Type == typ && st.From.Equal(from)
	}
}

// anyPresFrom matches any presence from the account user.
func anyPresFrom(user jid.JID) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Presence && st.From.Bare().Equal(user)
	}
}

// isPush matches a roster push of contact with subscription sub.
func isPush(contact jid.JID, sub storage.Subscription, ask bool) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		if st.Kind != stanza.IQKind || st.Type != stanza.Set {
			return false
		}
		for _, tok := range st.Inner {
			se, ok := tok.(xml.StartElement)
			if !ok || se.Name.Local != "item" {
				continue
			}
			var j, s, a string
			for _, at := range se.Attr {
				switch at.Name.Local {
				case "jid":
					j = at.Value
				case "subscription":
					s = at.Value
				case "ask":
					a = at.Value
				}
			}
			return j == contact.String() && s == string(sub) && (a == "subscribe") == ask
		}
		return false
	}
}

const quiet = 150 * time.Millisecond

func TestHandshake(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	b := e.online(t, e.bob)

	// alice asks.
	a.Send(pres("subscribe", e.bob))
	a.Expect(isPush(e.bob, storage.SubNone, true))
	b.Expect(isPres("subscribe", e.alice)) // from the bare JID
	e.wantSub(t, e.alice, e.bob, storage.SubNone, true)
	if it := e.item(t, e.bob, e.alice); !it.PendingIn {
		t.Fatalf("bob's item for alice: %+v, want pending in", it)
	}

	// bob approves: alice gets the answer and bob's presence.
	b.Send(pres("subscribed", e.alice))
	b.Expect(isPush(e.alice, storage.SubFrom, false))
	a.Expect(isPush(e.bob, storage.SubTo, false))
	a.Expect(isPres("subscribed", e.bob))
	a.Expect(isPres("", b.LocalAddr()))
	e.wantSub(t, e.alice, e.bob, storage.SubTo, false)
	e.wantSub(t, e.bob, e.alice, storage.SubFrom, false)

	// Now alice's presence does not reach bob, bob's reaches alice.
	a.Send(&stanza.Stanza{Kind: stanza.Presence, Inner: []xml.Token{
		xml.StartElement{Name: xml.Name{Local: "show"}}, xml.CharData("away"), xml.EndElement{Name: xml.Name{Local: "show"}}}})
	b.Send(&stanza.Stanza{Kind: stanza.Presence})
	a.Expect(isPres("", b.LocalAddr()))
	b.ExpectNone(quiet, anyPresFrom(e.alice))

	// bob asks back, alice approves.
	b.Send(pres("subscribe", e.alice))
	b.Expect(isPush(e.alice, storage.SubFrom, true))
	a.Expect(isPres("subscribe", e.bob))
	a.Send(pres("subscribed", e.bob))
	a.Expect(isPush(e.bob, storage.SubBoth, false))
	b.Expect(isPush(e.alice, storage.SubBoth, false))
	b.Expect(isPres("subscribed", e.alice))
	if p := b.Expect(isPres("", a.LocalAddr())); !p.HasChild(xml.Name{Local: "show"}) {
		t.Fatal("alice's presence without her current show")
	}
	e.wantSub(t, e.alice, e.bob, storage.SubBoth, false)
	e.wantSub(t, e.bob, e.alice, storage.SubBoth, false)

	// A second resource of alice: bob sees it come and go, and it sees
	// bob at once.
	a2 := e.srv.Connect(t, e.alice, "pw")
	a2.Send(&stanza.Stanza{Kind: stanza.Presence})
	a2.Expect(isPres("", b.LocalAddr()))
	b.Expect(isPres("", a2.LocalAddr()))
	a.Expect(isPres("", a2.LocalAddr())) // the core, to her own resource
	a2.Close()
	b.Expect(isPres("unavailable", a2.LocalAddr()))

	// carol is subscribed to nobody and hears nothing.
	c := e.online(t, e.carol)
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	b.Expect(isPres("", a.LocalAddr()))
	c.ExpectNone(quiet, anyPresFrom(e.alice))
}

func TestPreApproval(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	b := e.online(t, e.bob)

	a.Send(pres("subscribed", e.bob))
	a.Expect(isPush(e.bob, storage.SubNone, false))
	if it := e.item(t, e.alice, e.bob); !it.Approved {
		t.Fatalf("alice's item for bob: %+v, want approved", it)
	}
	b.ExpectNone(quiet, anyPresFrom(e.alice)) // a pre-approval is not sent

	b.Send(pres("subscribe", e.alice))
	b.Expect(isPres("subscribed", e.alice))
	b.Expect(isPres("", a.LocalAddr()))
	a.ExpectNone(quiet, isPres("subscribe", e.bob))
	e.wantSub(t, e.bob, e.alice, storage.SubTo, false)
	e.wantSub(t, e.alice, e.bob, storage.SubFrom, false)
	if it := e.item(t, e.alice, e.bob); it.Approved {
		t.Fatalf("alice's item for bob: %+v, want approved cleared", it)
	}
}

func TestPendingRedelivered(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	a.Send(pres("subscribe", e.bob))
	a.Expect(isPush(e.bob, storage.SubNone, true))

	// bob logs in later and is asked on his initial presence.
	b := e.srv.Connect(t, e.bob, "pw")
	b.ExpectNone(quiet, isPres("subscribe", e.alice))
	b.Send(&stanza.Stanza{Kind: stanza.Presence})
	b.Expect(isPres("subscribe", e.alice))

	// A denial clears alice's pending request.
	b.Send(pres("unsubscribed", e.alice))
	a.Expect(isPush(e.bob, storage.SubNone, false))
	a.Expect(isPres("unsubscribed", e.bob))
	e.wantSub(t, e.alice, e.bob, storage.SubNone, false)
	if it := e.item(t, e.bob, e.alice); it.PendingIn {
		t.Fatalf("bob's item for alice: %+v, want no pending in", it)
	}
}

// subscribe runs the handshake both ways without checking it.
func (e *env) both(t *testing.T, a, b *servertest.Client) {
	t.Helper()
	a.Send(pres("subscribe", e.bob))
	b.Expect(isPres("subscribe", e.alice))
	b.Send(pres("subscribed", e.alice))
	b.Send(pres("subscribe", e.alice))
	a.Expect(isPres("subscribe", e.bob))
	a.Send(pres("subscribed", e.bob))
	b.Expect(isPres("subscribed", e.alice))
	e.wantSub(t, e.alice, e.bob, storage.SubBoth, false)
}

func TestUnsubscribe(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	b := e.online(t, e.bob)
	e.both(t, a, b)

	// alice no longer wants bob's presence.
	a.Send(pres("unsubscribe", e.bob))
	b.Expect(isPres("unsubscribe", e.alice))
	a.Expect(isPres("unavailable", b.LocalAddr()))
	e.wantSub(t, e.alice, e.bob, storage.SubFrom, false)
	e.wantSub(t, e.bob, e.alice, storage.SubTo, false)

	// alice no longer lets bob see hers.
	a.Send(pres("unsubscribed", e.bob))
	b.Expect(isPres("unsubscribed", e.alice))
	b.Expect(isPres("unavailable", a.LocalAddr()))
	e.wantSub(t, e.alice, e.bob, storage.SubNone, false)
	e.wantSub(t, e.bob, e.alice, storage.SubNone, false)

	// Nothing flows either way any more.
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	b.Send(&stanza.Stanza{Kind: stanza.Presence})
	a.ExpectNone(quiet, anyPresFrom(e.bob))
	b.ExpectNone(quiet, anyPresFrom(e.alice))
}

func TestUnsubscribeFromContactSide(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	b := e.online(t, e.bob)
	e.both(t, a, b)

	b.Send(pres("unsubscribed", e.alice))
	b.Send(pres("unsubscribe", e.alice))
	a.Expect(isPres("unsubscribed", e.bob))
	a.Expect(isPres("unsubscribe", e.bob))
	b.Sync()
	e.wantSub(t, e.alice, e.bob, storage.SubNone, false)
	e.wantSub(t, e.bob, e.alice, storage.SubNone, false)
}

func TestUnavailableOnDisconnect(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	b := e.online(t, e.bob)
	e.both(t, a, b)
	a.Close()
	b.Expect(isPres("unavailable", a.LocalAddr()))
}

func TestDirectedPresence(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	c := e.online(t, e.carol)

	a.Send(pres("", e.carol))
	c.Expect(isPres("", a.LocalAddr()))
	// Broadcasts do not go to carol, but unavailable does.
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	c.ExpectNone(quiet, anyPresFrom(e.alice))
	a.Send(pres("unavailable", jid.JID{}))
	c.Expect(isPres("unavailable", a.LocalAddr()))

	// And when the session ends.
	a.Send(pres("", e.carol))
	c.Expect(isPres("", a.LocalAddr()))
	a.Close()
	c.Expect(isPres("unavailable", a.LocalAddr()))
}

func TestSubscribeUnknownAccount(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	nobody := jid.MustParse("nobody@localhost")
	a.Send(pres("subscribe", nobody))
	a.Expect(isPush(nobody, storage.SubNone, true))
	a.ExpectNone(quiet, anyPresFrom(nobody))
}

func TestRosterRemoveCancels(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	b := e.online(t, e.bob)
	e.both(t, a, b)

	q := xml.Name{Space: roster.NS, Local: "query"}
	item := xml.Name{Space: roster.NS, Local: "item"}
	a.Send(&stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set, ID: "rm", Inner: []xml.Token{
		xml.StartElement{Name: q},
		xml.StartElement{Name: item, Attr: []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: e.bob.String()}, {Name: xml.Name{Local: "subscription"}, Value: "remove"}}},
		xml.EndElement{Name: item}, xml.EndElement{Name: q}}})
	a.Expect(isPres("unavailable", b.LocalAddr())) // sent before the answer
	if r := a.Expect(servertest.ByID("rm")); r.Type != stanza.Result {
		t.Fatalf("roster remove: %s", r.Type)
	}
	b.Expect(isPres("unsubscribed", e.alice))
	b.Expect(isPres("unavailable", a.LocalAddr()))
	b.Expect(isPres("unsubscribe", e.alice))
	e.wantSub(t, e.bob, e.alice, storage.SubNone, false)
	if _, ok, _ := e.roster.Item(context.Background(), e.alice, e.bob); ok {
		t.Fatal("alice's item for bob not removed")
	}
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	b.ExpectNone(quiet, isPres("", a.LocalAddr()))
}

func TestMutualRequests(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	b := e.online(t, e.bob)

	// Both ask at once; both approve.
	a.Send(pres("subscribe", e.bob))
	b.Send(pres("subscribe", e.alice))
	a.Expect(isPres("subscribe", e.bob))
	b.Expect(isPres("subscribe", e.alice))
	a.Send(pres("subscribed", e.bob))
	b.Send(pres("subscribed", e.alice))
	a.Expect(isPres("subscribed", e.bob))
	b.Expect(isPres("subscribed", e.alice))
	a.Sync()
	b.Sync()
	e.wantSub(t, e.alice, e.bob, storage.SubBoth, false)
	e.wantSub(t, e.bob, e.alice, storage.SubBoth, false)
}

func TestProbe(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	b := e.online(t, e.bob)
	c := e.online(t, e.carol)

	a.Send(pres("subscribe", e.bob))
	b.Expect(isPres("subscribe", e.alice))
	b.Send(pres("subscribed", e.alice))
	a.Expect(isPres("", b.LocalAddr()))

	// alice is subscribed to bob: her probe is answered.
	a.Send(pres("probe", e.bob))
	a.Expect(isPres("", b.LocalAddr()))
	// carol is not: hers is not, and bob never sees probes.
	c.Send(pres("probe", e.bob))
	c.ExpectNone(quiet, anyPresFrom(e.bob))
	b.ExpectNone(quiet, isPres("probe", e.carol))
}

// Two resources coming online at once each learn of the other.
func TestSimultaneousInitialPresence(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	b := e.online(t, e.bob)
	e.both(t, a, b)
	for range 5 {
		a2 := e.srv.Connect(t, e.alice, "pw")
		b2 := e.srv.Connect(t, e.bob, "pw")
		a2.Send(&stanza.Stanza{Kind: stanza.Presence})
		b2.Send(&stanza.Stanza{Kind: stanza.Presence})
		a2.Expect(isPres("", b2.LocalAddr()))
		b2.Expect(isPres("", a2.LocalAddr()))
		a2.Close()
		b2.Close()
		a.Expect(isPres("unavailable", b2.LocalAddr()))
		b.Expect(isPres("unavailable", a2.LocalAddr()))
	}
}

// A request withdrawn before it was answered leaves nothing behind at the
// contact.
func TestWithdrawnRequest(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	a.Send(pres("subscribe", e.bob))
	a.Expect(isPush(e.bob, storage.SubNone, true))
	a.Send(pres("unsubscribe", e.bob))
	a.Expect(isPush(e.bob, storage.SubNone, false))
	a.Sync()
	if _, ok, _ := e.roster.Item(context.Background(), e.bob, e.alice); ok {
		t.Fatal("bob's hidden item for alice is still there")
	}
	b := e.srv.Connect(t, e.bob, "pw")
	b.Send(&stanza.Stanza{Kind: stanza.Presence})
	b.ExpectNone(quiet, isPres("subscribe", e.alice))
}

// TestAccountDeletionCancelsSubscriptions: deleting an account leaves no
// subscription to it at its former contacts.
func TestAccountDeletionCancelsSubscriptions(t *testing.T) {
	e := start(t)
	a := e.online(t, e.alice)
	b := e.online(t, e.bob)
	a.Send(pres("subscribe", e.bob))
	b.Expect(isPres("subscribe", e.alice))
	b.Send(pres("subscribed", e.alice))
	b.Send(pres("subscribe", e.alice))
	a.Expect(isPres("subscribe", e.bob))
	a.Send(pres("subscribed", e.bob))
	b.Expect(isPush(e.alice, storage.SubBoth, false))
	e.wantSub(t, e.bob, e.alice, storage.SubBoth, false)

	if err := e.srv.DeleteUser(context.Background(), e.alice); err != nil {
		t.Fatal(err)
	}
	b.Expect(isPush(e.alice, storage.SubNone, false))
	e.wantSub(t, e.bob, e.alice, storage.SubNone, false)
	if items, err := e.roster.Items(context.Background(), e.alice); err != nil || len(items) != 0 {
		t.Fatalf("the deleted account's roster: %v %v", items, err)
	}
}

// TestBlockedContactGetsNoPresence: with the blocking module, a blocked
// contact neither receives the user's presence nor sends its own, even
// with a mutual subscription.
func TestBlockedContactGetsNoPresence(t *testing.T) {
	store := memory.New()
	r, err := roster.New(roster.Options{}, roster.Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	bl, err := blocking.New(blocking.Options{}, blocking.Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	p, err := presence.New(presence.Options{}, presence.Deps{Roster: r, Blocking: bl})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{bl, p, r}})
	e := &env{srv: srv, roster: r, alice: srv.AddUser(t, "alice", "pw"), bob: srv.AddUser(t, "bob", "pw")}
	a := e.online(t, e.alice)
	b := e.online(t, e.bob)
	a.Send(pres("subscribe", e.bob))
	b.Expect(isPres("subscribe", e.alice))
	b.Send(pres("subscribed", e.alice))
	b.Send(pres("subscribe", e.alice))
	a.Expect(isPres("subscribe", e.bob))
	a.Send(pres("subscribed", e.bob))
	b.Expect(isPush(e.alice, storage.SubBoth, false))
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	b.Expect(isPres("", a.LocalAddr()))

	// alice blocks bob.
	block := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set, ID: "blk"}
	block.AppendChild(stanza.Elem(xml.Name{Space: blocking.NS, Local: "block"}, nil,
		stanza.Elem(xml.Name{Space: blocking.NS, Local: "item"}, []xml.Attr{stanza.Attr("jid", e.bob.String())})))
	a.Send(block)
	a.Expect(servertest.ByID("blk"))
	b.Expect(isPres("unavailable", a.LocalAddr()))
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	b.Send(&stanza.Stanza{Kind: stanza.Presence})
	b.ExpectNone(quiet, anyPresFrom(e.alice))
	a.ExpectNone(quiet, anyPresFrom(e.bob))
}

func TestNewNoRoster(t *testing.T) {
	if _, err := presence.New(presence.Options{}, presence.Deps{}); err == nil {
		t.Fatal("New without a roster module succeeded")
	}
}

package invite_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/invite"
	"github.com/kiez-im/kiez/modules/presence"
	"github.com/kiez-im/kiez/modules/register"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/modules/strangers"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// TestPreauthRegistration: XEP-0445. The stream feature is offered before
// authentication; a bad token is item-not-found; a good one lets the
// client register without the token in the form, uses the token up and,
// for a contact invitation, makes the inviter a contact.
func TestPreauthRegistration(t *testing.T) {
	e := start(t, invite.Options{})
	ctx := context.Background()
	inv, err := e.inv.Create(ctx, invite.CreateOptions{Creator: e.alice, Contact: true})
	if err != nil {
		t.Fatal(err)
	}
	r, features := e.srv.DialRaw(t)
	for _, ns := range []string{"urn:xmpp:ibr-token:0", "urn:xmpp:invite"} {
		if !strings.Contains(features, `<register xmlns="`+ns+`">`) && !strings.Contains(features, `<register xmlns="`+ns+`"/>`) {
			t.Fatalf("no XEP-0445 stream feature %s in %q", ns, features)
		}
	}
	wantError(t, r.IQ(`<iq type='set' id='p1' to='localhost'><preauth xmlns='urn:xmpp:pars:0' token='AAAAAAAAAAAAAAAAAAAAAAAA'/></iq>`), "item-not-found")
	wantError(t, r.IQ(`<iq type='set' id='p2'><preauth xmlns='urn:xmpp:pars:0'/></iq>`), "bad-request")
	// Without a presented token, the invite policy refuses.
	wantError(t, r.IQ(`<iq type='set' id='r0'><query xmlns='jabber:iq:register'><username>bob</username><password>correct horse</password></query></iq>`), "not-allowed")
	wantResult(t, r.IQ(`<iq type='set' id='p3' to='localhost'><preauth xmlns='urn:xmpp:pars:0' token='`+inv.Token+`'/></iq>`))
	wantResult(t, r.IQ(`<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>bob</username><password>correct horse</password></query></iq>`))
	if err := login(e.srv, "bob", "correct horse"); err != nil {
		t.Fatalf("bob cannot log in: %v", err)
	}
	bob := jid.MustParse("bob@localhost")
	if it, ok, err := e.roster.Item(ctx, e.alice, bob); err != nil || !ok || it.Subscription != storage.SubBoth {
		t.Errorf("alice's item for bob: %+v %v %v, want subscription both", it, ok, err)
	}
	// Used up: another stream cannot present it again.
	r2, _ := e.srv.DialRaw(t)
	wantError(t, r2.IQ(`<iq type='set' id='p4'><preauth xmlns='urn:xmpp:pars:0' token='`+inv.Token+`'/></iq>`), "item-not-found")
	if s := e.stored(t); s != "" {
		t.Errorf("stored after use: %q", s)
	}
}

// preauthEnv runs roster, presence, strangers, register and invite.
type preauthEnv struct {
	srv    *servertest.Server
	inv    *invite.Module
	roster *roster.Module
	strg   *strangers.Module
	store  *memory.Store
}

func startPreauth(t *testing.T) *preauthEnv {
	t.Helper()
	store := memory.New()
	ros := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: store}))
	pres := modtest.Must(presence.New(presence.Options{}, presence.Deps{Roster: ros}))
	strg := modtest.Must(strangers.New(strangers.Options{}, strangers.Deps{Store: store, Roster: ros}))
	inv := modtest.Must(invite.New(invite.Options{}, invite.Deps{Store: store, Roster: ros}))
	var srv *servertest.Server
	reg := modtest.Must(register.New(register.Options{}, register.Deps{
		Accounts: func() register.Accounts { return srv.Server }, Invites: inv}))
	srv = servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{pres, ros, strg, reg, inv}})
	return &preauthEnv{srv: srv, inv: inv, roster: ros, strg: strg, store: store}
}

func subscribeWith(to jid.JID, token string) *stanza.Stanza {
	st := &stanza.Stanza{Kind: stanza.Presence, Type: "subscribe", To: to}
	st.AppendChild(stanza.Elem(xmlName(register.NSPreauth, "preauth"), []xmlAttr{stanza.Attr("token", token)}))
	return st
}

func rosterPush(contact, sub string) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		if st.Kind != stanza.IQKind || st.Type != stanza.Set {
			return false
		}
		var out bytes.Buffer
		st.WriteTo(&out)
		return strings.Contains(out.String(), `jid="`+contact+`"`) && strings.Contains(out.String(), `subscription="`+sub+`"`)
	}
}

// TestPreauthExistingAccount: XEP-0379 for someone who already has an
// account. bob, online, sends alice a subscription request with her
// contact invitation's token: both become contacts at once (roster
// pushes with subscription both, presence exchanged), alice is not
// asked, and the token is used up. alice refuses strangers, and the
// invited stranger still gets through; a second use of the token, and a
// wrong token, are ordinary requests without <preauth/>.
func TestPreauthExistingAccount(t *testing.T) {
	e := startPreauth(t)
	ctx := context.Background()
	alice := e.srv.AddUser(t, "alice", "pw-alice")
	bob := e.srv.AddUser(t, "bob", "pw-bob")
	carol := e.srv.AddUser(t, "carol", "pw-carol")
	if err := e.strg.Set(ctx, alice, true); err != nil {
		t.Fatal(err)
	}
	inv, err := e.inv.Create(ctx, invite.CreateOptions{Creator: alice, Contact: true})
	if err != nil {
		t.Fatal(err)
	}
	a := e.srv.Connect(t, alice, "pw-alice")
	b := e.srv.Connect(t, bob, "pw-bob")
	c := e.srv.Connect(t, carol, "pw-carol")
	for _, cl := range []*servertest.Client{a, b, c} {
		modtest.Do(t, cl, modtest.IQ("r", stanza.Get, jid.JID{}, modtest.Query(roster.NS, "query")))
		cl.Send(&stanza.Stanza{Kind: stanza.Presence})
		cl.Sync()
	}

	b.Send(subscribeWith(alice, inv.Token))
	b.Expect(rosterPush("alice@localhost", "both"))
	a.Expect(rosterPush("bob@localhost", "both"))
	b.Expect(func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Presence && st.Type == "" && st.From.Bare().Equal(alice)
	})
	a.Expect(func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Presence && st.Type == "" && st.From.Bare().Equal(bob)
	})
	a.SyncNone(func(st *stanza.Stanza) bool { return st.Kind == stanza.Presence && st.Type == "subscribe" })
	for _, p := range [][2]jid.JID{{alice, bob}, {bob, alice}} {
		it, ok, err := e.roster.Item(ctx, p[0], p[1])
		if err != nil || !ok || it.Subscription != storage.SubBoth || it.Ask || it.PendingIn || it.Hidden {
			t.Errorf("%s's item for %s: %+v %v %v, want subscription both", p[0], p[1], it, ok, err)
		}
	}

	// The token is used up: carol's request with it is a stranger's
	// ordinary request, which alice refuses; nothing is kept.
	c.Send(subscribeWith(alice, inv.Token))
	c.Sync()
	a.SyncNone(func(st *stanza.Stanza) bool { return st.Kind == stanza.Presence && st.Type == "subscribe" })
	if _, ok, _ := e.roster.Item(ctx, alice, carol); ok {
		t.Error("alice has an item for carol after a used token")
	}

	// Once alice accepts strangers, a request with a wrong token reaches
	// her as an ordinary request, without the token.
	if err := e.strg.Set(ctx, alice, false); err != nil {
		t.Fatal(err)
	}
	c.Send(subscribeWith(alice, "AAAAAAAAAAAAAAAAAAAAAAAA"))
	got := a.Expect(func(st *stanza.Stanza) bool { return st.Kind == stanza.Presence && st.Type == "subscribe" })
	if !got.From.Bare().Equal(carol) || got.HasChild(xmlName(register.NSPreauth, "preauth")) {
		var out bytes.Buffer
		got.WriteTo(&out)
		t.Errorf("request reaching alice: %s", out.String())
	}
}

type xmlAttr = xml.Attr

func xmlName(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }

package strangers_test

import (
	"context"
	"encoding/xml"
	"errors"
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/presence"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/modules/strangers"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

func chat(to jid.JID, id, body string) *stanza.Stanza {
	st := &stanza.Stanza{Kind: stanza.Message, Type: "chat", ID: id, To: to}
	st.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, body))
	return st
}

func isSubscribe(st *stanza.Stanza) bool {
	return st.Kind == stanza.Presence && st.Type == "subscribe"
}

type setup struct {
	srv               *servertest.Server
	mod               *strangers.Module
	store             *memory.Store
	alice, bob, carol jid.JID
	a, b, c           *servertest.Client
}

// start runs a server with the roster, presence and strangers modules;
// carol is in alice's roster (both ways), bob is not.
func start(t *testing.T) *setup {
	t.Helper()
	store := memory.New()
	ros := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: store}))
	pres := modtest.Must(presence.New(presence.Options{}, presence.Deps{Roster: ros}))
	mod := modtest.Must(strangers.New(strangers.Options{}, strangers.Deps{Store: store, Roster: ros}))
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{pres, ros, mod}})
	s := &setup{srv: srv, mod: mod, store: store}
	s.alice = srv.AddUser(t, "alice", "pw")
	s.bob = srv.AddUser(t, "bob", "pw")
	s.carol = srv.AddUser(t, "carol", "pw")
	ctx := t.Context()
	if _, err := store.SetRosterItem(ctx, "alice@localhost", storage.RosterItem{JID: "carol@localhost", Subscription: storage.SubBoth}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.SetRosterItem(ctx, "carol@localhost", storage.RosterItem{JID: "alice@localhost", Subscription: storage.SubBoth}); err != nil {
		t.Fatal(err)
	}
	s.a = srv.Connect(t, s.alice, "pw")
	s.b = srv.Connect(t, s.bob, "pw")
	s.c = srv.Connect(t, s.carol, "pw")
	for _, c := range []*servertest.Client{s.a, s.b, s.c} {
		c.Send(&stanza.Stanza{Kind: stanza.Presence})
		c.Sync()
	}
	return s
}

func TestStrangers(t *testing.T) {
	s := start(t)
	ctx := t.Context()
	if err := s.mod.Set(ctx, s.alice, true); err != nil {
		t.Fatal(err)
	}

	// bob, a stranger, is refused with service-unavailable.
	s.b.Send(chat(s.alice, "m1", "buy now"))
	res := s.b.Expect(servertest.ByID("m1"))
	if cond := modtest.Condition(res); cond != mstanza.ServiceUnavailable {
		t.Fatalf("bob's message: condition %q, want service-unavailable", cond)
	}
	// His subscription request vanishes: no error for him, nothing for alice.
	s.b.Send(&stanza.Stanza{Kind: stanza.Presence, Type: "subscribe", ID: "s1", To: s.alice})
	s.b.SyncNone(servertest.ByID("s1"))
	s.a.SyncNone(func(st *stanza.Stanza) bool { return servertest.Body("buy now")(st) || isSubscribe(st) })
	// The presence module records a local stranger's request in alice's
	// roster before her side's filter runs, as a hidden pending-in item:
	// it does not make bob a contact (his messages are still refused).
	if it, ok, err := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: s.store})).Item(ctx, s.alice, s.bob); err != nil || ok && !it.Hidden {
		t.Fatalf("bob's refused request left a visible roster item: %+v %v %v", it, ok, err)
	}
	s.b.Send(chat(s.alice, "m1b", "still spam"))
	if cond := modtest.Condition(s.b.Expect(servertest.ByID("m1b"))); cond != mstanza.ServiceUnavailable {
		t.Fatalf("bob's message after his request: condition %q", cond)
	}

	// carol, a contact, gets through.
	s.c.Send(chat(s.alice, "m2", "hello from carol"))
	s.a.Expect(servertest.Body("hello from carol"))

	// A message to one of alice's full JIDs passes (bob could only know
	// the resource if alice shared presence with him).
	s.b.Send(chat(s.a.LocalAddr(), "m3", "direct"))
	s.a.Expect(servertest.Body("direct"))

	// Opting out restores delivery.
	if err := s.mod.Set(ctx, s.alice, false); err != nil {
		t.Fatal(err)
	}
	s.b.Send(chat(s.alice, "m4", "hello again"))
	s.a.Expect(servertest.Body("hello again"))
	s.b.Send(&stanza.Stanza{Kind: stanza.Presence, Type: "subscribe", To: s.alice})
	s.a.Expect(isSubscribe)

	// bob, who did not opt in, receives from everyone.
	s.c.Send(chat(s.bob, "m5", "hi bob"))
	s.b.Expect(servertest.Body("hi bob"))
}

// The filter's decisions, table-driven, on packets built by hand.
func TestFilterCases(t *testing.T) {
	store := memory.New()
	ctx := t.Context()
	alice := jid.MustParse("alice@localhost")
	store.SetRosterItem(ctx, "alice@localhost", storage.RosterItem{JID: "carol@localhost", Subscription: storage.SubNone, Ask: true})
	store.SetRosterItem(ctx, "alice@localhost", storage.RosterItem{JID: "eve@localhost", PendingIn: true, Hidden: true})
	ros := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: store}))
	mod := modtest.Must(strangers.New(strangers.Options{}, strangers.Deps{Store: store, Roster: ros}))
	if err := mod.Set(ctx, alice, true); err != nil {
		t.Fatal(err)
	}
	f := mod.Filters()[0].Filter
	msg := func(from, typ string, body bool) *stanza.Stanza {
		st := &stanza.Stanza{Kind: stanza.Message, Type: typ, From: jid.MustParse(from), To: alice}
		if body {
			st.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "x"))
		} else {
			st.AppendChild(stanza.Elem(xml.Name{Space: "http://jabber.org/protocol/chatstates", Local: "composing"}, nil))
		}
		return st
	}
	pres := func(from, typ string) *stanza.Stanza {
		return &stanza.Stanza{Kind: stanza.Presence, Type: typ, From: jid.MustParse(from), To: alice}
	}
	const (
		pass = iota
		drop
		bounce
	)
	for _, tc := range []struct {
		name  string
		phase filter.Phase
		st    *stanza.Stanza
		want  int
	}{
		{"stranger chat", filter.Receive, msg("bob@example.net/x", "chat", true), bounce},
		{"stranger normal", filter.Receive, msg("bob@example.net", "", true), bounce},
		{"stranger headline", filter.Receive, msg("bob@example.net", "headline", true), drop},
		{"stranger chat state", filter.Receive, msg("bob@example.net", "chat", false), drop},
		{"stranger groupchat", filter.Receive, msg("room@muc.example.net/bob", "groupchat", true), pass},
		{"stranger error", filter.Receive, msg("bob@example.net", "error", true), pass},
		{"stranger subscribe", filter.Receive, pres("bob@example.net", "subscribe"), drop},
		{"stranger available", filter.Receive, pres("bob@example.net/x", ""), pass},
		{"stranger unsubscribe", filter.Receive, pres("bob@example.net", "unsubscribe"), pass},
		{"stranger iq", filter.Receive, &stanza.Stanza{Kind: stanza.IQKind, Type: "get", From: jid.MustParse("bob@example.net/x"), To: alice}, pass},
		{"contact added by alice (pending out)", filter.Receive, msg("carol@localhost/x", "chat", true), pass},
		{"hidden pending-in item", filter.Receive, msg("eve@localhost/x", "chat", true), bounce},
		{"hidden pending-in subscribe", filter.Receive, pres("eve@localhost", "subscribe"), drop},
		{"own account", filter.Receive, msg("alice@localhost/phone", "chat", true), pass},
		{"server domain", filter.Receive, msg("localhost", "headline", true), pass},
		{"service domain", filter.Receive, msg("svc.example.net", "normal", true), pass},
		{"send side", filter.Send, msg("bob@example.net", "chat", true), pass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Filter(ctx, filter.Packet{Phase: tc.phase, Origin: filter.Remote, Account: alice, Stanza: tc.st})
			got := pass
			var se mstanza.Error
			switch {
			case err == nil:
			case errors.Is(err, filter.ErrDrop):
				got = drop
			case errors.As(err, &se) && se.Condition == mstanza.ServiceUnavailable:
				got = bounce
			default:
				t.Fatalf("unexpected error %v", err)
			}
			if got != tc.want {
				t.Errorf("got %d, want %d (0 pass, 1 drop, 2 bounce)", got, tc.want)
			}
		})
	}
}

// The command shows the setting, changes it through its form and shows the
// new value; the filter follows at once.
func TestCommand(t *testing.T) {
	s := start(t)
	ctx := t.Context()
	cmds := s.mod.Commands()
	if len(cmds) != 1 || cmds[0].Node != strangers.Node || cmds[0].Name != "Refuse messages from strangers" {
		t.Fatalf("commands %+v", cmds)
	}
	run := func(on bool) bool {
		t.Helper()
		resp, err := cmds[0].Handler(ctx, s.a.LocalAddr(), adhoc.Request{Action: adhoc.Execute})
		if err != nil || resp.Status != adhoc.Executing || resp.Form == nil || resp.Next == nil {
			t.Fatalf("execute: %+v, %v", resp, err)
		}
		cur := resp.Form.Bool("refuse")
		v := "false"
		if on {
			v = "true"
		}
		sub := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "refuse", Values: []string{v}}}}
		done, err := resp.Next(ctx, s.a.LocalAddr(), adhoc.Request{Action: adhoc.Complete, Form: sub})
		if err != nil || done.Status != adhoc.Completed || len(done.Notes) != 1 || done.Notes[0].Type != "info" {
			t.Fatalf("complete: %+v, %v", done, err)
		}
		return cur
	}
	if run(true) {
		t.Error("the setting is on before it was set")
	}
	s.b.Send(chat(s.alice, "m1", "spam"))
	if cond := modtest.Condition(s.b.Expect(servertest.ByID("m1"))); cond != mstanza.ServiceUnavailable {
		t.Fatalf("after opting in: %q", cond)
	}
	if !run(false) {
		t.Error("the form does not show the setting on")
	}
	if run(false) {
		t.Error("the form does not show the setting off")
	}
	s.b.Send(chat(s.alice, "m2", "not spam"))
	s.a.Expect(servertest.Body("not spam"))

	// A submission without the field changes nothing.
	resp, _ := cmds[0].Handler(ctx, s.a.LocalAddr(), adhoc.Request{Action: adhoc.Execute})
	done, err := resp.Next(ctx, s.a.LocalAddr(), adhoc.Request{Action: adhoc.Complete})
	if err != nil || len(done.Notes) != 1 || done.Notes[0].Type != "error" {
		t.Fatalf("empty submission: %+v, %v", done, err)
	}
}

// The command through modules/adhoc, over the wire.
func TestCommandOverAdhoc(t *testing.T) {
	store := memory.New()
	ros := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: store}))
	mod := modtest.Must(strangers.New(strangers.Options{}, strangers.Deps{Store: store, Roster: ros}))
	ah := modtest.Must(adhoc.New(adhoc.Options{}, adhoc.Deps{Commands: mod.Commands()}))
	srv, a := modtest.Start(t, ros, mod, ah)
	_ = srv
	const nsCommands = "http://jabber.org/protocol/commands"
	exec := stanza.Elem(xml.Name{Space: nsCommands, Local: "command"}, []xml.Attr{stanza.Attr("node", strangers.Node), stanza.Attr("action", "execute")})
	res := modtest.Do(t, a, modtest.IQ("c1", stanza.Set, jid.MustParse("localhost"), exec))
	modtest.MustResult(t, res, jid.MustParse("localhost"))
	var sid string
	for _, tok := range res.Inner {
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "command" {
			for _, at := range se.Attr {
				if at.Name.Local == "sessionid" {
					sid = at.Value
				}
			}
		}
	}
	if sid == "" {
		t.Fatal("no session id")
	}
	sub := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "refuse", Values: []string{"1"}}}}
	complete := stanza.Elem(xml.Name{Space: nsCommands, Local: "command"},
		[]xml.Attr{stanza.Attr("node", strangers.Node), stanza.Attr("sessionid", sid), stanza.Attr("action", "complete")}, sub.TokenReader())
	modtest.MustResult(t, modtest.Do(t, a, modtest.IQ("c2", stanza.Set, jid.MustParse("localhost"), complete)), jid.MustParse("localhost"))
	if on, err := mod.Refuses(t.Context(), a.LocalAddr()); err != nil || !on {
		t.Fatalf("after the command: %v, %v", on, err)
	}
}

// Deleting an account removes its setting.
func TestDeleteUser(t *testing.T) {
	s := start(t)
	ctx := t.Context()
	if err := s.mod.Set(ctx, s.alice, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Get(ctx, "alice@localhost", "strangers"); err != nil {
		t.Fatalf("setting not stored: %v", err)
	}
	if err := s.srv.DeleteUser(ctx, s.alice); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Get(ctx, "alice@localhost", "strangers"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("setting after deletion: %v", err)
	}
	if on, err := s.mod.Refuses(ctx, s.alice); err != nil || on {
		t.Fatalf("cached setting after deletion: %v, %v", on, err)
	}
	if got := s.mod.UserData(); len(got) != 1 {
		t.Errorf("UserData %v", got)
	}
}

// The cache stays bounded and correct when users outnumber it.
func TestCacheBound(t *testing.T) {
	store := memory.New()
	ros := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: store}))
	mod := modtest.Must(strangers.New(strangers.Options{CacheSize: 2}, strangers.Deps{Store: store, Roster: ros}))
	ctx := context.Background()
	users := []jid.JID{jid.MustParse("a@localhost"), jid.MustParse("b@localhost"), jid.MustParse("c@localhost")}
	mod.Set(ctx, users[1], true)
	for range 3 {
		for i, u := range users {
			on, err := mod.Refuses(ctx, u)
			if err != nil || on != (i == 1) {
				t.Fatalf("%s: %v %v", u, on, err)
			}
		}
	}
}

func BenchmarkFilter(b *testing.B) {
	store := memory.New()
	ctx := context.Background()
	ros := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: store}))
	mod := modtest.Must(strangers.New(strangers.Options{}, strangers.Deps{Store: store, Roster: ros}))
	alice := jid.MustParse("alice@localhost")
	store.SetRosterItem(ctx, "alice@localhost", storage.RosterItem{JID: "carol@localhost", Subscription: storage.SubBoth})
	f := mod.Filters()[0].Filter
	for _, bc := range []struct {
		name string
		on   bool
		from jid.JID
	}{
		{"off", false, jid.MustParse("bob@example.net/x")},
		{"on/contact", true, jid.MustParse("carol@localhost/x")},
		{"on/stranger", true, jid.MustParse("bob@example.net/x")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			mod.Set(ctx, alice, bc.on)
			st := chat(alice, "", "hello")
			st.From = bc.from
			p := filter.Packet{Phase: filter.Receive, Origin: filter.Remote, Account: alice, Stanza: st}
			b.ReportAllocs()
			for b.Loop() {
				f.Filter(ctx, p)
			}
		})
	}
}

// A local stranger's refused request leaves nothing behind: the filter
// runs before presence writes the roster, so no pending-in item is kept,
// the request is not shown at a later login, not even once the user no
// longer refuses strangers (the stranger has to ask again), and a
// request after that reaches the user.
func TestRefusedRequestNotKept(t *testing.T) {
	s := start(t)
	ctx := t.Context()
	if err := s.mod.Set(ctx, s.alice, true); err != nil {
		t.Fatal(err)
	}
	s.b.Send(&stanza.Stanza{Kind: stanza.Presence, Type: "subscribe", To: s.alice})
	s.b.Sync()
	if _, err := s.store.RosterItem(ctx, "alice@localhost", "bob@localhost"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("alice's roster item for bob after a refused request: err %v, want not found", err)
	}
	a2 := s.srv.Connect(t, s.alice, "pw")
	a2.Send(&stanza.Stanza{Kind: stanza.Presence})
	a2.SyncNone(isSubscribe)

	if err := s.mod.Set(ctx, s.alice, false); err != nil {
		t.Fatal(err)
	}
	a3 := s.srv.Connect(t, s.alice, "pw")
	a3.Send(&stanza.Stanza{Kind: stanza.Presence})
	a3.SyncNone(isSubscribe)

	s.b.Send(&stanza.Stanza{Kind: stanza.Presence, Type: "subscribe", To: s.alice})
	if got := a3.Expect(isSubscribe); !got.From.Bare().Equal(s.bob) {
		t.Fatalf("subscription request from %s, want bob", got.From)
	}
}

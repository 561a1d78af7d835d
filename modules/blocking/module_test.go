package blocking_test

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/blocking"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

func items(local string, jids ...string) *stanza.Stanza {
	var children []xml.TokenReader
	for _, j := range jids {
		children = append(children, stanza.Elem(xml.Name{Space: blocking.NS, Local: "item"}, []xml.Attr{stanza.Attr("jid", j)}))
	}
	st := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set}
	if local == "blocklist" {
		st.Type = stanza.Get
	}
	st.AppendChild(stanza.Elem(xml.Name{Space: blocking.NS, Local: local}, nil, children...))
	return st
}

func do(t *testing.T, c *servertest.Client, id string, st *stanza.Stanza) *stanza.Stanza {
	t.Helper()
	st.ID = id
	c.Send(st)
	return c.Expect(servertest.ByID(id))
}

func text(st *stanza.Stanza) string {
	var b strings.Builder
	st.WriteTo(&b)
	return b.String()
}

func chat(to jid.JID, id, body string) *stanza.Stanza {
	st := &stanza.Stanza{Kind: stanza.Message, ID: id, Type: "chat", To: to}
	st.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, body))
	return st
}

func TestBlocking(t *testing.T) {
	store := memory.New()
	mod, err := blocking.New(blocking.Options{MaxItems: 3}, blocking.Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{mod}})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a1 := srv.Connect(t, jid.MustParse("alice@localhost/one"), "pw")
	a2 := srv.Connect(t, jid.MustParse("alice@localhost/two"), "pw")
	b := srv.Connect(t, bob, "pw")
	for _, c := range []*servertest.Client{a1, a2, b} {
		c.Send(&stanza.Stanza{Kind: stanza.Presence})
		c.Sync()
	}
	// Both of alice's resources ask for the (empty) list, and so get pushes.
	for i, c := range []*servertest.Client{a1, a2} {
		r := do(t, c, "get"+string(rune('0'+i)), items("blocklist"))
		if r.Type != stanza.Result || strings.Contains(text(r), "<item") {
			t.Fatalf("empty blocklist: %s", text(r))
		}
	}

	// Block bob: a result, a push to both resources, unavailable presence
	// to bob.
	if r := do(t, a1, "b1", items("block", "bob@localhost")); r.Type != stanza.Result {
		t.Fatalf("block: %s", text(r))
	}
	for _, c := range []*servertest.Client{a1, a2} {
		p := c.Expect(func(st *stanza.Stanza) bool { return st.Kind == stanza.IQKind && st.Type == stanza.Set })
		if !strings.Contains(text(p), `<block xmlns="urn:xmpp:blocking"><item jid="bob@localhost"/></block>`) {
			t.Fatalf("push: %s", text(p))
		}
	}
	b.Expect(func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Presence && st.Type == "unavailable" && st.From.Bare().Equal(alice)
	})

	// Bob's message to alice bounces; alice never sees it.
	b.Send(chat(alice, "m1", "let me in"))
	if r := b.Expect(servertest.ByID("m1")); r.Type != stanza.Error || !strings.Contains(text(r), "service-unavailable") {
		t.Fatalf("blocked sender got %s", text(r))
	}
	a1.ExpectNone(100*time.Millisecond, servertest.Body("let me in"))
	// Alice's message to bob is refused with <blocked/>.
	a1.Send(chat(bob, "m2", "hi bob"))
	if r := a1.Expect(servertest.ByID("m2")); !strings.Contains(text(r), "not-acceptable") || !strings.Contains(text(r), `<blocked xmlns="urn:xmpp:blocking:errors"/>`) {
		t.Fatalf("message to blocked contact: %s", text(r))
	}
	b.ExpectNone(100*time.Millisecond, servertest.Body("hi bob"))

	// The list survives in the store and is reported.
	if r := do(t, a2, "g2", items("blocklist")); !strings.Contains(text(r), `<item jid="bob@localhost"/>`) {
		t.Fatalf("blocklist: %s", text(r))
	}

	// Errors: empty block, bad JID, over the limit.
	for id, tc := range map[string]struct {
		st   *stanza.Stanza
		cond string
	}{
		"e1": {items("block"), "bad-request"},
		"e2": {items("block", "@@"), "jid-malformed"},
		"e3": {items("block", "a.test", "b.test", "c.test"), "resource-constraint"},
	} {
		if r := do(t, a1, id, tc.st); r.Type != stanza.Error || !strings.Contains(text(r), tc.cond) {
			t.Fatalf("%s: %s", tc.cond, text(r))
		}
	}

	// Unblock all: messages flow again.
	if r := do(t, a1, "u1", items("unblock")); r.Type != stanza.Result {
		t.Fatalf("unblock all: %s", text(r))
	}
	b.Send(chat(alice, "m3", "friends again"))
	a1.Expect(servertest.Body("friends again"))

	// Blocking a whole domain blocks its accounts; deleting the account
	// removes the list.
	do(t, a1, "b2", items("block", "localhost"))
	b.Send(chat(alice, "m4", "domain blocked"))
	if r := b.Expect(servertest.ByID("m4")); r.Type != stanza.Error {
		t.Fatalf("domain block: %s", text(r))
	}
	if _, err := store.Get(t.Context(), "alice@localhost", "blocklist"); err != nil {
		t.Fatalf("list not stored: %v", err)
	}
	if err := srv.DeleteUser(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(t.Context(), "alice@localhost", "blocklist"); err == nil {
		t.Fatal("the blocklist outlived its account")
	}
}

func TestNewNoStore(t *testing.T) {
	if _, err := blocking.New(blocking.Options{}, blocking.Deps{}); err == nil {
		t.Fatal("New without a store succeeded")
	}
}

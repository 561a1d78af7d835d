package carbons_test

import (
	"encoding/xml"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/carbons"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

var (
	alice = jid.MustParse("alice@localhost")
	bob   = jid.MustParse("bob@localhost")
)

// env: alice with three sessions a1 (priority 5), a2 (0) and a3 (0), of
// which a1 and a2 enabled carbons; bob with one session.
type env struct {
	srv        *servertest.Server
	mod        *carbons.Module
	a1, a2, a3 *servertest.Client
	b          *servertest.Client
}

func setup(t *testing.T, before ...server.Module) *env {
	t.Helper()
	return setupAround(t, before, nil)
}

// setupAround is setup with modules listed before and after carbons.
func setupAround(t *testing.T, before, after []server.Module) *env {
	t.Helper()
	mod := modtest.Must(carbons.New(carbons.Options{}, carbons.Deps{}))
	srv := servertest.Start(t, server.Config{Modules: append(append(before, mod), after...)})
	srv.AddUser(t, "alice", "pw-alice")
	srv.AddUser(t, "bob", "pw-bob")
	e := &env{srv: srv, mod: mod}
	e.a1 = e.login(t, "alice@localhost/a1", 5, true)
	e.a2 = e.login(t, "alice@localhost/a2", 0, true)
	e.a3 = e.login(t, "alice@localhost/a3", 0, false)
	e.b = e.login(t, "bob@localhost/b", 0, false)
	return e
}

func (e *env) login(t *testing.T, full string, prio int, enable bool) *servertest.Client {
	t.Helper()
	j := jid.MustParse(full)
	c := e.srv.Connect(t, j, "pw-"+j.Localpart())
	if enable {
		toggle(t, c, "enable")
	}
	p := &stanza.Stanza{Kind: stanza.Presence}
	p.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "priority"}, strconv.Itoa(prio)))
	c.Send(p)
	c.Sync()
	return c
}

var ids int

func toggle(t *testing.T, c *servertest.Client, what string) {
	t.Helper()
	ids++
	modtest.MustResult(t, modtest.Do(t, c, modtest.IQ(what+strconv.Itoa(ids), stanza.Set, jid.JID{}, modtest.Query(carbons.NS, what))), jid.JID{})
}

func chat(to jid.JID, typ, body string, extra ...xml.TokenReader) *stanza.Stanza {
	ids++
	st := &stanza.Stanza{Kind: stanza.Message, ID: "m" + strconv.Itoa(ids), Type: typ, To: to}
	if body != "" {
		st.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, body))
	}
	for _, x := range extra {
		st.AppendChild(x)
	}
	return st
}

func empty(space, local string) xml.TokenReader {
	return stanza.Elem(xml.Name{Space: space, Local: local}, nil)
}

func text(st *stanza.Stanza) string {
	var b strings.Builder
	st.WriteTo(&b)
	return b.String()
}

// carbon matches a <sent/> or <received/> copy (kind) of the message with
// the given id, from the account's bare JID (which the client library
// shows as no from at all).
func carbon(kind, id string) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		if st.Kind != stanza.Message || !(st.From.String() == "" || st.From.Equal(alice)) {
			return false
		}
		s := text(st)
		return strings.Contains(s, `<`+kind+` xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" id="`+id+`"`)
	}
}

// original matches the message itself (not a copy).
func original(id string) func(*stanza.Stanza) bool {
	return servertest.ByID(id)
}

// collect returns what c received up to now: it sends c an iq round
// trip and gathers the stanzas that arrive before the answer. Call it
// after the sender's Sync, when everything the server routed for the
// sender is queued.
func collect(t *testing.T, c *servertest.Client) []*stanza.Stanza {
	t.Helper()
	ids++
	id := "collect" + strconv.Itoa(ids)
	c.Send(modtest.IQ(id, stanza.Get, jid.MustParse("localhost"), modtest.Query(modtest.NSDiscoInfo, "query")))
	var got []*stanza.Stanza
	c.Expect(func(st *stanza.Stanza) bool {
		if st.ID == id {
			return true
		}
		got = append(got, st)
		return false
	})
	return got
}

// expect checks that c got the message with id itself (or not), exactly
// one copy of the given kind ("sent", "received") or none (""), and no
// other copy of it. It returns the copy.
func expect(t *testing.T, who string, c *servertest.Client, id string, orig bool, kind string) *stanza.Stanza {
	t.Helper()
	return check(t, who, collect(t, c), id, orig, kind)
}

// check is expect on stanzas already collected.
func check(t *testing.T, who string, in []*stanza.Stanza, id string, orig bool, kind string) *stanza.Stanza {
	t.Helper()
	var origs, sent, received []*stanza.Stanza
	for _, st := range in {
		switch {
		case original(id)(st):
			origs = append(origs, st)
		case carbon("sent", id)(st):
			sent = append(sent, st)
		case carbon("received", id)(st):
			received = append(received, st)
		}
	}
	if want := map[bool]int{true: 1}[orig]; len(origs) != want {
		t.Fatalf("%s got the message %s %d times, want %d", who, id, len(origs), want)
	}
	wantSent, wantReceived := map[bool]int{true: 1}[kind == "sent"], map[bool]int{true: 1}[kind == "received"]
	if len(sent) != wantSent || len(received) != wantReceived {
		t.Fatalf("%s got %d sent and %d received copies of %s, want %d and %d", who, len(sent), len(received), id, wantSent, wantReceived)
	}
	switch {
	case len(sent) == 1:
		return sent[0]
	case len(received) == 1:
		return received[0]
	case len(origs) == 1:
		return origs[0]
	}
	return nil
}

// send sends m from c, waits until the server has routed it, and returns
// what c received meanwhile.
func send(t *testing.T, c *servertest.Client, m *stanza.Stanza) []*stanza.Stanza {
	t.Helper()
	c.Send(m)
	return collect(t, c)
}

// TestReceived: copies of messages to alice reach exactly the enabled
// sessions that do not get the message itself.
func TestReceived(t *testing.T) {
	e := setup(t)

	// To the bare JID: a1 (highest priority) gets it, a2 a copy, a3
	// nothing.
	m := chat(alice, "chat", "to bare")
	send(t, e.b, m)
	expect(t, "a1", e.a1, m.ID, true, "")
	got := expect(t, "a2", e.a2, m.ID, false, "received")
	if s := text(got); got.Type != "chat" || !got.To.Equal(e.a2.LocalAddr()) ||
		!strings.Contains(s, `from="bob@localhost/b" to="alice@localhost"`) || !strings.Contains(s, `<body>to bare</body>`) {
		t.Fatalf("received copy: %s", s)
	}
	expect(t, "a3", e.a3, m.ID, false, "")

	// To a3's full JID: a3 gets it, a1 and a2 copies.
	m = chat(e.a3.LocalAddr(), "chat", "to a3")
	send(t, e.b, m)
	expect(t, "a3", e.a3, m.ID, true, "")
	expect(t, "a1", e.a1, m.ID, false, "received")
	expect(t, "a2", e.a2, m.ID, false, "received")

	// To a1's full JID: only a2 gets a copy.
	m = chat(e.a1.LocalAddr(), "", "normal to a1")
	send(t, e.b, m)
	expect(t, "a1", e.a1, m.ID, true, "")
	if got := expect(t, "a2", e.a2, m.ID, false, "received"); got.Type != "" {
		t.Fatalf("the copy changed the type: %s", text(got))
	}
	expect(t, "a3", e.a3, m.ID, false, "")

	// To a resource that is gone: delivered to the bare JID (a1), so a2
	// gets a copy and a1 none.
	m = chat(jid.MustParse("alice@localhost/gone"), "chat", "to gone")
	send(t, e.b, m)
	expect(t, "a1", e.a1, m.ID, true, "")
	expect(t, "a2", e.a2, m.ID, false, "received")
	expect(t, "a3", e.a3, m.ID, false, "")
	expect(t, "bob", e.b, m.ID, false, "")
}

// TestSent: copies of messages alice sends reach her other enabled
// sessions, whether the sender enabled carbons or not.
func TestSent(t *testing.T) {
	e := setup(t)

	m := chat(bob, "chat", "from a3")
	check(t, "a3", send(t, e.a3, m), m.ID, false, "")
	expect(t, "bob", e.b, m.ID, true, "")
	for i, c := range []*servertest.Client{e.a1, e.a2} {
		got := expect(t, "a"+strconv.Itoa(i+1), c, m.ID, false, "sent")
		if s := text(got); got.Type != "chat" || !got.To.Equal(c.LocalAddr()) ||
			!strings.Contains(s, `from="alice@localhost/a3" to="bob@localhost"`) || !strings.Contains(s, `<body>from a3</body>`) {
			t.Fatalf("sent copy: %s", s)
		}
	}

	m = chat(bob, "chat", "from a1")
	check(t, "a1", send(t, e.a1, m), m.ID, false, "")
	expect(t, "bob", e.b, m.ID, true, "")
	expect(t, "a2", e.a2, m.ID, false, "sent")
	expect(t, "a3", e.a3, m.ID, false, "")

	// To her own account: a1 (highest priority) gets the message, a2 a
	// sent copy, and nobody a received copy.
	m = chat(alice, "chat", "note to self")
	check(t, "a3", send(t, e.a3, m), m.ID, false, "")
	expect(t, "a1", e.a1, m.ID, true, "")
	expect(t, "a2", e.a2, m.ID, false, "sent")
}

// TestNotCopied: private, no-copy, MUC private messages received,
// groupchat, headline, content-free normal messages and carbons are not
// copied; the recipient gets a private message without <private/>.
func TestNotCopied(t *testing.T) {
	e := setup(t)
	for _, tc := range []struct {
		name string
		from *servertest.Client
		m    *stanza.Stanza
	}{
		{"private sent", e.a3, chat(bob, "chat", "secret out", empty(carbons.NS, "private"))},
		{"private received", e.b, chat(e.a3.LocalAddr(), "chat", "secret in", empty(carbons.NS, "private"))},
		{"no-copy received", e.b, chat(e.a3.LocalAddr(), "chat", "no copy", empty(carbons.NSHints, "no-copy"))},
		{"no-copy sent", e.a3, chat(bob, "chat", "no copy", empty(carbons.NSHints, "no-copy"))},
		{"MUC PM received", e.b, chat(e.a3.LocalAddr(), "chat", "pm", empty(carbons.NSMUCUser, "x"))},
		{"headline", e.b, chat(e.a3.LocalAddr(), "headline", "news")},
		{"groupchat", e.b, chat(e.a3.LocalAddr(), "groupchat", "room")},
		{"normal without body", e.b, chat(e.a3.LocalAddr(), "normal", "", empty("urn:example", "x"))},
		{"a carbon itself", e.b, chat(e.a3.LocalAddr(), "chat", "", empty(carbons.NS, "received"))},
	} {
		send(t, tc.from, tc.m)
		expect(t, "a1 ("+tc.name+")", e.a1, tc.m.ID, false, "")
		expect(t, "a2 ("+tc.name+")", e.a2, tc.m.ID, false, "")
		if tc.name == "private received" {
			got := expect(t, "a3", e.a3, tc.m.ID, true, "")
			if strings.Contains(text(got), "private") {
				t.Fatalf("%s: <private/> delivered: %s", tc.name, text(got))
			}
		}
	}

	// Chat states and normal messages with a body are copied; so is a
	// private message sent to a MUC occupant.
	m := chat(e.a3.LocalAddr(), "chat", "", empty(carbons.NSChatStates, "composing"))
	send(t, e.b, m)
	expect(t, "a1", e.a1, m.ID, false, "received")
	m = chat(e.a3.LocalAddr(), "normal", "hello")
	send(t, e.b, m)
	expect(t, "a2", e.a2, m.ID, false, "received")
	m = chat(jid.MustParse("bob@localhost/nick"), "chat", "pm out", empty(carbons.NSMUCUser, "x"))
	send(t, e.a3, m)
	expect(t, "a2", e.a2, m.ID, false, "sent")
}

// TestErrors: an error answering a copied message is copied; another
// error is not.
func TestErrors(t *testing.T) {
	e := setup(t)
	m := chat(jid.MustParse("nobody@localhost"), "chat", "hello?")
	if bounce := check(t, "a3", send(t, e.a3, m), m.ID, true, ""); !bounce.IsError() {
		t.Fatalf("want a bounce, got %s", text(bounce))
	}
	for _, c := range []*servertest.Client{e.a1, e.a2} {
		var sent, received int
		for _, st := range collect(t, c) {
			switch {
			case carbon("sent", m.ID)(st):
				sent++
			case carbon("received", m.ID)(st):
				received++
				if !strings.Contains(text(st), `type="error"`) {
					t.Fatalf("copy of the bounce: %s", text(st))
				}
			}
		}
		if sent != 1 || received != 1 {
			t.Fatalf("%s: %d sent and %d received copies, want the message and its bounce", c.LocalAddr(), sent, received)
		}
	}

	stray := chat(e.a3.LocalAddr(), "error", "")
	stray.AppendChild(stanza.Elem(xml.Name{Space: stanza.NSClient, Local: "error"}, []xml.Attr{stanza.Attr("type", "cancel")},
		empty("urn:ietf:params:xml:ns:xmpp-stanzas", "item-not-found")))
	send(t, e.b, stray)
	expect(t, "a3", e.a3, stray.ID, true, "")
	expect(t, "a1", e.a1, stray.ID, false, "")
}

// TestDisableAndEnd: a session that disabled carbons, or ended, gets no
// more copies; a new session with the same resource starts disabled.
func TestDisableAndEnd(t *testing.T) {
	e := setup(t)
	toggle(t, e.a2, "disable")
	toggle(t, e.a2, "disable") // repeated: still a result
	m := chat(e.a3.LocalAddr(), "chat", "after disable")
	send(t, e.b, m)
	expect(t, "a1", e.a1, m.ID, false, "received")
	expect(t, "a2", e.a2, m.ID, false, "")

	toggle(t, e.a2, "enable")
	toggle(t, e.a2, "enable")
	m = chat(e.a3.LocalAddr(), "chat", "enabled again")
	send(t, e.b, m)
	expect(t, "a2", e.a2, m.ID, false, "received")

	// a1 goes away; a new a1 does not inherit its carbons.
	e.a1.Close()
	e.a1.Conn().Close()
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.SessionCount() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions: the ended one is still there", e.srv.SessionCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	a1 := e.login(t, "alice@localhost/a1", 5, false)
	m = chat(e.a3.LocalAddr(), "chat", "after a1 left")
	send(t, e.b, m)
	expect(t, "a2", e.a2, m.ID, false, "received")
	expect(t, "new a1", a1, m.ID, false, "")
}

// TestWithArchive: listed after the message archive, the received copy
// forwards the message with the archive's stanza id, as the recipient's
// own resource gets it.
// The archive adds its stanza id before carbons copy a message, whichever
// of the two is listed first: the order is their routes' priorities
// (mam.RoutePriority > carbons.RoutePriority), declared in code.
func TestWithArchive(t *testing.T) {
	t.Run("archive listed first", func(t *testing.T) { testWithArchive(t, true) })
	t.Run("archive listed last", func(t *testing.T) { testWithArchive(t, false) })
}

func testWithArchive(t *testing.T, archiveFirst bool) {
	store := memory.New()
	archive, err := mam.New(mam.Options{}, mam.Deps{Archive: store, KV: store})
	if err != nil {
		t.Fatal(err)
	}
	var e *env
	if archiveFirst {
		e = setupAround(t, []server.Module{archive}, nil)
	} else {
		e = setupAround(t, nil, []server.Module{archive})
	}
	m := chat(e.a3.LocalAddr(), "chat", "archived")
	send(t, e.b, m)
	got := expect(t, "a3", e.a3, m.ID, true, "")
	se, _, ok := got.Child(xml.Name{Space: mam.NSSID, Local: "stanza-id"})
	if !ok {
		t.Fatalf("no stanza id: %s", text(got))
	}
	var id string
	for _, a := range se.Attr {
		if a.Name.Local == "id" {
			id = a.Value
		}
	}
	cp := text(expect(t, "a1", e.a1, m.ID, false, "received"))
	if id == "" || !strings.Contains(cp, `<stanza-id xmlns="urn:xmpp:sid:0" by="alice@localhost" id="`+id+`"/></message></forwarded></received>`) {
		t.Fatalf("the copy lacks the archive's stanza id %q: %s", id, cp)
	}
}

func TestFeatures(t *testing.T) {
	srv, c := modtest.Start(t, modtest.Must(carbons.New(carbons.Options{}, carbons.Deps{})))
	info := modtest.DiscoInfo(t, c, jid.MustParse(srv.Domain))
	for _, f := range []string{carbons.NS, carbons.NSRules} {
		if !modtest.HasFeature(info, f) {
			t.Errorf("no %s on the server: %s", f, text(info))
		}
	}
}

package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// Group chat helpers: raw XML to kiezd's MUC service at
// conference.localhost, answers matched as text.

const mucService = "conference.localhost"

// stanzaText returns st as XML text.
func stanzaText(st *stanza.Stanza) string {
	var b bytes.Buffer
	st.WriteTo(&b)
	return b.String()
}

// mucFrom matches a stanza of kind from the address from (exactly) whose
// text holds every one of has.
func mucFrom(kind stanza.Kind, from string, has ...string) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		if st.Kind != kind || st.From.String() != from {
			return false
		}
		text := stanzaText(st)
		for _, h := range has {
			if !strings.Contains(text, h) {
				return false
			}
		}
		return true
	}
}

// mucSubject matches the subject message of room, which ends a join.
func mucSubject(room string) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Message && st.From.Bare().String() == room && strings.Contains(stanzaText(st), "<subject")
	}
}

// mucJoin sends a join of room as nick and returns the self-presence (with
// status 110) or the error presence; a successful join is read up to the
// subject.
func mucJoin(t *testing.T, c *servertest.Client, room, nick string) *stanza.Stanza {
	t.Helper()
	occupant := room + "/" + nick
	if err := c.SendRaw(`<presence to='` + occupant + `'><x xmlns='http://jabber.org/protocol/muc'/></presence>`); err != nil {
		t.Fatal(err)
	}
	self := c.Expect(func(st *stanza.Stanza) bool {
		return mucFrom(stanza.Presence, occupant, `code="110"`)(st) || (st.Type == stanza.Error && mucFrom(stanza.Presence, occupant)(st))
	})
	if self.Type != stanza.Error {
		c.Expect(mucSubject(room))
	}
	return self
}

// mucCreate creates room with c as its owner (nick), configured with the
// muc#roomconfig fields given as var, value pairs.
func mucCreate(t *testing.T, c *servertest.Client, room, nick string, fields ...string) {
	t.Helper()
	self := mucJoin(t, c, room, nick)
	if text := stanzaText(self); !strings.Contains(text, `code="201"`) || !strings.Contains(text, `affiliation="owner"`) {
		t.Fatalf("creating %s: %s", room, text)
	}
	form := `<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>`
	for i := 0; i+1 < len(fields); i += 2 {
		form += `<field var='` + fields[i] + `'><value>` + fields[i+1] + `</value></field>`
	}
	wantResultIQ(t, textIQ(t, c, "cfg-"+nick, `<iq type='set' id='cfg-`+nick+`' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'>`+
		`<x xmlns='jabber:x:data' type='submit'>`+form+`</x></query></iq>`))
}

// mucAffiliate sets user's affiliation in room, as c (an owner or admin).
func mucAffiliate(t *testing.T, c *servertest.Client, room, user, affiliation string) {
	t.Helper()
	id := "aff-" + affiliation + "-" + strings.Split(user, "@")[0]
	wantResultIQ(t, textIQ(t, c, id, `<iq type='set' id='`+id+`' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#admin'>`+
		`<item jid='`+user+`' affiliation='`+affiliation+`'/></query></iq>`))
}

// mucRegister registers nick for c's account in room (XEP-0045 §7.10).
func mucRegister(t *testing.T, c *servertest.Client, room, nick string) {
	t.Helper()
	wantResultIQ(t, textIQ(t, c, "reg-"+nick, `<iq type='set' id='reg-`+nick+`' to='`+room+`'><query xmlns='jabber:iq:register'>`+
		`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>`+
		`<field var='muc#register_roomnick'><value>`+nick+`</value></field></x></query></iq>`))
}

// mucSay sends a groupchat message to room.
func mucSay(t *testing.T, c *servertest.Client, room, body string) {
	t.Helper()
	if err := c.SendRaw(`<message type='groupchat' to='` + room + `'><body>` + body + `</body></message>`); err != nil {
		t.Fatal(err)
	}
}

// mucLeave leaves room and waits for the self-presence saying so.
func mucLeave(t *testing.T, c *servertest.Client, room, nick string) {
	t.Helper()
	if err := c.SendRaw(`<presence type='unavailable' to='` + room + "/" + nick + `'/>`); err != nil {
		t.Fatal(err)
	}
	c.Expect(func(st *stanza.Stanza) bool {
		return st.Type == "unavailable" && mucFrom(stanza.Presence, room+"/"+nick, `code="110"`)(st)
	})
}

// Issue 14 in kiezd: the group chat service is on by default at
// conference.localhost. Three real clients over kiezd's listeners: alice
// creates a persistent members-only room; carol, no member, is refused;
// bob, made a member, joins and chats; a rejoin brings the history, with
// delay stamps and the room's stanza ids, before the subject. After a
// restart of kiezd the room, its configuration and its members are still
// there: carol is still refused, bob still joins and gets the history
// from the room's archive, which he also queries (XEP-0313 on the room's
// address), and carol once made a member joins too. The XEP-0227 export
// lists bob's membership.
func TestMUC(t *testing.T) { onBothBackends(t, testMUC) }

func testMUC(t *testing.T) {
	file, _ := testConfig(t, "")
	const (
		alice = "alice@localhost"
		bob   = "bob@localhost"
		carol = "carol@localhost"
		room  = "friends@" + mucService
	)
	for _, u := range []string{alice, bob, carol} {
		if code, _, stderr := kiezd(t, auditPassword+"\n", "-config", file, "adduser", u); code != 0 {
			t.Fatal(stderr)
		}
	}
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited:\n%s", d.stderr)
	}
	online := func(d *daemon, user string) *servertest.Client {
		t.Helper()
		sess, err := login(t, d.bound.C2S[0], false, user+"/desk", auditPassword)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { logout(sess) })
		c := servertest.NewClient(t, sess)
		c.Send(&stanza.Stanza{Kind: stanza.Presence})
		c.Sync()
		return c
	}
	a, b, c := online(d, alice), online(d, bob), online(d, carol)

	// The service is listed and says what it is.
	if items := textIQ(t, a, "items", `<iq type='get' id='items' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`); !strings.Contains(items, `jid="`+mucService+`"`) {
		t.Fatalf("disco#items of localhost without %s: %s", mucService, items)
	}
	if info := textIQ(t, a, "info", `<iq type='get' id='info' to='`+mucService+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`); !strings.Contains(info, `category="conference"`) ||
		!strings.Contains(info, `var="http://jabber.org/protocol/muc"`) {
		t.Fatalf("disco#info of %s: %s", mucService, info)
	}

	mucCreate(t, a, room, "Alice", "muc#roomconfig_roomname", "Friends", "muc#roomconfig_persistentroom", "1",
		"muc#roomconfig_membersonly", "1", "muc#roomconfig_whois", "anyone", "muc#roomconfig_enablearchiving", "1")
	if got := stanzaText(mucJoin(t, c, room, "Carol")); !strings.Contains(got, "<registration-required") {
		t.Fatalf("a non-member joins a members-only room: %s", got)
	}
	mucAffiliate(t, a, room, bob, "member")
	// Bob sees Alice, then himself, as a member.
	if err := b.SendRaw(`<presence to='` + room + `/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>`); err != nil {
		t.Fatal(err)
	}
	b.Expect(mucFrom(stanza.Presence, room+"/Alice", `affiliation="owner"`, `jid="`+alice+`/`))
	b.Expect(mucFrom(stanza.Presence, room+"/Bob", `code="110"`, `affiliation="member"`))
	b.Expect(mucSubject(room))
	a.Expect(mucFrom(stanza.Presence, room+"/Bob", `affiliation="member"`))

	// Chat: every occupant gets each message from the sender's occupant
	// address, with the room's stanza-id and an occupant-id.
	mucSay(t, a, room, "MUCHello")
	for _, cl := range []*servertest.Client{a, b} {
		got := stanzaText(cl.Expect(servertest.Body("MUCHello")))
		if !strings.Contains(got, `from="`+room+`/Alice"`) || !strings.Contains(got, `type="groupchat"`) ||
			!strings.Contains(got, `<stanza-id xmlns="urn:xmpp:sid:0"`) || !strings.Contains(got, `by="`+room+`"`) ||
			!strings.Contains(got, `<occupant-id xmlns="urn:xmpp:occupant-id:0"`) {
			t.Fatalf("groupchat message: %s", got)
		}
	}
	mucSay(t, b, room, "MUCReply")
	a.Expect(servertest.Body("MUCReply"))
	b.Expect(servertest.Body("MUCReply"))
	c.SyncNone(func(st *stanza.Stanza) bool { return strings.Contains(stanzaText(st), "MUC") })

	// A rejoin brings the history, oldest first, each with a delay
	// stamp from the room, then the subject.
	mucLeave(t, b, room, "Bob")
	if err := b.SendRaw(`<presence to='` + room + `/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>`); err != nil {
		t.Fatal(err)
	}
	b.Expect(mucFrom(stanza.Presence, room+"/Bob", `code="110"`))
	first := b.ExpectNoneUntil(servertest.Body("MUCReply"), servertest.Body("MUCHello"))
	if got := stanzaText(first); !strings.Contains(got, `<delay xmlns="urn:xmpp:delay"`) || !strings.Contains(got, `from="`+room+`"`) || !strings.Contains(got, "stamp=") {
		t.Errorf("history without a delay stamp from the room: %s", got)
	}
	b.ExpectNoneUntil(mucSubject(room), servertest.Body("MUCReply"))
	b.Expect(mucSubject(room))

	// The room outlives a restart, with its configuration and members.
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, d.stderr)
	}
	d = startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited:\n%s", d.stderr)
	}
	a, b, c = online(d, alice), online(d, bob), online(d, carol)
	if got := stanzaText(mucJoin(t, c, room, "Carol")); !strings.Contains(got, "<registration-required") {
		t.Fatalf("after a restart, a non-member joins the members-only room: %s", got)
	}
	if err := b.SendRaw(`<presence to='` + room + `/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>`); err != nil {
		t.Fatal(err)
	}
	b.Expect(mucFrom(stanza.Presence, room+"/Bob", `code="110"`, `affiliation="member"`))
	b.ExpectNoneUntil(servertest.Body("MUCReply"), mucFrom(stanza.Message, room+"/Alice", "MUCHello", `<delay xmlns="urn:xmpp:delay"`, `<stanza-id xmlns="urn:xmpp:sid:0"`))
	b.ExpectNoneUntil(mucSubject(room), servertest.Body("MUCReply"))
	b.Expect(mucSubject(room))
	// The room's archive, queried by a member.
	if err := b.SendRaw(`<iq type='set' id='rmam' to='` + room + `'><query xmlns='urn:xmpp:mam:2' queryid='rq'/></iq>`); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"MUCHello", "MUCReply"} {
		got := stanzaText(b.Expect(func(st *stanza.Stanza) bool {
			return st.Kind == stanza.Message && strings.Contains(stanzaText(st), `queryid="rq"`) && strings.Contains(stanzaText(st), body)
		}))
		_, fwd, _ := strings.Cut(got, "<forwarded")
		if !strings.Contains(got, `from="`+room+`"`) || fwd == "" || strings.Contains(fwd, alice) || strings.Contains(fwd, bob) {
			t.Errorf("archived room message (no real address may be in it): %s", got)
		}
	}
	if fin := stanzaText(b.Expect(servertest.ByID("rmam"))); !strings.Contains(fin, `type="result"`) || !strings.Contains(fin, `complete="true"`) {
		t.Errorf("room archive query: %s", fin)
	}
	if got := stanzaText(mucJoin(t, a, room, "Alice")); !strings.Contains(got, `affiliation="owner"`) {
		t.Fatalf("after a restart, alice joins as %s", got)
	}
	if info := textIQ(t, c, "rinfo", `<iq type='get' id='rinfo' to='`+room+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`); !strings.Contains(info, `name="Friends"`) ||
		!strings.Contains(info, `var="muc_membersonly"`) || !strings.Contains(info, `var="muc_persistent"`) {
		t.Errorf("after a restart, the room's disco#info: %s", info)
	}
	mucAffiliate(t, a, room, carol, "member")
	if got := stanzaText(mucJoin(t, c, room, "Carol")); !strings.Contains(got, `affiliation="member"`) {
		t.Fatalf("carol, made a member, joins as %s", got)
	}
	mucSay(t, c, room, "MUCCarol")
	for _, cl := range []*servertest.Client{a, b, c} {
		cl.Expect(servertest.Body("MUCCarol"))
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, d.stderr)
	}
	// The export lists bob's membership.
	code, out, stderr := kiezd(t, "", "-config", file, "export", "--omit-credentials", bob)
	if code != 0 || !regexp.MustCompile(`<room [^>]*jid="`+room+`" affiliation="member"`).MatchString(out) {
		t.Errorf("export of bob: exit %d, %s%s", code, out, stderr)
	}
}

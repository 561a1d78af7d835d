package muc_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/muc"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

var service = jid.MustParse("conference.localhost")

// env is a server with the MUC service and three accounts online.
type env struct {
	srv               *servertest.Server
	store             *memory.Store
	mod               *muc.Module
	alice, bob, carol jid.JID
	a, b, c           *servertest.Client
	n                 int
}

func start(t *testing.T, opts muc.Options) *env {
	t.Helper()
	return startWith(t, opts, nil)
}

// startWith is start with a room archive.
func startWith(t *testing.T, opts muc.Options, archive muc.Archive) *env {
	t.Helper()
	store := memory.New()
	m := modtest.Must(muc.New(opts, muc.Deps{Store: store, Secrets: store, KV: store, Archive: archive}))
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{m}})
	e := &env{srv: srv, store: store, mod: m}
	e.alice = srv.AddUser(t, "alice", "pw")
	e.bob = srv.AddUser(t, "bob", "pw")
	e.carol = srv.AddUser(t, "carol", "pw")
	e.a = srv.Connect(t, e.alice, "pw")
	e.b = srv.Connect(t, e.bob, "pw")
	e.c = srv.Connect(t, e.carol, "pw")
	for _, c := range []*servertest.Client{e.a, e.b, e.c} {
		online(c)
	}
	return e
}

// online sends initial presence: a session receives presence only once
// it is available.
func online(c *servertest.Client) {
	c.Send(&stanza.Stanza{Kind: stanza.Presence})
	c.Sync()
}

func roomJID(name string) jid.JID { return jid.MustParse(name + "@" + service.String()) }

func occ(room jid.JID, nick string) jid.JID {
	j, err := room.WithResource(nick)
	if err != nil {
		panic(err)
	}
	return j
}

func (e *env) id() string {
	e.n++
	return "t" + strconv.Itoa(e.n)
}

// join sends presence to room/nick with <x xmlns='…muc'/> holding extra.
func join(c *servertest.Client, room jid.JID, nick string, extra ...xml.TokenReader) {
	p := &stanza.Stanza{Kind: stanza.Presence, To: occ(room, nick)}
	p.AppendChild(stanza.Elem(xml.Name{Space: muc.NS, Local: "x"}, nil, extra...))
	c.Send(p)
}

func leave(c *servertest.Client, room jid.JID, nick string) {
	c.Send(&stanza.Stanza{Kind: stanza.Presence, Type: "unavailable", To: occ(room, nick)})
}

// userX returns the muc#user <x/> of st.
func userX(st *stanza.Stanza) (stanza.Element, bool) {
	return st.ChildElement(xml.Name{Space: muc.NSUser, Local: "x"})
}

// hasStatus reports whether st carries muc#user status code.
func hasStatus(st *stanza.Stanza, code int) bool {
	x, ok := userX(st)
	if !ok {
		return false
	}
	for el := range x.Children() {
		if el.Name.Local == "status" && el.Attr("code") == strconv.Itoa(code) {
			return true
		}
	}
	return false
}

// item returns the muc#user <item/> of st.
func item(st *stanza.Stanza) stanza.Element {
	x, _ := userX(st)
	it, _ := x.Child(xml.Name{Space: muc.NSUser, Local: "item"})
	return it
}

// presenceFrom matches presence (of type typ) from j.
func presenceFrom(j jid.JID, typ string) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Presence && st.From.Equal(j) && st.Type == typ
	}
}

// errorFrom matches an error stanza of kind from j.
func errorFrom(kind stanza.Kind, j jid.JID) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool { return st.Kind == kind && st.From.Equal(j) && st.Type == stanza.Error }
}

// subject matches the subject message from the room.
func subject(room jid.JID) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		_, ok := st.ChildElement(xml.Name{Local: "subject"})
		return st.Kind == stanza.Message && st.From.Bare().Equal(room) && ok
	}
}

// joined joins and waits for the self-presence and the subject.
func joined(t *testing.T, c *servertest.Client, room jid.JID, nick string, extra ...xml.TokenReader) *stanza.Stanza {
	t.Helper()
	join(c, room, nick, extra...)
	self := c.Expect(func(st *stanza.Stanza) bool {
		return (st.Kind == stanza.Presence && st.From.Equal(occ(room, nick)) && hasStatus(st, 110)) || errorFrom(stanza.Presence, occ(room, nick))(st)
	})
	if self.Type == stanza.Error {
		t.Fatalf("join %s as %s: %s", room, nick, modtest.Condition(self))
	}
	c.Expect(subject(room))
	return self
}

// create makes an instant room owned by c's account (XEP-0045 §10.1.2).
func (e *env) create(t *testing.T, c *servertest.Client, room jid.JID, nick string) {
	t.Helper()
	join(c, room, nick)
	self := c.Expect(presenceFrom(occ(room, nick), ""))
	if !hasStatus(self, 201) || !hasStatus(self, 110) {
		t.Fatalf("creation presence without 201 and 110")
	}
	if a := item(self).Attr("affiliation"); a != "owner" {
		t.Fatalf("creator's affiliation %q", a)
	}
	c.Expect(subject(room))
	e.configure(t, c, room, nil)
}

// configure submits the owner form with fields (nil: an instant room).
func (e *env) configure(t *testing.T, c *servertest.Client, room jid.JID, fields map[string][]string) {
	t.Helper()
	if err := e.submit(t, c, room, fields); err != nil {
		t.Fatalf("configure: %v", err)
	}
}

func (e *env) submit(t *testing.T, c *servertest.Client, room jid.JID, fields map[string][]string) error {
	t.Helper()
	f := &form.Form{Type: form.TypeSubmit}
	if fields != nil {
		f.Fields = append(f.Fields, form.FormTypeField("http://jabber.org/protocol/muc#roomconfig"))
		for k, v := range fields {
			f.Fields = append(f.Fields, form.Field{Var: k, Values: v})
		}
	}
	res := modtest.Do(t, c, modtest.IQ(e.id(), stanza.Set, room, stanza.Elem(xml.Name{Space: muc.NSOwner, Local: "query"}, nil, f.TokenReader())))
	if res.Type != stanza.Result {
		return fmt.Errorf("%s", modtest.Condition(res))
	}
	return nil
}

// say sends a groupchat message.
func say(c *servertest.Client, room jid.JID, body string) {
	m := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", To: room}
	m.AppendChild(stanza.TextElem(xml.Name{Local: "body"}, body))
	c.Send(m)
}

// admin sends a muc#admin set with one item.
func (e *env) admin(t *testing.T, c *servertest.Client, room jid.JID, attrs ...string) *stanza.Stanza {
	t.Helper()
	var as []xml.Attr
	for i := 0; i+1 < len(attrs); i += 2 {
		as = append(as, stanza.Attr(attrs[i], attrs[i+1]))
	}
	return modtest.Do(t, c, modtest.IQ(e.id(), stanza.Set, room, stanza.Elem(xml.Name{Space: muc.NSAdmin, Local: "query"}, nil,
		stanza.Elem(xml.Name{Space: muc.NSAdmin, Local: "item"}, as))))
}

func child(st *stanza.Stanza, space, local string) (stanza.Element, bool) {
	return st.ChildElement(xml.Name{Space: space, Local: local})
}

// Creation, the locked room, joining, chatting, history and disco.
func TestCreateJoinChatHistory(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("lobby")
	join(e.a, room, "Alice")
	self := e.a.Expect(presenceFrom(occ(room, "Alice"), ""))
	if !hasStatus(self, 201) {
		t.Fatal("no 201")
	}
	// Locked until configured.
	join(e.b, room, "Bob")
	if got := modtest.Condition(e.b.Expect(errorFrom(stanza.Presence, occ(room, "Bob")))); got != mstanza.ItemNotFound {
		t.Fatalf("join of a locked room: %s", got)
	}
	// The owner form has the fields clients use.
	res := modtest.Do(t, e.a, modtest.IQ("form", stanza.Get, room, modtest.Query(muc.NSOwner, "query")))
	x, ok := child(res, muc.NSOwner, "query")
	if !ok {
		t.Fatal("no owner query")
	}
	fx, _ := x.Child(xml.Name{Space: form.NS, Local: "x"})
	f, err := form.Parse(stanza.Tokens(fx.Tokens()...))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"muc#roomconfig_roomname", "muc#roomconfig_persistentroom", "muc#roomconfig_membersonly", "muc#roomconfig_whois", "muc#roomconfig_roomsecret", "muc#roomconfig_maxusers", "muc#roomconfig_allowpm"} {
		if f.Field(v) == nil {
			t.Errorf("config form without %s", v)
		}
	}
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_roomname": {"The Lobby"}, "muc#roomconfig_whois": {"anyone"}})

	// Bob joins: sees Alice, then himself (with 100: non-anonymous).
	join(e.b, room, "Bob")
	pa := e.b.Expect(presenceFrom(occ(room, "Alice"), ""))
	if item(pa).Attr("jid") == "" {
		t.Error("non-anonymous room hides Alice's address")
	}
	pb := e.b.Expect(presenceFrom(occ(room, "Bob"), ""))
	if !hasStatus(pb, 110) || !hasStatus(pb, 100) || item(pb).Attr("role") != "participant" {
		t.Fatalf("self-presence: 110 %v 100 %v role %q", hasStatus(pb, 110), hasStatus(pb, 100), item(pb).Attr("role"))
	}
	e.b.Expect(subject(room))
	e.a.Expect(presenceFrom(occ(room, "Bob"), ""))

	// A message reaches both, with a stanza-id by the room and an occupant-id.
	say(e.a, room, "hello")
	for _, c := range []*servertest.Client{e.a, e.b} {
		msg := c.Expect(servertest.Body("hello"))
		if !msg.From.Equal(occ(room, "Alice")) || msg.Type != "groupchat" {
			t.Fatalf("message from %s type %s", msg.From, msg.Type)
		}
		sid, ok := child(msg, muc.NSSID, "stanza-id")
		if !ok || sid.Attr("by") != room.String() || sid.Attr("id") == "" {
			t.Fatal("no stanza-id by the room")
		}
		if oid, ok := child(msg, muc.NSOccID, "occupant-id"); !ok || oid.Attr("id") == "" {
			t.Fatal("no occupant-id")
		}
	}
	say(e.b, room, "second")
	e.a.Expect(servertest.Body("second"))

	// Subject change by the owner.
	subj := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", To: room}
	subj.AppendChild(stanza.TextElem(xml.Name{Local: "subject"}, "Welcome"))
	e.a.Send(subj)
	e.b.Expect(subject(room))

	// Carol asks for one message of history: she gets "second", delayed,
	// then the subject.
	join(e.c, room, "Carol", stanza.Elem(xml.Name{Space: muc.NS, Local: "history"}, []xml.Attr{stanza.Attr("maxstanzas", "1")}))
	e.c.Expect(presenceFrom(occ(room, "Carol"), ""))
	hist := e.c.ExpectNoneUntil(servertest.Body("hello"), servertest.Body("second"))
	if d, ok := child(hist, muc.NSDelay, "delay"); !ok || d.Attr("from") != room.String() || d.Attr("stamp") == "" {
		t.Fatal("history without delay")
	}
	s := e.c.Expect(subject(room))
	if txt, _ := s.ChildText(xml.Name{Local: "subject"}); txt != "Welcome" || !s.From.Equal(occ(room, "Alice")) {
		t.Fatalf("subject %q from %s", txt, s.From)
	}
	// maxchars=0: no history.
	leave(e.c, room, "Carol")
	e.c.Expect(presenceFrom(occ(room, "Carol"), "unavailable"))
	join(e.c, room, "Carol", stanza.Elem(xml.Name{Space: muc.NS, Local: "history"}, []xml.Attr{stanza.Attr("maxchars", "0")}))
	e.c.ExpectNoneUntil(servertest.Body("second"), subject(room))

	// Disco of the room.
	info := modtest.DiscoInfo(t, e.c, room)
	for _, f := range []string{muc.NS, "muc_public", "muc_temporary", "muc_open", "muc_unsecured", "muc_unmoderated", "muc_nonanonymous", muc.NSOccID, muc.NSSID, "muc#stable_id", "muc#self-ping-optimization"} {
		if !modtest.HasFeature(info, f) {
			t.Errorf("room disco#info without %s", f)
		}
	}
	// The service.
	if !modtest.HasFeature(modtest.DiscoInfo(t, e.c, service), muc.NS) {
		t.Error("service disco#info without the MUC feature")
	}

	// The last one out of a temporary room destroys it.
	for _, p := range []struct {
		c    *servertest.Client
		nick string
	}{{e.a, "Alice"}, {e.b, "Bob"}, {e.c, "Carol"}} {
		leave(p.c, room, p.nick)
		p.c.Expect(presenceFrom(occ(room, p.nick), "unavailable"))
	}
	res = modtest.Do(t, e.a, modtest.IQ("gone", stanza.Get, room, modtest.Query(server.NSDiscoInfo, "query")))
	if modtest.Condition(res) != mstanza.ItemNotFound {
		t.Fatalf("disco of a destroyed room: %s", modtest.Condition(res))
	}
}

// Members-only and password-protected rooms, and a persistent room in the
// store.
func TestMembersOnlyAndPassword(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("club")
	e.create(t, e.a, room, "Alice")
	e.configure(t, e.a, room, map[string][]string{
		"muc#roomconfig_membersonly":           {"1"},
		"muc#roomconfig_persistentroom":        {"1"},
		"muc#roomconfig_passwordprotectedroom": {"1"},
		"muc#roomconfig_roomsecret":            {"s3cret"},
	})
	if _, err := e.store.Room(context.Background(), room.String()); err != nil {
		t.Fatalf("persistent room not stored: %v", err)
	}
	join(e.b, room, "Bob")
	if got := modtest.Condition(e.b.Expect(errorFrom(stanza.Presence, occ(room, "Bob")))); got != mstanza.RegistrationRequired {
		t.Fatalf("non-member join: %s", got)
	}
	if res := e.admin(t, e.a, room, "jid", e.bob.String(), "affiliation", "member"); res.Type != stanza.Result {
		t.Fatalf("make member: %s", modtest.Condition(res))
	}
	join(e.b, room, "Bob")
	if got := modtest.Condition(e.b.Expect(errorFrom(stanza.Presence, occ(room, "Bob")))); got != mstanza.NotAuthorized {
		t.Fatalf("join without password: %s", got)
	}
	joined(t, e.b, room, "Bob", stanza.TextElem(xml.Name{Space: muc.NS, Local: "password"}, "s3cret"))
	a, err := e.store.Affiliation(context.Background(), room.String(), e.bob.String())
	if err != nil || a.Affiliation != storage.AffMember {
		t.Fatalf("stored affiliation %+v, %v", a, err)
	}
	// The member list.
	res := modtest.Do(t, e.a, modtest.IQ("list", stanza.Get, room, stanza.Elem(xml.Name{Space: muc.NSAdmin, Local: "query"}, nil,
		stanza.Elem(xml.Name{Space: muc.NSAdmin, Local: "item"}, []xml.Attr{stanza.Attr("affiliation", "member")}))))
	q, _ := child(res, muc.NSAdmin, "query")
	it, ok := q.Child(xml.Name{Space: muc.NSAdmin, Local: "item"})
	if !ok || it.Attr("jid") != e.bob.String() {
		t.Fatal("member list without bob")
	}
	// A member reads the member list, not (in a semi-anonymous room) the
	// owner list.
	list := func(c *servertest.Client, aff string) *stanza.Stanza {
		return modtest.Do(t, c, modtest.IQ(e.id(), stanza.Get, room, stanza.Elem(xml.Name{Space: muc.NSAdmin, Local: "query"}, nil,
			stanza.Elem(xml.Name{Space: muc.NSAdmin, Local: "item"}, []xml.Attr{stanza.Attr("affiliation", aff)}))))
	}
	if res := list(e.b, "member"); res.Type != stanza.Result {
		t.Fatalf("member list for a member: %s", modtest.Condition(res))
	}
	if res := list(e.b, "owner"); modtest.Condition(res) != mstanza.Forbidden {
		t.Fatalf("owner list for a member: %s", modtest.Condition(res))
	}
	// Losing membership removes Bob (321).
	e.admin(t, e.a, room, "jid", e.bob.String(), "affiliation", "none")
	p := e.b.Expect(presenceFrom(occ(room, "Bob"), "unavailable"))
	if !hasStatus(p, 321) {
		t.Fatal("no 321")
	}
	// The persistent room stays when empty.
	leave(e.a, room, "Alice")
	e.a.Expect(presenceFrom(occ(room, "Alice"), "unavailable"))
	modtest.DiscoInfo(t, e.a, room)
}

// Kicking (307) and banning (301).
func TestKickBan(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("ring")
	e.create(t, e.a, room, "Alice")
	joined(t, e.b, room, "Bob")
	joined(t, e.c, room, "Carol")
	// Bob (participant) may not kick.
	if res := e.admin(t, e.b, room, "nick", "Carol", "role", "none"); modtest.Condition(res) != mstanza.Forbidden {
		t.Fatalf("participant kick: %s", modtest.Condition(res))
	}
	// An owner cannot be kicked.
	if res := e.admin(t, e.a, room, "nick", "Alice", "role", "none"); modtest.Condition(res) != mstanza.NotAllowed {
		t.Fatalf("owner kick: %s", modtest.Condition(res))
	}
	if res := e.admin(t, e.a, room, "nick", "Carol", "role", "none"); res.Type != stanza.Result {
		t.Fatalf("kick: %s", modtest.Condition(res))
	}
	p := e.c.Expect(presenceFrom(occ(room, "Carol"), "unavailable"))
	if !hasStatus(p, 307) || !hasStatus(p, 110) {
		t.Fatal("kicked without 307/110")
	}
	if p := e.b.Expect(presenceFrom(occ(room, "Carol"), "unavailable")); !hasStatus(p, 307) {
		t.Fatal("others not told of the kick")
	}
	joined(t, e.c, room, "Carol")
	e.admin(t, e.a, room, "jid", e.carol.String(), "affiliation", "outcast")
	p = e.c.Expect(presenceFrom(occ(room, "Carol"), "unavailable"))
	if !hasStatus(p, 301) {
		t.Fatal("banned without 301")
	}
	join(e.c, room, "Carol")
	if got := modtest.Condition(e.c.Expect(errorFrom(stanza.Presence, occ(room, "Carol")))); got != mstanza.Forbidden {
		t.Fatalf("banned join: %s", got)
	}
	// Voice: in a moderated room Bob becomes a visitor and cannot speak.
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_moderatedroom": {"1"}})
	if res := e.admin(t, e.a, room, "nick", "Bob", "role", "visitor"); res.Type != stanza.Result {
		t.Fatalf("revoke voice: %s", modtest.Condition(res))
	}
	say(e.b, room, "may I?")
	if got := modtest.Condition(e.b.Expect(errorFrom(stanza.Message, room))); got != mstanza.Forbidden {
		t.Fatalf("visitor message: %s", got)
	}
}

// Nick conflicts (409) and nick changes (303).
func TestNicks(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("names")
	e.create(t, e.a, room, "Alice")
	join(e.b, room, "Alice")
	if got := modtest.Condition(e.b.Expect(errorFrom(stanza.Presence, occ(room, "Alice")))); got != mstanza.Conflict {
		t.Fatalf("taken nick: %s", got)
	}
	joined(t, e.b, room, "Bob")
	e.b.Send(&stanza.Stanza{Kind: stanza.Presence, To: occ(room, "Robert")})
	for _, c := range []*servertest.Client{e.a, e.b} {
		p := c.Expect(presenceFrom(occ(room, "Bob"), "unavailable"))
		if !hasStatus(p, 303) || item(p).Attr("nick") != "Robert" {
			t.Fatal("nick change without 303 and the new nick")
		}
		c.Expect(presenceFrom(occ(room, "Robert"), ""))
	}
	// Alice cannot take Robert.
	e.a.Send(&stanza.Stanza{Kind: stanza.Presence, To: occ(room, "Robert")})
	if got := modtest.Condition(e.a.Expect(errorFrom(stanza.Presence, occ(room, "Robert")))); got != mstanza.Conflict {
		t.Fatalf("nick change to a taken nick: %s", got)
	}
	// A private message, with the muc#user element.
	pm := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: occ(room, "Robert")}
	pm.AppendChild(stanza.TextElem(xml.Name{Local: "body"}, "psst"))
	e.a.Send(pm)
	got := e.b.Expect(servertest.Body("psst"))
	if !got.From.Equal(occ(room, "Alice")) {
		t.Fatalf("private message from %s", got.From)
	}
	if _, ok := userX(got); !ok {
		t.Fatal("private message without <x xmlns='muc#user'/>")
	}
}

// Mediated invitations in a members-only room (§7.8.2) and declines.
func TestInvitation(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("party")
	e.create(t, e.a, room, "Alice")
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_membersonly": {"1"}})
	inv := &stanza.Stanza{Kind: stanza.Message, To: room}
	inv.AppendChild(stanza.Elem(xml.Name{Space: muc.NSUser, Local: "x"}, nil,
		stanza.Elem(xml.Name{Space: muc.NSUser, Local: "invite"}, []xml.Attr{stanza.Attr("to", e.bob.String())},
			stanza.TextElem(xml.Name{Space: muc.NSUser, Local: "reason"}, "come"))))
	e.a.Send(inv)
	got := e.b.Expect(func(st *stanza.Stanza) bool {
		_, ok := userX(st)
		return st.Kind == stanza.Message && st.From.Equal(room) && ok
	})
	x, _ := userX(got)
	in, ok := x.Child(xml.Name{Space: muc.NSUser, Local: "invite"})
	if !ok || in.Attr("from") != e.alice.String() {
		t.Fatal("invitation without the inviter")
	}
	// Bob is now a member and may join.
	joined(t, e.b, room, "Bob")
	// Carol declines an invitation.
	dec := &stanza.Stanza{Kind: stanza.Message, To: room}
	dec.AppendChild(stanza.Elem(xml.Name{Space: muc.NSUser, Local: "x"}, nil,
		stanza.Elem(xml.Name{Space: muc.NSUser, Local: "decline"}, []xml.Attr{stanza.Attr("to", e.alice.String())})))
	e.c.Send(dec)
	got = e.a.Expect(func(st *stanza.Stanza) bool {
		x, ok := userX(st)
		return ok && st.From.Equal(room) && x.HasChild(xml.Name{Space: muc.NSUser, Local: "decline"})
	})
	x, _ = userX(got)
	if d, _ := x.Child(xml.Name{Space: muc.NSUser, Local: "decline"}); d.Attr("from") != e.carol.String() {
		t.Fatal("decline without the decliner")
	}
	// A direct invitation (XEP-0249) is client to client: it passes.
	di := &stanza.Stanza{Kind: stanza.Message, To: e.carol}
	di.AppendChild(stanza.Elem(xml.Name{Space: muc.NSConfX, Local: "x"}, []xml.Attr{stanza.Attr("jid", room.String())}))
	e.a.Send(di)
	e.c.Expect(func(st *stanza.Stanza) bool { return st.HasChild(xml.Name{Space: muc.NSConfX, Local: "x"}) })
}

// Destruction with an alternate venue (§10.9).
func TestDestroy(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("old")
	e.create(t, e.a, room, "Alice")
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_persistentroom": {"1"}})
	joined(t, e.b, room, "Bob")
	alt := roomJID("new")
	res := modtest.Do(t, e.b, modtest.IQ("d0", stanza.Set, room, stanza.Elem(xml.Name{Space: muc.NSOwner, Local: "query"}, nil,
		stanza.Elem(xml.Name{Space: muc.NSOwner, Local: "destroy"}, nil))))
	if modtest.Condition(res) != mstanza.Forbidden {
		t.Fatalf("non-owner destroy: %s", modtest.Condition(res))
	}
	res = modtest.Do(t, e.a, modtest.IQ("d1", stanza.Set, room, stanza.Elem(xml.Name{Space: muc.NSOwner, Local: "query"}, nil,
		stanza.Elem(xml.Name{Space: muc.NSOwner, Local: "destroy"}, []xml.Attr{stanza.Attr("jid", alt.String())},
			stanza.TextElem(xml.Name{Space: muc.NSOwner, Local: "reason"}, "moved")))))
	modtest.MustResult(t, res, room)
	p := e.b.Expect(presenceFrom(occ(room, "Bob"), "unavailable"))
	x, _ := userX(p)
	d, ok := x.Child(xml.Name{Space: muc.NSUser, Local: "destroy"})
	if !ok || d.Attr("jid") != alt.String() {
		t.Fatal("no destroy with the alternate venue")
	}
	if r, _ := d.Child(xml.Name{Space: muc.NSUser, Local: "reason"}); r.Text() != "moved" {
		t.Fatalf("reason %q", r.Text())
	}
	if _, err := e.store.Room(context.Background(), room.String()); err == nil {
		t.Fatal("destroyed room still stored")
	}
}

// XEP-0410 self-ping.
func TestSelfPing(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("pings")
	e.create(t, e.a, room, "Alice")
	ping := func(c *servertest.Client, to jid.JID) *stanza.Stanza {
		return modtest.Do(t, c, modtest.IQ(e.id(), stanza.Get, to, modtest.Query(muc.NSPing, "ping")))
	}
	modtest.MustResult(t, ping(e.a, occ(room, "Alice")), occ(room, "Alice"))
	if got := modtest.Condition(ping(e.b, occ(room, "Alice"))); got != mstanza.NotAcceptable {
		t.Fatalf("ping from a non-occupant: %s", got)
	}
	// Queries to another occupant are forwarded to its client, whose
	// answer comes back from the occupant's address.
	joined(t, e.b, room, "Bob")
	e.b.Answer(func(st *stanza.Stanza) bool { return st.HasChild(xml.Name{Space: "vcard-temp", Local: "vCard"}) },
		func(iq *stanza.Stanza) *stanza.Stanza {
			r := iq.ResultReply(stanza.Elem(xml.Name{Space: "vcard-temp", Local: "vCard"}, nil, stanza.TextElem(xml.Name{Space: "vcard-temp", Local: "FN"}, "Bob B.")))
			return r
		})
	res := modtest.Do(t, e.a, modtest.IQ("vc", stanza.Get, occ(room, "Bob"), modtest.Query("vcard-temp", "vCard")))
	modtest.MustResult(t, res, occ(room, "Bob"))
	if v, ok := child(res, "vcard-temp", "vCard"); !ok || !v.HasChild(xml.Name{Local: "FN"}) {
		t.Fatal("forwarded vCard lost")
	}
}

// Two sessions of one account under one nick are one occupant.
func TestMultiSession(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("multi")
	e.create(t, e.a, room, "Alice")
	b2 := e.srv.Connect(t, jid.MustParse(e.bob.String()+"/second"), "pw")
	online(b2)
	joined(t, e.b, room, "Bob")
	e.a.Expect(presenceFrom(occ(room, "Bob"), ""))
	joined(t, b2, room, "Bob")
	// Alice sees no second occupant.
	e.b.Sync()
	e.a.SyncNone(presenceFrom(occ(room, "Bob"), ""))
	say(e.a, room, "both")
	e.b.Expect(servertest.Body("both"))
	b2.Expect(servertest.Body("both"))
	// One session leaves: Bob is still there.
	leave(b2, room, "Bob")
	b2.Expect(presenceFrom(occ(room, "Bob"), "unavailable"))
	e.b.Sync()
	e.a.SyncNone(presenceFrom(occ(room, "Bob"), "unavailable"))
	// But Carol cannot take the nick.
	join(e.c, room, "Bob")
	if got := modtest.Condition(e.c.Expect(errorFrom(stanza.Presence, occ(room, "Bob")))); got != mstanza.Conflict {
		t.Fatalf("taking a multi-session nick: %s", got)
	}
}

// Voice requests (§8.6).
func TestVoiceRequest(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("stage")
	e.create(t, e.a, room, "Alice")
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_moderatedroom": {"1"}})
	self := joined(t, e.b, room, "Bob")
	if r := item(self).Attr("role"); r != "visitor" {
		t.Fatalf("role in a moderated room: %s", r)
	}
	req := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{form.FormTypeField("http://jabber.org/protocol/muc#request"),
		{Var: "muc#role", Values: []string{"participant"}}}}
	msg := &stanza.Stanza{Kind: stanza.Message, To: room}
	msg.AppendChild(req.TokenReader())
	e.b.Send(msg)
	got := e.a.Expect(func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Message && st.From.Equal(room) && st.HasChild(xml.Name{Space: form.NS, Local: "x"})
	})
	fx, _ := got.ChildElement(xml.Name{Space: form.NS, Local: "x"})
	f, err := form.Parse(stanza.Tokens(fx.Tokens()...))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Value("muc#roomnick"); v != "Bob" {
		t.Fatalf("request for %q", v)
	}
	// Alice approves.
	f.Type = form.TypeSubmit
	f.Field("muc#request_allow").Values = []string{"true"}
	ok := &stanza.Stanza{Kind: stanza.Message, To: room}
	ok.AppendChild(f.TokenReader())
	e.a.Send(ok)
	p := e.b.Expect(presenceFrom(occ(room, "Bob"), ""))
	if r := item(p).Attr("role"); r != "participant" {
		t.Fatalf("role after approval: %s", r)
	}
	say(e.b, room, "thanks")
	e.a.Expect(servertest.Body("thanks"))
}

// XEP-0421 occupant ids are stable for one account in one room, across
// rejoins and nick changes, and differ between accounts.
func TestOccupantID(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("ids")
	e.create(t, e.a, room, "Alice")
	oid := func(st *stanza.Stanza) string {
		el, _ := child(st, muc.NSOccID, "occupant-id")
		return el.Attr("id")
	}
	first := oid(joined(t, e.b, room, "Bob"))
	leave(e.b, room, "Bob")
	e.b.Expect(presenceFrom(occ(room, "Bob"), "unavailable"))
	again := oid(joined(t, e.b, room, "Bobby"))
	if first == "" || first != again {
		t.Fatalf("occupant-id %q then %q", first, again)
	}
	if c := oid(joined(t, e.c, room, "Carol")); c == first {
		t.Fatal("two accounts share an occupant-id")
	}
}

// Deleting an account leaves no affiliation in any stored room; a room it
// alone owned goes to its admin, or is destroyed.
func TestDeleteUser(t *testing.T) {
	e := start(t, muc.Options{})
	ctx := context.Background()
	kept, gone := roomJID("kept"), roomJID("gone")
	for _, r := range []jid.JID{kept, gone} {
		e.create(t, e.b, r, "Bob")
		e.configure(t, e.b, r, map[string][]string{"muc#roomconfig_persistentroom": {"1"}})
		e.admin(t, e.b, r, "jid", e.carol.String(), "affiliation", "member")
	}
	e.admin(t, e.b, kept, "jid", e.alice.String(), "affiliation", "admin")
	joined(t, e.a, kept, "Alice")
	if err := e.srv.DeleteUser(ctx, e.bob); err != nil {
		t.Fatal(err)
	}
	// Bob's session left; Alice, the admin, is the owner now.
	e.a.Expect(presenceFrom(occ(kept, "Bob"), "unavailable"))
	if p := e.a.Expect(presenceFrom(occ(kept, "Alice"), "")); item(p).Attr("affiliation") != "owner" {
		t.Fatalf("heir's affiliation %q", item(p).Attr("affiliation"))
	}
	rooms, err := e.store.Rooms(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0] != kept.String() {
		t.Fatalf("stored rooms %v, want only %s", rooms, kept)
	}
	for _, r := range rooms {
		affs, err := e.store.Affiliations(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range affs {
			if a.JID == e.bob.String() {
				t.Fatalf("bob still in %s: %+v", r, a)
			}
		}
	}
	if a, err := e.store.Affiliation(ctx, kept.String(), e.alice.String()); err != nil || a.Affiliation != storage.AffOwner {
		t.Fatalf("alice inherited %+v, %v", a, err)
	}
	// A new bob has nothing.
	e.srv.AddUser(t, "bob", "pw2")
	b := e.srv.Connect(t, e.bob, "pw2")
	online(b)
	res := modtest.Do(t, b, modtest.IQ("f", stanza.Get, kept, modtest.Query(muc.NSOwner, "query")))
	if modtest.Condition(res) != mstanza.Forbidden {
		t.Fatalf("new bob configures: %s", modtest.Condition(res))
	}
}

// Limits: rooms per owner, and the message rate.
func TestLimits(t *testing.T) {
	e := start(t, muc.Options{MaxRoomsPerUser: 1, MessageRate: 0.001, MessageBurst: 2, MaxNickLength: 8})
	// A nick too long: no room is left behind.
	join(e.b, roomJID("long"), "Bartholomew")
	if got := modtest.Condition(e.b.Expect(errorFrom(stanza.Presence, occ(roomJID("long"), "Bartholomew")))); got != mstanza.NotAcceptable {
		t.Fatalf("long nick: %s", got)
	}
	if got := modtest.Condition(modtest.Do(t, e.b, modtest.IQ("l", stanza.Get, roomJID("long"), modtest.Query(server.NSDiscoInfo, "query")))); got != mstanza.ItemNotFound {
		t.Fatalf("room of a failed creation: %s", got)
	}
	e.create(t, e.a, roomJID("one"), "Alice")
	join(e.a, roomJID("two"), "Alice")
	if got := modtest.Condition(e.a.Expect(errorFrom(stanza.Presence, occ(roomJID("two"), "Alice")))); got != mstanza.NotAllowed {
		t.Fatalf("second room: %s", got)
	}
	for i := range 2 {
		say(e.a, roomJID("one"), "m"+strconv.Itoa(i))
		e.a.Expect(servertest.Body("m" + strconv.Itoa(i)))
	}
	say(e.a, roomJID("one"), "too much")
	if got := modtest.Condition(e.a.Expect(errorFrom(stanza.Message, roomJID("one")))); got != mstanza.PolicyViolation {
		t.Fatalf("over the rate: %s", got)
	}
	// Another account has rooms of its own.
	join(e.c, roomJID("three"), "C")
	e.c.Expect(presenceFrom(occ(roomJID("three"), "C"), ""))
}

// archive records what the service archives.
type archive struct {
	mu     sync.Mutex
	ids    []string
	bodies []string
	rooms  []string
	msgs   []muc.ArchivedMessage
}

// History serves join history from what was archived.
func (a *archive) History(_ context.Context, room jid.JID, max int, since time.Time) ([]muc.ArchivedMessage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []muc.ArchivedMessage
	for _, m := range a.msgs {
		if m.Message.From.Bare().Equal(room) && !m.At.Before(since) {
			out = append(out, m)
		}
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out, nil
}

func (a *archive) Append(_ context.Context, room jid.JID, msg *stanza.Stanza) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	body, _ := msg.ChildText(xml.Name{Local: "body"})
	id := "arch-" + strconv.Itoa(len(a.ids)+1)
	a.ids = append(a.ids, id)
	a.bodies = append(a.bodies, body)
	c := *msg
	c.Inner = slices.Clip(msg.Inner)
	a.msgs = append(a.msgs, muc.ArchivedMessage{Message: &c, At: time.Now()})
	return id, nil
}

func (a *archive) DeleteRoom(_ context.Context, room jid.JID) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rooms = append(a.rooms, room.String())
	return nil
}

// A room that enables archiving hands each message to the Archive with
// the stanza-id its occupants see, says so on join (170) and in disco.
// New rooms archive unless Options.ArchiveByDefault is false.
func TestArchiveSeam(t *testing.T) {
	arch := &archive{}
	e := startWith(t, muc.Options{ArchiveByDefault: new(false)}, arch)
	room := roomJID("logged")
	e.create(t, e.a, room, "Alice")
	if modtest.HasFeature(modtest.DiscoInfo(t, e.a, room), muc.NSMAM) {
		t.Fatal("mam before archiving is enabled")
	}
	byDefault := startWith(t, muc.Options{}, &archive{})
	byDefault.create(t, byDefault.a, room, "Alice")
	if !modtest.HasFeature(modtest.DiscoInfo(t, byDefault.a, room), muc.NSMAM) {
		t.Fatal("a new room does not archive by default")
	}
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_enablearchiving": {"1"}})
	if !modtest.HasFeature(modtest.DiscoInfo(t, e.a, room), muc.NSMAM) {
		t.Fatal("no mam feature")
	}
	if self := joined(t, e.b, room, "Bob"); !hasStatus(self, 170) {
		t.Fatal("no 170 on join")
	}
	say(e.b, room, "for the record")
	msg := e.b.Expect(servertest.Body("for the record"))
	sid, _ := child(msg, muc.NSSID, "stanza-id")
	e.b.Sync()
	arch.mu.Lock()
	if len(arch.ids) != 1 || arch.ids[0] != sid.Attr("id") || arch.bodies[0] != "for the record" {
		t.Fatalf("archived %v %v, delivered id %s", arch.ids, arch.bodies, sid.Attr("id"))
	}
	// Join history comes from the archive (HistorySource): a message it
	// holds from before, which memory never had, is sent first.
	old := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", From: occ(room, "Old")}
	old.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "before the restart"))
	arch.msgs = append([]muc.ArchivedMessage{{Message: old, At: time.Now().Add(-time.Hour)}}, arch.msgs...)
	arch.mu.Unlock()
	join(e.c, room, "Carol")
	h := e.c.Expect(servertest.Body("before the restart"))
	if _, ok := child(h, muc.NSDelay, "delay"); !ok {
		t.Fatal("archived history without delay")
	}
	e.c.Expect(servertest.Body("for the record"))
	e.c.Expect(subject(room))
}

// The room's vCard: owners set the avatar, anyone reads it, and disco
// shows its hash.
func TestRoomAvatar(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("pretty")
	e.create(t, e.a, room, "Alice")
	vc := func(bin string) xml.TokenReader {
		return stanza.Elem(xml.Name{Space: muc.NSVCard, Local: "vCard"}, nil,
			stanza.Elem(xml.Name{Space: muc.NSVCard, Local: "PHOTO"}, nil,
				stanza.TextElem(xml.Name{Space: muc.NSVCard, Local: "TYPE"}, "image/png"),
				stanza.TextElem(xml.Name{Space: muc.NSVCard, Local: "BINVAL"}, bin)))
	}
	if res := modtest.Do(t, e.b, modtest.IQ("v0", stanza.Set, room, vc("aGVsbG8="))); modtest.Condition(res) != mstanza.Forbidden {
		t.Fatalf("stranger sets the avatar: %s", modtest.Condition(res))
	}
	modtest.MustResult(t, modtest.Do(t, e.a, modtest.IQ("v1", stanza.Set, room, vc("aGVsbG8="))), room)
	res := modtest.Do(t, e.b, modtest.IQ("v2", stanza.Get, room, modtest.Query(muc.NSVCard, "vCard")))
	v, ok := child(res, muc.NSVCard, "vCard")
	if !ok || !v.HasChild(xml.Name{Space: muc.NSVCard, Local: "PHOTO"}) {
		t.Fatal("avatar not returned")
	}
	info := modtest.DiscoInfo(t, e.b, room)
	fx, _ := child(info, server.NSDiscoInfo, "query")
	x, _ := fx.Child(xml.Name{Space: form.NS, Local: "x"})
	f, err := form.Parse(stanza.Tokens(x.Tokens()...))
	if err != nil {
		t.Fatal(err)
	}
	// sha1("hello")
	if h, _ := f.Value("muc#roominfo_avatarhash"); h != "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d" {
		t.Fatalf("avatarhash %q", h)
	}
	if f.FormType() != "http://jabber.org/protocol/muc#roominfo" {
		t.Fatalf("roominfo form type %q", f.FormType())
	}
}

// A session that ends leaves its rooms.
func TestSessionEnd(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("bye")
	e.create(t, e.a, room, "Alice")
	joined(t, e.b, room, "Bob")
	e.b.Session.Close()
	p := e.a.Expect(presenceFrom(occ(room, "Bob"), "unavailable"))
	if item(p).Attr("role") != "none" {
		t.Fatal("leaving occupant keeps a role")
	}
}

// A persistent room outlives the module: another module on the same store
// lists it; ExportUser writes the account's affiliations.
func TestPersistenceAndExport(t *testing.T) {
	e := start(t, muc.Options{})
	ctx := context.Background()
	room := roomJID("kept")
	e.create(t, e.a, room, "Alice")
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_persistentroom": {"1"}, "muc#roomconfig_roomname": {"Kept"}})
	e.admin(t, e.a, room, "jid", e.bob.String(), "affiliation", "member")
	hidden := roomJID("hidden")
	e.create(t, e.a, hidden, "Alice")
	e.configure(t, e.a, hidden, map[string][]string{"muc#roomconfig_persistentroom": {"1"}, "muc#roomconfig_publicroom": {"0"}})

	m2 := modtest.Must(muc.New(muc.Options{}, muc.Deps{Store: e.store}))
	items, err := m2.PublicRooms(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || !items[0].JID.Equal(room) || items[0].Name != "Kept" {
		t.Fatalf("public rooms %+v", items)
	}

	var b strings.Builder
	enc := xml.NewEncoder(&b)
	if err := e.mod.ExportUser(ctx, e.bob, enc); err != nil {
		t.Fatal(err)
	}
	enc.Flush()
	if !strings.Contains(b.String(), muc.NSExport) || !strings.Contains(b.String(), `jid="kept@conference.localhost"`) || !strings.Contains(b.String(), `affiliation="member"`) {
		t.Fatalf("export %s", b.String())
	}
}

// Registering a nick (§7.10) makes the user a member and keeps the nick
// from others; the registered nick is discoverable.
func TestRegisterNick(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("reg")
	e.create(t, e.a, room, "Alice")
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_persistentroom": {"1"}})
	res := modtest.Do(t, e.b, modtest.IQ("r0", stanza.Get, room, modtest.Query(muc.NSRegister, "query")))
	q, _ := child(res, muc.NSRegister, "query")
	if !q.HasChild(xml.Name{Space: form.NS, Local: "x"}) {
		t.Fatal("no registration form")
	}
	f := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{form.FormTypeField("http://jabber.org/protocol/muc#register"),
		{Var: "muc#register_roomnick", Values: []string{"Bobby"}}}}
	res = modtest.Do(t, e.b, modtest.IQ("r1", stanza.Set, room, stanza.Elem(xml.Name{Space: muc.NSRegister, Local: "query"}, nil, f.TokenReader())))
	modtest.MustResult(t, res, room)
	a, err := e.store.Affiliation(context.Background(), room.String(), e.bob.String())
	if err != nil || a.Nick != "Bobby" || a.Affiliation != storage.AffMember {
		t.Fatalf("stored %+v, %v", a, err)
	}
	join(e.c, room, "Bobby")
	if got := modtest.Condition(e.c.Expect(errorFrom(stanza.Presence, occ(room, "Bobby")))); got != mstanza.Conflict {
		t.Fatalf("someone else's registered nick: %s", got)
	}
	res = modtest.Do(t, e.b, modtest.IQ("r2", stanza.Get, room, stanza.Elem(xml.Name{Space: server.NSDiscoInfo, Local: "query"}, []xml.Attr{stanza.Attr("node", "x-roomuser-item")})))
	q, _ = child(res, server.NSDiscoInfo, "query")
	if id, ok := q.Child(xml.Name{Space: server.NSDiscoInfo, Local: "identity"}); !ok || id.Attr("name") != "Bobby" {
		t.Fatal("registered nick not discoverable")
	}
	joined(t, e.b, room, "Bobby")
}

// Room policies: the subject, private messages, a full room, configuration
// notices, and a room becoming members-only.
func TestPolicies(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("rules")
	e.create(t, e.a, room, "Alice")
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_maxusers": {"2"}, "muc#roomconfig_allowpm": {"none"}})
	joined(t, e.b, room, "Bob")
	join(e.c, room, "Carol")
	if got := modtest.Condition(e.c.Expect(errorFrom(stanza.Presence, occ(room, "Carol")))); got != mstanza.ServiceUnavailable {
		t.Fatalf("full room: %s", got)
	}
	subj := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", To: room}
	subj.AppendChild(stanza.TextElem(xml.Name{Local: "subject"}, "mine"))
	e.b.Send(subj)
	if got := modtest.Condition(e.b.Expect(errorFrom(stanza.Message, room))); got != mstanza.Forbidden {
		t.Fatalf("participant subject: %s", got)
	}
	pm := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: occ(room, "Alice")}
	pm.AppendChild(stanza.TextElem(xml.Name{Local: "body"}, "hi"))
	e.b.Send(pm)
	if got := modtest.Condition(e.b.Expect(errorFrom(stanza.Message, occ(room, "Alice")))); got != mstanza.NotAllowed {
		t.Fatalf("private message when disabled: %s", got)
	}
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_whois": {"anyone"}})
	n := e.b.Expect(func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Message && st.From.Equal(room) && hasStatus(st, 104)
	})
	if !hasStatus(n, 172) {
		t.Fatal("no 172 when the room becomes non-anonymous")
	}
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_membersonly": {"1"}})
	if p := e.b.Expect(presenceFrom(occ(room, "Bob"), "unavailable")); !hasStatus(p, 322) {
		t.Fatal("no 322 when the room becomes members-only")
	}
	if err := e.submit(t, e.a, room, map[string][]string{"muc#roomconfig_whois": {"everybody"}}); err == nil {
		t.Fatal("bad whois accepted")
	}
}

// Only service admins create rooms with CreateAdmins; when the only owner's
// account goes with DestroyOrphans, the room goes too.
func TestAdminsAndOrphans(t *testing.T) {
	e := start(t, muc.Options{Creation: muc.CreateAdmins, Admins: []jid.JID{jid.MustParse("alice@localhost")}, Orphans: muc.DestroyOrphans})
	join(e.b, roomJID("b"), "Bob")
	if got := modtest.Condition(e.b.Expect(errorFrom(stanza.Presence, occ(roomJID("b"), "Bob")))); got != mstanza.NotAllowed {
		t.Fatalf("creation by a non-admin: %s", got)
	}
	room := roomJID("a")
	e.create(t, e.a, room, "Alice")
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_persistentroom": {"1"}, "muc#roomconfig_roomowners": {e.carol.String()}})
	e.admin(t, e.a, room, "jid", e.bob.String(), "affiliation", "admin")
	joined(t, e.b, room, "Bob")
	if err := e.srv.DeleteUser(context.Background(), e.carol); err != nil {
		t.Fatal(err)
	}
	p := e.b.Expect(presenceFrom(occ(room, "Bob"), "unavailable"))
	if x, _ := userX(p); !x.HasChild(xml.Name{Space: muc.NSUser, Local: "destroy"}) {
		t.Fatal("orphaned room not destroyed")
	}
	if rooms, _ := e.store.Rooms(context.Background(), ""); len(rooms) != 0 {
		t.Fatalf("rooms left: %v", rooms)
	}
}

// A join from a session that is already in the room gets the whole join
// again (occupants, self-presence, subject); others see no new occupant.
func TestRejoin(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("again")
	e.create(t, e.a, room, "Alice")
	joined(t, e.b, room, "Bob")
	e.a.Expect(presenceFrom(occ(room, "Bob"), ""))
	join(e.b, room, "Bob")
	e.b.Expect(presenceFrom(occ(room, "Alice"), ""))
	if p := e.b.Expect(presenceFrom(occ(room, "Bob"), "")); !hasStatus(p, 110) {
		t.Fatal("no self-presence on rejoin")
	}
	e.b.Expect(subject(room))
	// Alice gets Bob's presence as an update, without 201 or 110.
	if p := e.a.Expect(presenceFrom(occ(room, "Bob"), "")); hasStatus(p, 110) || hasStatus(p, 201) {
		t.Fatal("self codes to another occupant")
	}
}

// The service's disco#items lists its public rooms, with their names,
// and not its hidden ones (XEP-0045 §6.3).
func TestServiceItems(t *testing.T) {
	e := start(t, muc.Options{})
	room, hidden := roomJID("listed"), roomJID("unlisted")
	e.create(t, e.a, room, "Alice")
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_roomname": {"Listed"}})
	e.create(t, e.a, hidden, "Alice")
	e.configure(t, e.a, hidden, map[string][]string{"muc#roomconfig_publicroom": {"0"}})
	id := e.id()
	e.b.SendRaw(`<iq type='get' id='` + id + `' to='` + service.String() + `'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	var b strings.Builder
	e.b.Expect(servertest.ByID(id)).WriteTo(&b)
	if got := b.String(); !strings.Contains(got, `jid="listed@conference.localhost" name="Listed"`) || strings.Contains(got, "unlisted") {
		t.Errorf("disco#items of the service: %s", got)
	}
}

package muc_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/modules/muc"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/bbolt/bbolttest"
	"github.com/kiez-im/kiez/storage/memory"
)

// startArchived is start with a mam.RoomArchive on archive, and the
// rooms, accounts and secrets in store; a restart passes the same stores.
func startArchived(t *testing.T, opts muc.Options, store *memory.Store, archive storage.Archive, addUsers bool) *env {
	t.Helper()
	ra, err := mam.NewRoomArchive(archive, mam.RoomOptions{MaxPage: 10})
	if err != nil {
		t.Fatal(err)
	}
	m := modtest.Must(muc.New(opts, muc.Deps{Store: store, Secrets: store, KV: store, Archive: ra}))
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{m}})
	e := &env{srv: srv, store: store, mod: m}
	e.alice, e.bob, e.carol = jid.MustParse("alice@localhost"), jid.MustParse("bob@localhost"), jid.MustParse("carol@localhost")
	if addUsers {
		e.alice = srv.AddUser(t, "alice", "pw")
		e.bob = srv.AddUser(t, "bob", "pw")
		e.carol = srv.AddUser(t, "carol", "pw")
	}
	e.a = srv.Connect(t, e.alice, "pw")
	e.b = srv.Connect(t, e.bob, "pw")
	e.c = srv.Connect(t, e.carol, "pw")
	for _, c := range []*servertest.Client{e.a, e.b, e.c} {
		online(c)
	}
	return e
}

// archivedRoom creates a persistent room owned by alice that archives,
// with bob in it.
func (e *env) archivedRoom(t *testing.T, name string) jid.JID {
	t.Helper()
	room := roomJID(name)
	e.create(t, e.a, room, "Alice")
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_enablearchiving": {"1"}, "muc#roomconfig_persistentroom": {"1"}})
	if self := joined(t, e.b, room, "Bob"); !hasStatus(self, 170) {
		t.Fatal("no status 170 on joining a room that archives")
	}
	return room
}

// sayAll sends bodies from c and returns the stanza-ids that observer got
// them with.
func sayAll(t *testing.T, c, observer *servertest.Client, room jid.JID, bodies ...string) []string {
	t.Helper()
	var ids []string
	for _, b := range bodies {
		say(c, room, b)
		msg := observer.Expect(servertest.Body(b))
		sid, ok := child(msg, muc.NSSID, "stanza-id")
		if !ok || sid.Attr("by") != room.String() {
			t.Fatalf("message %q without the room's stanza-id", b)
		}
		ids = append(ids, sid.Attr("id"))
	}
	return ids
}

// mamResult is one message of a query's results.
type mamResult struct {
	id, body string
	msg      stanza.Element // the forwarded message
}

// query sends a MAM query to room with form fields and RSM set children
// (name, value pairs; a value of "-" for an empty element) and returns the
// results and the iq's answer.
func (e *env) query(t *testing.T, c *servertest.Client, room jid.JID, fields map[string][]string, set ...string) ([]mamResult, *stanza.Stanza) {
	t.Helper()
	qid := e.id()
	var ch []xml.TokenReader
	if len(fields) > 0 {
		f := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{form.FormTypeField(muc.NSMAM)}}
		for k, v := range fields {
			f.Fields = append(f.Fields, form.Field{Var: k, Values: v})
		}
		ch = append(ch, f.TokenReader())
	}
	if len(set) > 0 {
		var sc []xml.TokenReader
		for i := 0; i+1 < len(set); i += 2 {
			name := xml.Name{Space: "http://jabber.org/protocol/rsm", Local: set[i]}
			if set[i+1] == "-" {
				sc = append(sc, stanza.Elem(name, nil))
			} else {
				sc = append(sc, stanza.TextElem(name, set[i+1]))
			}
		}
		ch = append(ch, stanza.Elem(xml.Name{Space: "http://jabber.org/protocol/rsm", Local: "set"}, nil, sc...))
	}
	iq := modtest.IQ(e.id(), stanza.Set, room, stanza.Elem(xml.Name{Space: muc.NSMAM, Local: "query"}, []xml.Attr{stanza.Attr("queryid", qid)}, ch...))
	c.Send(iq)
	var res []mamResult
	answer := c.Expect(func(st *stanza.Stanza) bool {
		if st.Kind == stanza.Message {
			r, ok := child(st, muc.NSMAM, "result")
			if !ok || r.Attr("queryid") != qid {
				return false
			}
			if !st.From.Equal(room) {
				t.Errorf("result from %s, want the room", st.From)
			}
			fwd, _ := r.Child(xml.Name{Space: "urn:xmpp:forward:0", Local: "forwarded"})
			msg, _ := fwd.Child(xml.Name{Space: stanza.NSClient, Local: "message"})
			body, _ := msg.Child(xml.Name{Space: stanza.NSClient, Local: "body"})
			res = append(res, mamResult{id: r.Attr("id"), body: body.Text(), msg: msg})
			return false
		}
		return st.ID == iq.ID
	})
	return res, answer
}

func bodies(rs []mamResult) string {
	var b []string
	for _, r := range rs {
		b = append(b, r.body)
	}
	return strings.Join(b, ",")
}

// fin returns the <fin/> of a query's answer.
func fin(t *testing.T, answer *stanza.Stanza) stanza.Element {
	t.Helper()
	if answer.Type != stanza.Result {
		t.Fatalf("query answered %s", modtest.Condition(answer))
	}
	f, ok := child(answer, muc.NSMAM, "fin")
	if !ok {
		t.Fatal("no <fin/>")
	}
	return f
}

func serialise(t *testing.T, el stanza.Element) string {
	t.Helper()
	var b bytes.Buffer
	if err := stanza.WriteTokens(&b, el.Tokens(), ""); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// MAM on a room: paging with RSM and the extended fields, results from the
// room with the occupant-id and no real JID, metadata, and who may read.
func TestRoomArchiveQuery(t *testing.T) {
	e := startArchived(t, muc.Options{}, memory.New(), memory.New(), true)
	room := e.archivedRoom(t, "logged")
	info := modtest.DiscoInfo(t, e.c, room)
	for _, f := range []string{muc.NSMAM, muc.NSMAMExtended, muc.NSRetract, muc.NSModerate, muc.NSModerate0} {
		if !modtest.HasFeature(info, f) {
			t.Errorf("room disco#info without %s", f)
		}
	}
	ids := sayAll(t, e.a, e.b, room, "m1", "m2", "m3", "m4", "m5")

	rs, answer := e.query(t, e.b, room, nil, "max", "2")
	if bodies(rs) != "m1,m2" || rs[0].id != ids[0] || rs[1].id != ids[1] {
		t.Fatalf("first page %q %v, want m1,m2 with the stanza-ids %v", bodies(rs), rs, ids[:2])
	}
	f := fin(t, answer)
	if f.Attr("complete") == "true" {
		t.Fatal("first page complete")
	}
	set, _ := f.Child(xml.Name{Space: "http://jabber.org/protocol/rsm", Local: "set"})
	if cnt, _ := set.Child(xml.Name{Space: "http://jabber.org/protocol/rsm", Local: "count"}); cnt.Text() != "5" {
		t.Fatalf("count %q, want 5", cnt.Text())
	}
	msg := rs[0].msg
	if msg.Attr("from") != occ(room, "Alice").String() || msg.Attr("type") != "groupchat" {
		t.Fatalf("forwarded message from %q type %q", msg.Attr("from"), msg.Attr("type"))
	}
	if o, ok := msg.Child(xml.Name{Space: muc.NSOccID, Local: "occupant-id"}); !ok || o.Attr("id") == "" {
		t.Fatal("archived message without occupant-id")
	}
	if s := serialise(t, msg); strings.Contains(s, e.alice.String()) || strings.Contains(s, e.bob.String()) {
		t.Fatalf("archived message shows a real JID: %s", s)
	}

	rs, answer = e.query(t, e.b, room, nil, "max", "2", "after", ids[1])
	if bodies(rs) != "m3,m4" || fin(t, answer).Attr("complete") == "true" {
		t.Fatalf("second page %q", bodies(rs))
	}
	rs, answer = e.query(t, e.b, room, nil, "max", "2", "after", ids[3])
	if bodies(rs) != "m5" || fin(t, answer).Attr("complete") != "true" {
		t.Fatalf("last page %q complete=%q", bodies(rs), fin(t, answer).Attr("complete"))
	}
	rs, _ = e.query(t, e.b, room, nil, "max", "2", "before", "-")
	if bodies(rs) != "m4,m5" {
		t.Fatalf("last page backwards %q", bodies(rs))
	}
	rs, _ = e.query(t, e.b, room, nil, "max", "2", "before", ids[3])
	if bodies(rs) != "m2,m3" {
		t.Fatalf("page before m4 %q", bodies(rs))
	}
	rs, _ = e.query(t, e.b, room, map[string][]string{"after-id": {ids[1]}, "before-id": {ids[4]}})
	if bodies(rs) != "m3,m4" {
		t.Fatalf("after-id m2, before-id m5: %q", bodies(rs))
	}
	rs, _ = e.query(t, e.b, room, map[string][]string{"ids": {ids[4], ids[0]}})
	if bodies(rs) != "m1,m5" {
		t.Fatalf("ids m5, m1: %q", bodies(rs))
	}
	rs, _ = e.query(t, e.b, room, map[string][]string{"with": {occ(room, "Bob").String()}})
	if len(rs) != 0 {
		t.Fatalf("with Bob: %q", bodies(rs))
	}
	if _, answer = e.query(t, e.b, room, map[string][]string{"after-id": {"12345"}}); modtest.Condition(answer) != mstanza.ItemNotFound {
		t.Fatalf("unknown after-id: %q", modtest.Condition(answer))
	}

	md := modtest.Do(t, e.b, modtest.IQ(e.id(), stanza.Get, room, modtest.Query(muc.NSMAM, "metadata")))
	meta, _ := child(md, muc.NSMAM, "metadata")
	start, _ := meta.Child(xml.Name{Space: muc.NSMAM, Local: "start"})
	end, _ := meta.Child(xml.Name{Space: muc.NSMAM, Local: "end"})
	if start.Attr("id") != ids[0] || end.Attr("id") != ids[4] {
		t.Fatalf("metadata %s..%s, want %s..%s", start.Attr("id"), end.Attr("id"), ids[0], ids[4])
	}
	formRes := modtest.Do(t, e.b, modtest.IQ(e.id(), stanza.Get, room, modtest.Query(muc.NSMAM, "query")))
	if formRes.Type != stanza.Result {
		t.Fatalf("query form: %s", modtest.Condition(formRes))
	}

	// A non-occupant reads the archive of an open room (as Prosody), but
	// not once it is members-only; members do, outcasts never.
	if rs, answer = e.query(t, e.c, room, nil); answer.Type != stanza.Result || len(rs) != 5 {
		t.Fatalf("a non-occupant of an open room: %s, %d results", modtest.Condition(answer), len(rs))
	}
	e.admin(t, e.a, room, "jid", e.carol.String(), "affiliation", "outcast")
	if rs, answer = e.query(t, e.c, room, nil); modtest.Condition(answer) != mstanza.Forbidden || len(rs) != 0 {
		t.Fatalf("an outcast: %q, %d results", modtest.Condition(answer), len(rs))
	}
	e.admin(t, e.a, room, "jid", e.carol.String(), "affiliation", "none")
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_membersonly": {"1"}})
	if rs, answer = e.query(t, e.c, room, nil); modtest.Condition(answer) != mstanza.Forbidden || len(rs) != 0 {
		t.Fatalf("a non-member of a members-only room: %q, %d results", modtest.Condition(answer), len(rs))
	}
	e.admin(t, e.a, room, "jid", e.carol.String(), "affiliation", "member")
	if rs, answer = e.query(t, e.c, room, nil); answer.Type != stanza.Result || len(rs) != 5 {
		t.Fatalf("a member: %s, %d results", modtest.Condition(answer), len(rs))
	}
}

// Join history of a room that archives comes from the archive, so it
// survives a restart of the service on the same stores.
func TestRoomHistoryAfterRestart(t *testing.T) {
	store, archive := memory.New(), memory.New()
	e := startArchived(t, muc.Options{}, store, archive, true)
	room := e.archivedRoom(t, "kept")
	ids := sayAll(t, e.a, e.b, room, "before", "the restart")

	e2 := startArchived(t, muc.Options{}, store, archive, false)
	join(e2.c, room, "Carol")
	for i, b := range []string{"before", "the restart"} {
		h := e2.c.Expect(servertest.Body(b))
		if _, ok := child(h, muc.NSDelay, "delay"); !ok {
			t.Fatalf("history %q without delay", b)
		}
		if sid, _ := child(h, muc.NSSID, "stanza-id"); sid.Attr("id") != ids[i] {
			t.Fatalf("history %q with stanza-id %q, want %q", b, sid.Attr("id"), ids[i])
		}
	}
	e2.c.Expect(subject(room))
}

// With the bbolt store: history survives a restart, and a retracted
// message's body is gone from the database and its log.
func TestRoomArchiveBBolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiez.db")
	archive, err := bbolt.Open(path, bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			archive.Close()
		}
	})
	store := memory.New()
	e := startArchived(t, muc.Options{}, store, archive, true)
	room := e.archivedRoom(t, "durable")
	ids := sayAll(t, e.a, e.b, room, "kept-body-1", "secret-body-2")
	retract(e.a, room, ids[1])
	e.b.Expect(servertest.Body("retracted a message"))

	e2 := startArchived(t, muc.Options{}, store, archive, false)
	join(e2.c, room, "Carol")
	h := e2.c.Expect(servertest.Body("kept-body-1"))
	if sid, _ := child(h, muc.NSSID, "stanza-id"); sid.Attr("id") != ids[0] {
		t.Fatalf("history with stanza-id %q, want %q", sid.Attr("id"), ids[0])
	}
	e2.c.ExpectNoneUntil(servertest.Body("secret-body-2"), servertest.Body("retracted a message"))
	e2.c.Expect(subject(room))

	if err := archive.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	all := bbolttest.Everything(t, path)
	if !bbolttest.Contains(all, "kept-body-1") {
		t.Fatal("the kept message is not in the database: the check proves nothing")
	}
	if bbolttest.Contains(all, "secret-body-2") {
		t.Fatal("the retracted body is still in the database or its log")
	}
}

// Each room's retention, bounded by the server's, is applied by the
// janitor.
func TestRoomRetention(t *testing.T) {
	archive := memory.New()
	e := startArchived(t, muc.Options{ArchiveRetention: 10 * 24 * time.Hour}, memory.New(), archive, true)
	ctx := context.Background()
	short, long := e.archivedRoom(t, "short"), e.archivedRoom(t, "long")
	field := func(room jid.JID) string {
		res := modtest.Do(t, e.a, modtest.IQ(e.id(), stanza.Get, room, modtest.Query(muc.NSOwner, "query")))
		q, _ := child(res, muc.NSOwner, "query")
		x, _ := q.Child(xml.Name{Space: form.NS, Local: "x"})
		f, err := form.Parse(stanza.Tokens(x.Tokens()...))
		if err != nil {
			t.Fatal(err)
		}
		v, _ := f.Value("{urn:kiez:muc}archive_retention")
		return v
	}
	if v := field(long); v != "10" {
		t.Fatalf("default retention %q days, want the bound 10", v)
	}
	e.configure(t, e.a, long, map[string][]string{"{urn:kiez:muc}archive_retention": {"365"}})
	if v := field(long); v != "10" {
		t.Fatalf("retention %q days after asking for 365, want the bound 10", v)
	}
	e.configure(t, e.a, short, map[string][]string{"{urn:kiez:muc}archive_retention": {"1"}})
	if v := field(short); v != "1" {
		t.Fatalf("retention %q days, want 1", v)
	}
	sayAll(t, e.a, e.b, short, "s1", "s2")
	sayAll(t, e.a, e.b, long, "l1", "l2")
	count := func(room jid.JID) int {
		st, err := archive.ArchiveStats(ctx, room.String())
		if err != nil {
			t.Fatal(err)
		}
		return st.Count
	}
	now := time.Now()
	e.srv.RunJanitor(ctx, now.Add(12*time.Hour))
	if count(short) != 2 || count(long) != 2 {
		t.Fatalf("after 12 hours: %d and %d messages, want 2 and 2", count(short), count(long))
	}
	e.srv.RunJanitor(ctx, now.Add(2*24*time.Hour))
	if count(short) != 0 || count(long) != 2 {
		t.Fatalf("after 2 days: %d and %d messages, want 0 and 2", count(short), count(long))
	}
	e.srv.RunJanitor(ctx, now.Add(11*24*time.Hour))
	if count(long) != 0 {
		t.Fatalf("after 11 days: %d messages past the server's bound", count(long))
	}
}

// retract sends a XEP-0424 retraction of id from c.
func retract(c *servertest.Client, room jid.JID, id string) {
	m := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", To: room, ID: "r-" + id}
	m.AppendChild(stanza.Elem(xml.Name{Space: muc.NSRetract, Local: "retract"}, []xml.Attr{stanza.Attr("id", id)}))
	m.AppendChild(stanza.Elem(xml.Name{Space: "urn:xmpp:fallback:0", Local: "fallback"}, []xml.Attr{stanza.Attr("for", muc.NSRetract)}))
	m.AppendChild(stanza.TextElem(xml.Name{Local: "body"}, "retracted a message"))
	c.Send(m)
}

// archived returns the archived message id of room, as a query returns it.
func (e *env) archived(t *testing.T, room jid.JID, id string) stanza.Element {
	t.Helper()
	rs, answer := e.query(t, e.a, room, map[string][]string{"ids": {id}})
	fin(t, answer)
	if len(rs) != 1 {
		t.Fatalf("%d archived messages with id %s", len(rs), id)
	}
	return rs[0].msg
}

// An author retracts its own message (XEP-0424); nobody else may. The
// archive keeps a tombstone.
func TestRetraction(t *testing.T) {
	e := startArchived(t, muc.Options{}, memory.New(), memory.New(), true)
	room := e.archivedRoom(t, "oops")
	joined(t, e.c, room, "Carol")
	ids := sayAll(t, e.a, e.b, room, "oops, wrong room")

	retract(e.b, room, ids[0])
	if st := e.b.Expect(errorFrom(stanza.Message, room)); modtest.Condition(st) != mstanza.Forbidden {
		t.Fatalf("retraction by another: %q, want forbidden", modtest.Condition(st))
	}
	retract(e.a, room, "no-such-id")
	if st := e.a.Expect(errorFrom(stanza.Message, room)); modtest.Condition(st) != mstanza.ItemNotFound {
		t.Fatalf("retraction of nothing: %q, want item-not-found", modtest.Condition(st))
	}
	if body, _ := e.archived(t, room, ids[0]).Child(xml.Name{Space: stanza.NSClient, Local: "body"}); body.Text() != "oops, wrong room" {
		t.Fatal("a refused retraction changed the archive")
	}

	retract(e.a, room, ids[0])
	got := e.c.Expect(servertest.Body("retracted a message"))
	r, ok := child(got, muc.NSRetract, "retract")
	if !ok || r.Attr("id") != ids[0] || !got.From.Equal(occ(room, "Alice")) {
		t.Fatalf("retraction forwarded without <retract id=%s/> from Alice", ids[0])
	}
	if _, ok := child(got, muc.NSSID, "stanza-id"); !ok {
		t.Fatal("retraction without a stanza-id")
	}
	tomb := e.archived(t, room, ids[0])
	if _, ok := tomb.Child(xml.Name{Space: stanza.NSClient, Local: "body"}); ok {
		t.Fatalf("archived retracted message keeps its body: %s", serialise(t, tomb))
	}
	if _, ok := tomb.Child(xml.Name{Space: muc.NSRetract, Local: "retracted"}); !ok {
		t.Fatalf("no tombstone: %s", serialise(t, tomb))
	}
	if _, ok := tomb.Child(xml.Name{Space: muc.NSOccID, Local: "occupant-id"}); !ok {
		t.Fatal("tombstone without the author's occupant-id")
	}
	// A rejoin's history has the tombstone, not the body.
	join(e.b, room, "Bob")
	e.b.ExpectNoneUntil(servertest.Body("oops, wrong room"), subject(room))
}

// moderate sends a XEP-0425 moderation request of id from c (v1, or the
// v0 form wrapped in apply-to).
func (e *env) moderate(t *testing.T, c *servertest.Client, room jid.JID, id, reason string, v0 bool) *stanza.Stanza {
	t.Helper()
	var p xml.TokenReader
	if v0 {
		p = stanza.Elem(xml.Name{Space: muc.NSFasten, Local: "apply-to"}, []xml.Attr{stanza.Attr("id", id)},
			stanza.Elem(xml.Name{Space: muc.NSModerate0, Local: "moderate"}, nil,
				stanza.Elem(xml.Name{Space: muc.NSRetract0, Local: "retract"}, nil),
				stanza.TextElem(xml.Name{Space: muc.NSModerate0, Local: "reason"}, reason)))
	} else {
		p = stanza.Elem(xml.Name{Space: muc.NSModerate, Local: "moderate"}, []xml.Attr{stanza.Attr("id", id)},
			stanza.Elem(xml.Name{Space: muc.NSRetract, Local: "retract"}, nil),
			stanza.TextElem(xml.Name{Space: muc.NSModerate, Local: "reason"}, reason))
	}
	return modtest.Do(t, c, modtest.IQ(e.id(), stanza.Set, room, p))
}

// A moderator retracts another occupant's message (XEP-0425): everyone is
// told in the v1 and v0 forms, the archive keeps a tombstone; a
// participant may not.
func TestModeration(t *testing.T) {
	e := startArchived(t, muc.Options{}, memory.New(), memory.New(), true)
	room := e.archivedRoom(t, "moderated")
	joined(t, e.c, room, "Carol")
	ids := sayAll(t, e.c, e.b, room, "spam", "more spam")

	if res := e.moderate(t, e.b, room, ids[0], "no", false); modtest.Condition(res) != mstanza.Forbidden {
		t.Fatalf("moderation by a participant: %q, want forbidden", modtest.Condition(res))
	}
	if res := e.moderate(t, e.a, room, "no-such-id", "", false); modtest.Condition(res) != mstanza.ItemNotFound {
		t.Fatalf("moderation of nothing: %q, want item-not-found", modtest.Condition(res))
	}
	if res := e.moderate(t, e.a, room, ids[0], "Spam", false); res.Type != stanza.Result {
		t.Fatalf("moderation by the owner: %q", modtest.Condition(res))
	}
	got := e.b.Expect(func(st *stanza.Stanza) bool {
		_, ok := child(st, muc.NSRetract, "retract")
		return st.Kind == stanza.Message && ok
	})
	if !got.From.Equal(room) || got.Type != "groupchat" {
		t.Fatalf("moderation from %s type %q, want the room, groupchat", got.From, got.Type)
	}
	r, _ := child(got, muc.NSRetract, "retract")
	mod, ok := r.Child(xml.Name{Space: muc.NSModerate, Local: "moderated"})
	reason, _ := r.Child(xml.Name{Space: muc.NSRetract, Local: "reason"})
	if r.Attr("id") != ids[0] || !ok || mod.Attr("by") != occ(room, "Alice").String() || reason.Text() != "Spam" {
		t.Fatalf("moderation broadcast: %s", serialise(t, r))
	}
	if o, ok := mod.Child(xml.Name{Space: muc.NSOccID, Local: "occupant-id"}); !ok || o.Attr("id") == "" {
		t.Fatal("moderated without the moderator's occupant-id")
	}
	if at, ok := child(got, muc.NSFasten, "apply-to"); !ok || at.Attr("id") != ids[0] || !at.HasChild(xml.Name{Space: muc.NSModerate0, Local: "moderated"}) {
		t.Fatal("no v0 <apply-to><moderated/> for older clients")
	}
	tomb := e.archived(t, room, ids[0])
	ret, ok := tomb.Child(xml.Name{Space: muc.NSRetract, Local: "retracted"})
	if _, body := tomb.Child(xml.Name{Space: stanza.NSClient, Local: "body"}); !ok || body || !ret.HasChild(xml.Name{Space: muc.NSModerate, Local: "moderated"}) {
		t.Fatalf("archived moderated message: %s", serialise(t, tomb))
	}
	// The older request form works too.
	if res := e.moderate(t, e.a, room, ids[1], "", true); res.Type != stanza.Result {
		t.Fatalf("v0 moderation: %q", modtest.Condition(res))
	}
	if _, body := e.archived(t, room, ids[1]).Child(xml.Name{Space: stanza.NSClient, Local: "body"}); body {
		t.Fatal("v0 moderation left the body in the archive")
	}
}

// Destroying a room deletes its archive.
func TestRoomArchiveDestroyed(t *testing.T) {
	archive := memory.New()
	e := startArchived(t, muc.Options{}, memory.New(), archive, true)
	room := e.archivedRoom(t, "doomed")
	sayAll(t, e.a, e.b, room, "last words")
	ctx := context.Background()
	if st, _ := archive.ArchiveStats(ctx, room.String()); st.Count != 1 {
		t.Fatalf("%d archived before destruction", st.Count)
	}
	res := modtest.Do(t, e.a, modtest.IQ(e.id(), stanza.Set, room, stanza.Elem(xml.Name{Space: muc.NSOwner, Local: "query"}, nil,
		stanza.Elem(xml.Name{Space: muc.NSOwner, Local: "destroy"}, nil))))
	if res.Type != stanza.Result {
		t.Fatalf("destroy: %s", modtest.Condition(res))
	}
	if st, err := archive.ArchiveStats(ctx, room.String()); err != nil || st.Count != 0 {
		t.Fatalf("%d archived after destruction (%v)", st.Count, err)
	}
	page, err := archive.QueryArchive(ctx, room.String(), storage.ArchiveQuery{Max: 10})
	if err != nil || len(page.Messages) != 0 {
		t.Fatalf("archive after destruction: %d messages, %v", len(page.Messages), err)
	}
}

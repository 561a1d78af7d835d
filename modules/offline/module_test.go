package offline_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/blocking"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/offline"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/memory"
)

var (
	alice = jid.MustParse("alice@localhost")
	bob   = jid.MustParse("bob@localhost")
	carol = jid.MustParse("carol@localhost")
)

// env is a server with the offline module and three accounts.
type env struct {
	srv   *servertest.Server
	store storage.Offline
	mod   *offline.Module
}

func start(t *testing.T, store storage.Offline, opts offline.Options, before ...server.Module) *env {
	t.Helper()
	return startConfig(t, store, opts, server.Config{Modules: before})
}

// startConfig is start with a server configuration (limits, modules
// listed before the offline module).
func startConfig(t *testing.T, store storage.Offline, opts offline.Options, cfg server.Config) *env {
	t.Helper()
	mod, err := offline.New(opts, offline.Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Modules = append(cfg.Modules, mod)
	if acc, ok := store.(storage.Accounts); ok {
		cfg.Accounts = acc
	}
	if cfg.Retention.Interval == 0 {
		cfg.Retention.Interval = -1 // the tests run the janitor
	}
	srv := servertest.Start(t, cfg)
	existing, err := srv.Users(t.Context(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if !slices.Contains(existing, u+"@localhost") { // kept from an earlier server on the same store
			srv.AddUser(t, u, "pw-"+u)
		}
	}
	return &env{srv: srv, store: store, mod: mod}
}

// online connects as user (a bare or full JID) and sends initial presence
// with the given priority.
func (e *env) online(t *testing.T, user jid.JID, prio int) *servertest.Client {
	t.Helper()
	c := e.connect(t, user)
	c.Send(presence(prio))
	return c
}

// syncSeeing waits until the server has processed everything c sent
// (like Client.Sync) and reports whether a stanza matching match arrived
// meanwhile (Sync would discard it).
func syncSeeing(t *testing.T, c *servertest.Client, match func(*stanza.Stanza) bool) bool {
	t.Helper()
	syncs++
	id := fmt.Sprintf("offline-sync-%d", syncs)
	c.Send(modtest.IQ(id, stanza.Get, jid.MustParse("localhost"), modtest.Query(modtest.NSDiscoInfo, "query")))
	seen := false
	c.Expect(func(st *stanza.Stanza) bool {
		seen = seen || match(st)
		return st.ID == id
	})
	return seen
}

var syncs int

func isError(st *stanza.Stanza) bool { return st.IsError() }

func (e *env) connect(t *testing.T, user jid.JID) *servertest.Client {
	t.Helper()
	return e.srv.Connect(t, user, "pw-"+user.Localpart())
}

func (e *env) count(t *testing.T, user jid.JID) int {
	t.Helper()
	n, err := e.store.CountOffline(t.Context(), user.String())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func presence(prio int) *stanza.Stanza {
	st := &stanza.Stanza{Kind: stanza.Presence}
	st.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "priority"}, strconv.Itoa(prio)))
	return st
}

func msg(to jid.JID, id, typ, body string, extra ...xml.TokenReader) *stanza.Stanza {
	st := &stanza.Stanza{Kind: stanza.Message, ID: id, Type: typ, To: to}
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

// anyBody matches messages with a body.
func anyBody(st *stanza.Stanza) bool {
	_, ok := st.ChildText(xml.Name{Local: "body"})
	return st.Kind == stanza.Message && ok && !st.IsError()
}

// delay returns the from and stamp of a message's XEP-0203 delay.
func delay(t *testing.T, st *stanza.Stanza) (from string, stamp time.Time) {
	t.Helper()
	se, _, ok := st.Child(xml.Name{Space: offline.NSDelay, Local: "delay"})
	if !ok {
		t.Fatalf("no delay in %s", text(st))
	}
	for _, a := range se.Attr {
		switch a.Name.Local {
		case "from":
			from = a.Value
		case "stamp":
			var err error
			if stamp, err = time.Parse(time.RFC3339, a.Value); err != nil || !strings.HasSuffix(a.Value, "Z") {
				t.Fatalf("stamp %q: %v", a.Value, err)
			}
		}
	}
	return from, stamp
}

// TestDeliveredInOrder: messages to an offline account (bare, full JID,
// untyped) arrive at the next non-negative login, in order, each with a
// delay stamp from the server; then they are gone.
func TestDeliveredInOrder(t *testing.T) {
	e := start(t, memory.New(), offline.Options{})
	b := e.online(t, bob, 0)
	before := time.Now().Add(-time.Second)
	b.Send(msg(alice, "m1", "chat", "one"))
	b.Send(msg(jid.MustParse("alice@localhost/gone"), "m2", "chat", "two"))
	b.Send(msg(alice, "m3", "", "three", stanza.Elem(xml.Name{Space: "urn:example:x", Local: "x"}, []xml.Attr{stanza.Attr("a", "1")})))
	b.Send(msg(alice, "m4", "normal", "four & <five>"))
	if syncSeeing(t, b, isError) {
		t.Fatal("a message was bounced")
	}
	if n := e.count(t, alice); n != 4 {
		t.Fatalf("%d messages stored, want 4", n)
	}

	a := e.connect(t, alice)
	a.ExpectNone(100*time.Millisecond, anyBody) // nothing before presence
	a.Send(presence(0))
	for i, want := range []string{"one", "two", "three", "four & <five>"} {
		got := a.Expect(anyBody)
		body, _ := got.ChildText(xml.Name{Local: "body"})
		if body != want || got.ID != fmt.Sprintf("m%d", i+1) {
			t.Fatalf("message %d: %s", i+1, text(got))
		}
		if !got.From.Equal(b.LocalAddr()) {
			t.Fatalf("from %s, want %s", got.From, b.LocalAddr())
		}
		from, stamp := delay(t, got)
		if from != "localhost" || stamp.Before(before.Truncate(time.Second)) || stamp.After(time.Now()) {
			t.Fatalf("delay from %q stamp %v: %s", from, stamp, text(got))
		}
		switch i {
		case 1:
			if got.To.Resourcepart() != "gone" {
				t.Fatalf("the full JID address was not kept: %s", text(got))
			}
		case 2:
			if got.Type != "" || !strings.Contains(text(got), `<x xmlns="urn:example:x" a="1"></x>`) && !strings.Contains(text(got), `<x xmlns="urn:example:x" a="1"/>`) {
				t.Fatalf("payload or type not kept: %s", text(got))
			}
		case 3:
			if got.Type != "normal" {
				t.Fatalf("type not kept: %s", text(got))
			}
		}
	}
	a.Sync()
	if n := e.count(t, alice); n != 0 {
		t.Fatalf("%d messages left after delivery", n)
	}
	// A second resource gets nothing more.
	a2 := e.online(t, jid.MustParse("alice@localhost/two"), 0)
	a2.ExpectNone(100*time.Millisecond, anyBody)

	// The feature is on the server.
	if info := modtest.DiscoInfo(t, a, jid.MustParse("localhost")); !modtest.HasFeature(info, offline.Feature) {
		t.Fatalf("no %s feature: %s", offline.Feature, text(info))
	}
}

// TestWhatIsStored: groupchat, headline, error, no-store and pure chat
// state messages are not stored; <store/> and <no-permanent-store/>
// messages are. Only chat/normal messages refused are bounced.
func TestWhatIsStored(t *testing.T) {
	e := start(t, memory.New(), offline.Options{})
	b := e.online(t, bob, 0)
	state := func(name string) xml.TokenReader { return empty(offline.NSChatStates, name) }
	for _, tc := range []struct {
		st     *stanza.Stanza
		stored bool
		bounce bool
	}{
		{msg(alice, "gc", "groupchat", "room"), false, true}, // the router refuses groupchat to a bare JID
		{msg(alice, "hl", "headline", "news"), false, false},
		{msg(alice, "er", "error", "err"), false, false},
		{msg(alice, "ns", "chat", "secret", empty(offline.NSHints, "no-store")), false, true},
		{msg(alice, "cs", "chat", "", state("composing")), false, false},
		{msg(alice, "cs2", "chat", "", state("active"), stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "thread"}, "t1")), false, false},
		{msg(alice, "st", "headline", "kept", empty(offline.NSHints, "store")), true, false},
		{msg(alice, "st2", "chat", "", state("gone"), empty(offline.NSHints, "store")), true, false},
		{msg(alice, "npm", "chat", "otr", empty(offline.NSHints, "no-permanent-store")), true, false},
		{msg(alice, "rcpt", "chat", "", empty("urn:xmpp:receipts", "received")), true, false},
	} {
		n := e.count(t, alice)
		b.Send(tc.st)
		bounced := syncSeeing(t, b, func(st *stanza.Stanza) bool {
			return st.ID == tc.st.ID && modtest.Condition(st) == mstanza.ServiceUnavailable
		})
		if got := e.count(t, alice) - n; got != map[bool]int{true: 1}[tc.stored] {
			t.Errorf("%s: %d stored, want stored=%v", tc.st.ID, got, tc.stored)
		}
		if bounced != tc.bounce {
			t.Errorf("%s: bounced %v, want %v", tc.st.ID, bounced, tc.bounce)
		}
	}
}

// TestLimit: beyond the limit the sender gets service-unavailable and
// nothing more is stored.
func TestLimit(t *testing.T) {
	e := start(t, memory.New(), offline.Options{Limit: 2})
	b := e.online(t, bob, 0)
	for i := 1; i <= 3; i++ {
		b.Send(msg(alice, fmt.Sprintf("m%d", i), "chat", strconv.Itoa(i)))
	}
	r := b.Expect(servertest.ByID("m3"))
	if r.Type != stanza.Error || modtest.Condition(r) != mstanza.ServiceUnavailable {
		t.Fatalf("third message: %s", text(r))
	}
	b.ExpectNone(50*time.Millisecond, func(st *stanza.Stanza) bool { return st.IsError() })
	if n := e.count(t, alice); n != 2 {
		t.Fatalf("%d stored, want 2", n)
	}
	a := e.online(t, alice, 5)
	for _, want := range []string{"1", "2"} {
		if got := a.Expect(anyBody); !servertest.Body(want)(got) {
			t.Fatalf("got %s, want body %s", text(got), want)
		}
	}
}

// TestNegativePriority: a resource of negative priority gets no offline
// messages, and messages to an account whose only resource is negative
// are stored; the next non-negative login gets them all.
func TestNegativePriority(t *testing.T) {
	e := start(t, memory.New(), offline.Options{})
	b := e.online(t, bob, 0)
	b.Send(msg(alice, "m1", "chat", "before"))
	b.Sync()
	neg := e.online(t, jid.MustParse("alice@localhost/neg"), -1)
	b.Send(msg(alice, "m2", "chat", "while negative"))
	b.Sync()
	neg.ExpectNone(150*time.Millisecond, anyBody)
	if n := e.count(t, alice); n != 2 {
		t.Fatalf("%d stored, want 2", n)
	}
	pos := e.online(t, jid.MustParse("alice@localhost/pos"), 0)
	pos.Expect(servertest.Body("before"))
	pos.Expect(servertest.Body("while negative"))
	neg.ExpectNone(100*time.Millisecond, anyBody)
}

// TestBlockedSender: a message stored before the recipient blocked its
// sender is deleted, not delivered; others still arrive.
func TestBlockedSender(t *testing.T) {
	mem := memory.New()
	blk, err := blocking.New(blocking.Options{}, blocking.Deps{Store: mem})
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, mem, offline.Options{}, blk)
	b := e.online(t, bob, 0)
	c := e.online(t, carol, 0)
	b.Send(msg(alice, "b1", "chat", "from bob"))
	b.Sync()
	c.Send(msg(alice, "c1", "chat", "from carol"))
	c.Sync()

	neg := e.online(t, jid.MustParse("alice@localhost/neg"), -1)
	block := &stanza.Stanza{Kind: stanza.IQKind, ID: "blk", Type: stanza.Set}
	block.AppendChild(stanza.Elem(xml.Name{Space: blocking.NS, Local: "block"}, nil,
		stanza.Elem(xml.Name{Space: blocking.NS, Local: "item"}, []xml.Attr{stanza.Attr("jid", bob.String())})))
	modtest.MustResult(t, modtest.Do(t, neg, block), jid.JID{})

	a := e.online(t, jid.MustParse("alice@localhost/pos"), 1)
	got := a.Expect(anyBody)
	if !servertest.Body("from carol")(got) {
		t.Fatalf("got %s, want carol's message first and only", text(got))
	}
	a.ExpectNone(150*time.Millisecond, anyBody)
	if n := e.count(t, alice); n != 0 {
		t.Fatalf("%d left; the blocked message must be deleted", n)
	}
}

// TestExportAndDelete: the XEP-0227 export holds the stored messages with
// their delay; deleting the account deletes them, and only them.
func TestExportAndDelete(t *testing.T) {
	e := start(t, memory.New(), offline.Options{})
	b := e.online(t, bob, 0)
	b.Send(msg(alice, "m1", "chat", "for the export", empty("urn:example:x", "x")))
	b.Send(msg(carol, "m2", "chat", "for carol"))
	b.Sync()

	var buf strings.Builder
	enc := xml.NewEncoder(&buf)
	if err := e.srv.ExportUser(t.Context(), alice, enc); err != nil {
		t.Fatal(err)
	}
	enc.Flush()
	out := buf.String()
	for _, want := range []string{`<offline-messages xmlns="urn:xmpp:pie:0">`, `<message xmlns="jabber:client" id="m1" type="chat" from="bob@localhost/`,
		`>for the export</body>`, `<x xmlns="urn:example:x"></x>`, `<delay xmlns="urn:xmpp:delay" from="localhost" stamp="`} {
		if !strings.Contains(out, want) {
			t.Fatalf("export lacks %s:\n%s", want, out)
		}
	}
	// The export parses as XML.
	d := xml.NewDecoder(strings.NewReader(out))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("export is not well-formed: %v\n%s", err, out)
			}
			break
		}
	}

	if err := e.srv.DeleteUser(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, alice); n != 0 {
		t.Fatalf("%d messages outlived the account", n)
	}
	if n := e.count(t, carol); n != 1 {
		t.Fatalf("carol has %d messages, want 1", n)
	}
}

// TestExpiry: Expire deletes messages older than the retention, and the
// server's janitor calls it, in batches.
func TestExpiry(t *testing.T) {
	t.Run("Expire", func(t *testing.T) {
		e := start(t, memory.New(), offline.Options{Retention: time.Hour})
		b := e.online(t, bob, 0)
		b.Send(msg(alice, "m1", "chat", "old"))
		b.Sync()
		if n, more, err := e.mod.Expire(t.Context(), time.Now().Add(30*time.Minute), 10); err != nil || n != 0 || more {
			t.Fatalf("expired %d (%v, more %v) within the retention", n, err, more)
		}
		if n, more, err := e.mod.Expire(t.Context(), time.Now().Add(2*time.Hour), 10); err != nil || n != 1 || more {
			t.Fatalf("expired %d (%v, more %v), want 1", n, err, more)
		}
		a := e.online(t, alice, 0)
		a.ExpectNone(100*time.Millisecond, anyBody)
	})
	t.Run("janitor", func(t *testing.T) {
		e := startConfig(t, memory.New(), offline.Options{Retention: time.Hour}, server.Config{Retention: server.Retention{Interval: -1, Batch: 2}})
		b := e.online(t, bob, 0)
		for i := range 5 {
			b.Send(msg(alice, fmt.Sprint("m", i), "chat", "short-lived"))
		}
		b.Sync()
		if e.count(t, alice) != 5 {
			t.Fatal("not stored")
		}
		if rep := e.srv.RunJanitor(t.Context(), time.Now()); rep.Removed["offline"] != 0 || rep.Err != nil {
			t.Fatalf("janitor within the retention: %+v", rep)
		}
		rep := e.srv.RunJanitor(t.Context(), time.Now().Add(2*time.Hour))
		if rep.Removed["offline"] != 5 || rep.Err != nil || rep.Backlog {
			t.Fatalf("janitor after the retention: %+v", rep)
		}
		if n := e.count(t, alice); n != 0 {
			t.Fatalf("alice has %d messages after the janitor", n)
		}
	})
}

// TestNoMessageStranded: messages sent while the recipient's resource
// becomes available all arrive, once each: none is left in storage while
// the resource is online. Stored messages make the delivery take a while,
// so that live ones arrive during it.
func TestNoMessageStranded(t *testing.T) {
	for round := range 4 {
		e := start(t, memory.New(), offline.Options{})
		b := e.online(t, bob, 0)
		const stored, live = 300, 100
		for i := range stored {
			b.Send(msg(alice, "", "chat", fmt.Sprint(i)))
		}
		b.Sync()
		a := e.connect(t, alice)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := stored; i < stored+live; i++ {
				if err := b.Session.Send(context.Background(), msg(alice, "", "chat", fmt.Sprint(i)).TokenReader()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		if round%2 == 1 {
			time.Sleep(time.Duration(round) * time.Millisecond)
		}
		a.Send(presence(0))
		wg.Wait()
		// Live messages may overtake stored ones being flushed; what
		// matters is that none is lost or doubled.
		seen := make(map[string]bool)
		for range stored + live {
			body, _ := a.Expect(anyBody).ChildText(xml.Name{Local: "body"})
			if seen[body] {
				t.Fatalf("round %d: message %s delivered twice", round, body)
			}
			seen[body] = true
		}
		a.ExpectNone(50*time.Millisecond, anyBody)
		if c := e.count(t, alice); c != 0 {
			t.Fatalf("round %d: %d messages stranded in storage", round, c)
		}
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []offline.Options{
		{Limit: -1}, {Limit: offline.MaxLimit + 1}, {Retention: -time.Second},
		{Retention: offline.MaxRetention + time.Hour},
	} {
		if _, err := offline.New(o, offline.Deps{Store: memory.New()}); err == nil {
			t.Errorf("New accepted %+v", o)
		}
	}
	if _, err := offline.New(offline.Options{}, offline.Deps{}); err == nil {
		t.Error("New accepted no store")
	}
}

// TestSurvivesRestart: a message stored on bbolt is delivered, with its
// delay stamp, by a second server started on the same file after the
// first one stopped.
func TestSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiez.db")
	db, err := bbolt.Open(path, bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, db, offline.Options{})
	b := e.online(t, bob, 0)
	sent := time.Now().Add(-time.Second)
	b.Send(msg(alice, "m1", "chat", "survives"))
	b.Sync()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db2, err := bbolt.Open(path, bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() })
	e2 := start(t, db2, offline.Options{})
	if n := e2.count(t, alice); n != 1 {
		t.Fatalf("%d messages after the restart, want 1", n)
	}
	a := e2.online(t, alice, 0)
	got := a.Expect(anyBody)
	if !servertest.Body("survives")(got) || got.ID != "m1" || got.From.Bare().String() != bob.String() {
		t.Fatalf("after the restart: %s", text(got))
	}
	if from, stamp := delay(t, got); from != "localhost" || stamp.Before(sent.Truncate(time.Second)) || stamp.After(time.Now()) {
		t.Fatalf("delay from %q stamp %v", from, stamp)
	}
	a.Sync()
	if n := e2.count(t, alice); n != 0 {
		t.Fatalf("%d messages left after delivery", n)
	}
}

// delays returns the top-level XEP-0203 delay elements of a message.
func delays(st *stanza.Stanza) []xml.StartElement {
	var out []xml.StartElement
	depth := 0
	for _, tok := range st.Inner {
		switch tt := tok.(type) {
		case xml.StartElement:
			if depth == 0 && tt.Name.Space == offline.NSDelay && tt.Name.Local == "delay" {
				out = append(out, tt)
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return out
}

// endProbe is a test module that reports the full JID of every session
// that has ended, once the server has redelivered what it left behind.
type endProbe struct{ ended chan jid.JID }

func (endProbe) Name() string                                    { return "endprobe" }
func (endProbe) SessionStarted(context.Context, *server.Session) {}
func (p endProbe) SessionEnded(_ context.Context, s *server.Session) {
	select {
	case p.ended <- s.JID():
	default:
	}
}

// waitEnded waits until the session of full JID j has ended.
func (p endProbe) waitEnded(t *testing.T, j jid.JID) {
	t.Helper()
	timeout := time.After(30 * time.Second) // a guard against a hang, no deadline to beat
	for {
		select {
		case got := <-p.ended:
			if got.Equal(j) {
				return
			}
		case <-timeout:
			t.Fatalf("session %s did not end", j)
		}
	}
}

// backdate replaces user's only stored message by the same record stored
// at the given time, through the storage API: the original time then
// differs from any later one by more than the second a stamp keeps.
func (e *env) backdate(t *testing.T, user jid.JID, at time.Time) {
	t.Helper()
	ctx := t.Context()
	msgs, err := e.store.OfflineMessages(ctx, user.String())
	if err != nil || len(msgs) != 1 {
		t.Fatalf("stored: %d, %v; want 1", len(msgs), err)
	}
	if err := e.store.DeleteOffline(ctx, user.String(), msgs[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := e.store.PushOffline(ctx, user.String(), storage.OfflineMessage{Stored: at, Data: msgs[0].Data}, 0); err != nil {
		t.Fatal(err)
	}
}

// TestRequeuedKeepsDelay: an offline message delivered to a stream
// management session that never acknowledges it and is never resumed is
// stored again by the server with its original arrival time, and the next
// login gets it once, with one delay stamp: the original one.
func TestRequeuedKeepsDelay(t *testing.T) {
	probe := endProbe{ended: make(chan jid.JID, 16)}
	mem := memory.New()
	e := startConfig(t, mem, offline.Options{}, server.Config{
		Modules: []server.Module{probe},
		Limits:  server.Limits{ResumeTimeout: 100 * time.Millisecond},
	})
	b := e.online(t, bob, 0)
	b.Send(msg(alice, "m1", "chat", "once"))
	b.Sync()
	orig := time.Now().Add(-3 * time.Hour).Truncate(time.Second).UTC()
	e.backdate(t, alice, orig)

	// A session with resumption enabled gets the message and loses its
	// connection without acknowledging it or closing its stream.
	sm := e.connect(t, jid.MustParse("alice@localhost/sm"))
	if err := sm.SendRaw(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`); err != nil {
		t.Fatal(err)
	}
	sm.Send(presence(0))
	got := sm.Expect(anyBody)
	if _, stamp := delay(t, got); !stamp.Equal(orig) {
		t.Fatalf("first delivery stamped %v, want %v", stamp, orig)
	}
	sm.Conn().(interface{ NetConn() net.Conn }).NetConn().Close()
	probe.waitEnded(t, sm.LocalAddr())

	msgs, err := e.store.OfflineMessages(t.Context(), alice.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !msgs[0].Stored.Equal(orig) {
		var times []time.Time
		for _, m := range msgs {
			times = append(times, m.Stored)
		}
		t.Fatalf("stored again at %v, want once at %v", times, orig)
	}

	a := e.online(t, jid.MustParse("alice@localhost/next"), 0)
	got = a.Expect(anyBody)
	if !servertest.Body("once")(got) || got.ID != "m1" {
		t.Fatalf("next login got %s", text(got))
	}
	ds := delays(got)
	if from, stamp := delay(t, got); len(ds) != 1 || from != "localhost" || !stamp.Equal(orig) {
		t.Fatalf("%d delays, the first from %q at %v; want one from localhost at %v: %s", len(ds), from, stamp, orig, text(got))
	}
	a.ExpectNone(100*time.Millisecond, anyBody)
	if n := e.count(t, alice); n != 0 {
		t.Fatalf("%d messages left after delivery", n)
	}
}

// TestForgedDelay: a sender cannot pass a delay in the server's name: a
// <delay/> claiming the local domain is removed before the message is
// stored, whatever its stamp (in the future, long ago, within the
// retention), so the recipient sees the server's one stamp only and the
// retention counts from the real arrival. A delay in the sender's own
// name is the sender's business and is kept.
func TestForgedDelay(t *testing.T) {
	e := start(t, memory.New(), offline.Options{})
	b := e.online(t, bob, 0)
	forged := func(from string, at time.Time) xml.TokenReader {
		return stanza.Elem(xml.Name{Space: offline.NSDelay, Local: "delay"}, []xml.Attr{
			stanza.Attr("from", from), stanza.Attr("stamp", at.UTC().Format(time.RFC3339))})
	}
	now := time.Now()
	before := now.Add(-time.Second).Truncate(time.Second)
	b.Send(msg(alice, "future", "chat", "1", forged("localhost", now.AddDate(1, 0, 0))))
	b.Send(msg(alice, "past", "chat", "2", forged("localhost", now.AddDate(-20, 0, 0))))
	b.Send(msg(alice, "recent", "chat", "3", forged("LocalHost", now.Add(-time.Hour))))
	b.Send(msg(alice, "own", "chat", "4", forged(b.LocalAddr().String(), now.Add(-time.Hour))))
	b.Sync()
	msgs, err := e.store.OfflineMessages(t.Context(), alice.String())
	if err != nil || len(msgs) != 4 {
		t.Fatalf("stored %d, %v; want 4", len(msgs), err)
	}
	for _, m := range msgs {
		if m.Stored.Before(before) || m.Stored.After(time.Now()) {
			t.Errorf("stored at %v, not at its arrival", m.Stored)
		}
	}

	a := e.online(t, alice, 0)
	for _, id := range []string{"future", "past", "recent", "own"} {
		got := a.Expect(anyBody)
		if got.ID != id {
			t.Fatalf("got %s, want %s", text(got), id)
		}
		var server, other int
		for _, d := range delays(got) {
			for _, at := range d.Attr {
				if at.Name.Local == "from" {
					if at.Value == "localhost" {
						server++
					} else {
						other++
					}
				}
			}
		}
		if wantOther := map[bool]int{true: 1}[id == "own"]; server != 1 || other != wantOther {
			t.Fatalf("%s: %d server delays and %d others, want 1 and %d: %s", id, server, other, wantOther, text(got))
		}
		ds := delays(got)
		last := &stanza.Stanza{Kind: stanza.Message, Inner: []xml.Token{ds[len(ds)-1], ds[len(ds)-1].End()}}
		if from, stamp := delay(t, last); from != "localhost" || stamp.Before(before) || stamp.After(time.Now()) {
			t.Fatalf("%s: server delay %v, not the arrival: %s", id, stamp, text(got))
		}
	}
}

// TestForgedDelayOnline: a delay in the server's name that a client writes
// is stripped on the sender's side, so an online recipient never sees it
// either; the sender's own delay passes.
func TestForgedDelayOnline(t *testing.T) {
	e := start(t, memory.New(), offline.Options{})
	b := e.online(t, bob, 0)
	a := e.online(t, alice, 0)
	a.Sync() // alice is available before bob's message is routed
	stamp := time.Now().AddDate(-1, 0, 0).UTC().Format(time.RFC3339)
	forged := stanza.Elem(xml.Name{Space: offline.NSDelay, Local: "delay"}, []xml.Attr{stanza.Attr("from", "localhost"), stanza.Attr("stamp", stamp)})
	own := stanza.Elem(xml.Name{Space: offline.NSDelay, Local: "delay"}, []xml.Attr{stanza.Attr("from", b.LocalAddr().String()), stanza.Attr("stamp", stamp)})
	b.Send(msg(alice, "online", "chat", "hi", forged, own))
	got := a.Expect(anyBody)
	ds := delays(got)
	if len(ds) != 1 || stanza.AttrValue(ds[0].Attr, "from") != b.LocalAddr().String() {
		t.Fatalf("online recipient got delays %v, want only the sender's own: %s", ds, text(got))
	}
}

// TestExpiredNotDelivered: a message older than the retention is deleted,
// not delivered, even when the janitor has not removed it yet (stores
// expire from the front of a queue, and a message stored again keeps its
// older time behind newer ones).
func TestExpiredNotDelivered(t *testing.T) {
	e := start(t, memory.New(), offline.Options{Retention: 24 * time.Hour})
	b := e.online(t, bob, 0)
	b.Send(msg(alice, "old", "chat", "too old"))
	b.Sync()
	e.backdate(t, alice, time.Now().Add(-25*time.Hour))
	b.Send(msg(alice, "new", "chat", "fresh"))
	b.Sync()

	a := e.online(t, alice, 0)
	if got := a.Expect(anyBody); got.ID != "new" {
		t.Fatalf("got %s, want only the fresh message", text(got))
	}
	a.ExpectNone(100*time.Millisecond, anyBody)
	if n := e.count(t, alice); n != 0 {
		t.Fatalf("%d messages left, want the expired one deleted", n)
	}
}

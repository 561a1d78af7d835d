package roster_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/memory"
)

// start runs a server with the roster module on a memory store and adds
// alice and bob.
func start(t *testing.T, opts roster.Options) (*servertest.Server, *roster.Module, *memory.Store) {
	t.Helper()
	store := memory.New()
	m, err := roster.New(opts, roster.Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{m}})
	srv.AddUser(t, "alice", "pw-alice")
	srv.AddUser(t, "bob", "pw-bob")
	return srv, m, store
}

// connect logs in as alice with resource res.
func connect(t *testing.T, srv *servertest.Server, res string) *servertest.Client {
	t.Helper()
	return srv.Connect(t, jid.MustParse("alice@"+srv.Domain+"/"+res), "pw-alice")
}

var nextID atomic.Int64

func id(prefix string) string { return fmt.Sprintf("%s-%d", prefix, nextID.Add(1)) }

// item is a roster item as a client sees it.
type item struct {
	JID, Name, Sub, Ask string
	Groups              []string
}

func (it item) String() string {
	return fmt.Sprintf("{%s %q sub=%s ask=%s %q}", it.JID, it.Name, it.Sub, it.Ask, it.Groups)
}

// query returns the roster query of st: its ver attribute (and whether it
// has one) and its items. ok is false without a query.
func query(st *stanza.Stanza) (ver string, hasVer bool, items []item, ok bool) {
	start, r, ok := st.Child(xml.Name{Space: roster.NS, Local: "query"})
	if !ok {
		return "", false, nil, false
	}
	for _, a := range start.Attr {
		if a.Name.Local == "ver" {
			ver, hasVer = a.Value, true
		}
	}
	var group *strings.Builder
	for {
		tok, err := r.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "item":
				it := item{}
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "jid":
						it.JID = a.Value
					case "name":
						it.Name = a.Value
					case "subscription":
						it.Sub = a.Value
					case "ask":
						it.Ask = a.Value
					}
				}
				items = append(items, it)
			case "group":
				group = &strings.Builder{}
			}
		case xml.CharData:
			if group != nil {
				group.Write(t)
			}
		case xml.EndElement:
			if t.Name.Local == "group" && group != nil {
				items[len(items)-1].Groups = append(items[len(items)-1].Groups, group.String())
				group = nil
			}
		}
	}
	return ver, hasVer, items, true
}

// get sends a roster get, with a ver attribute unless ver is nil, and
// returns the answer.
func get(t *testing.T, c *servertest.Client, ver *string) *stanza.Stanza {
	t.Helper()
	var attrs []xml.Attr
	if ver != nil {
		attrs = []xml.Attr{stanza.Attr("ver", *ver)}
	}
	return modtest.Do(t, c, modtest.IQ(id("get"), stanza.Get, jid.JID{}, stanza.Elem(xml.Name{Space: roster.NS, Local: "query"}, attrs)))
}

// fetch gets the whole roster (marking the session interested) and
// returns its version and items.
func fetch(t *testing.T, c *servertest.Client) (string, []item) {
	t.Helper()
	empty := ""
	res := get(t, c, &empty)
	modtest.MustResult(t, res, jid.JID{})
	ver, hasVer, items, ok := query(res)
	if !ok || !hasVer {
		t.Fatalf("roster result without a query with ver (query %v, ver %v)", ok, hasVer)
	}
	return ver, items
}

// itemElem builds an <item/> for a set.
func itemElem(attrs map[string]string, groups ...string) xml.TokenReader {
	var as []xml.Attr
	for _, k := range []string{"jid", "name", "subscription", "ask", "approved"} {
		if v, ok := attrs[k]; ok {
			as = append(as, stanza.Attr(k, v))
		}
	}
	var gs []xml.TokenReader
	for _, g := range groups {
		gs = append(gs, stanza.TextElem(xml.Name{Space: roster.NS, Local: "group"}, g))
	}
	return stanza.Elem(xml.Name{Space: roster.NS, Local: "item"}, as, gs...)
}

// set sends a roster set with the given items and returns the answer.
func set(t *testing.T, c *servertest.Client, items ...xml.TokenReader) *stanza.Stanza {
	t.Helper()
	return modtest.Do(t, c, modtest.IQ(id("set"), stanza.Set, jid.JID{}, stanza.Elem(xml.Name{Space: roster.NS, Local: "query"}, nil, items...)))
}

func mustSet(t *testing.T, c *servertest.Client, attrs map[string]string, groups ...string) {
	t.Helper()
	modtest.MustResult(t, set(t, c, itemElem(attrs, groups...)), jid.JID{})
}

// isPush matches roster pushes.
func isPush(st *stanza.Stanza) bool {
	return st.Kind == stanza.IQKind && st.Type == stanza.Set && st.HasChild(xml.Name{Space: roster.NS, Local: "query"})
}

// expectPush waits for a roster push, checks that it is well formed and
// carries want, and returns its version.
func expectPush(t *testing.T, c *servertest.Client, want item) string {
	t.Helper()
	st := c.Expect(isPush)
	// The push comes from the user's bare JID, which the client library
	// blanks (RFC 6121 §2.1.6 allows either).
	if !st.From.Equal(jid.JID{}) {
		t.Errorf("push from %q, want the user's bare JID", st.From)
	}
	if st.ID == "" {
		t.Error("push without id")
	}
	ver, hasVer, items, _ := query(st)
	if !hasVer || ver == "" {
		t.Errorf("push without ver")
	}
	if len(items) != 1 || items[0].String() != want.String() {
		t.Fatalf("push items %v, want %v", items, want)
	}
	return ver
}

func TestGetEmpty(t *testing.T) {
	srv, _, _ := start(t, roster.Options{})
	c := connect(t, srv, "phone")
	// Without ver: an empty query, no ver attribute.
	res := get(t, c, nil)
	modtest.MustResult(t, res, jid.JID{})
	_, hasVer, items, ok := query(res)
	if !ok || hasVer || len(items) != 0 {
		t.Fatalf("roster get = query %v, ver %v, items %v; want an empty query without ver", ok, hasVer, items)
	}
	// With ver: a ver attribute as well.
	if _, items := fetch(t, c); len(items) != 0 {
		t.Fatalf("items %v", items)
	}
	// Another account's roster is not ours to read.
	bob := jid.MustParse("bob@" + srv.Domain)
	res = modtest.Do(t, c, modtest.IQ(id("get"), stanza.Get, bob, modtest.Query(roster.NS, "query")))
	if got := modtest.Condition(res); got != mstanza.ServiceUnavailable {
		t.Fatalf("get of bob's roster: condition %q, want service-unavailable", got)
	}
}

// TestPushes: a set reaches every interested resource (two of alice's
// sessions fetched the roster) as a push, and the setter gets a result;
// a third session that never fetched the roster gets no push.
func TestPushes(t *testing.T) {
	srv, _, _ := start(t, roster.Options{})
	phone, laptop, tablet := connect(t, srv, "phone"), connect(t, srv, "laptop"), connect(t, srv, "tablet")
	fetch(t, phone)
	fetch(t, laptop)
	tablet.Sync()

	carol := "carol@example.org"
	mustSet(t, phone, map[string]string{"jid": carol, "name": "Carol"}, "Friends", "Work")
	want := item{JID: carol, Name: "Carol", Sub: "none", Groups: []string{"Friends", "Work"}}
	v1 := expectPush(t, phone, want)
	if v2 := expectPush(t, laptop, want); v2 != v1 {
		t.Errorf("pushes carry versions %q and %q", v1, v2)
	}

	// A change: the whole item again, with the new name and groups.
	mustSet(t, laptop, map[string]string{"jid": carol, "name": "C."})
	want = item{JID: carol, Name: "C.", Sub: "none"}
	v3 := expectPush(t, phone, want)
	expectPush(t, laptop, want)
	if v3 == v1 {
		t.Error("a change kept the version")
	}

	// A removal.
	mustSet(t, phone, map[string]string{"jid": carol, "subscription": "remove"})
	want = item{JID: carol, Sub: "remove"}
	expectPush(t, phone, want)
	expectPush(t, laptop, want)
	tablet.ExpectNone(200*time.Millisecond, isPush)

	if _, items := fetch(t, tablet); len(items) != 0 {
		t.Fatalf("roster after removal: %v", items)
	}
	// Now the tablet is interested too.
	mustSet(t, phone, map[string]string{"jid": "dave@example.org"})
	for _, c := range []*servertest.Client{phone, laptop, tablet} {
		expectPush(t, c, item{JID: "dave@example.org", Sub: "none"})
	}
}

// TestPushIDsUnique: each push is its own stanza with its own id.
func TestPushIDsUnique(t *testing.T) {
	srv, _, _ := start(t, roster.Options{})
	a, b := connect(t, srv, "a"), connect(t, srv, "b")
	fetch(t, a)
	fetch(t, b)
	mustSet(t, a, map[string]string{"jid": "carol@example.org"})
	pa, pb := a.Expect(isPush), b.Expect(isPush)
	if pa.ID == pb.ID {
		t.Fatalf("both pushes have id %q", pa.ID)
	}
	if pa.To.Equal(pb.To) {
		t.Fatalf("both pushes to %q", pa.To)
	}
}

// TestVersioning follows RFC 6121 §2.6.3: the current version gets an
// empty result; a known older one an empty result and a push per change;
// an unknown one the whole roster.
func TestVersioning(t *testing.T) {
	srv, _, _ := start(t, roster.Options{})
	phone := connect(t, srv, "phone")
	v0, _ := fetch(t, phone)
	mustSet(t, phone, map[string]string{"jid": "a@example.org", "name": "A"})
	v1 := expectPush(t, phone, item{JID: "a@example.org", Name: "A", Sub: "none"})
	if v1 == v0 {
		t.Fatalf("the first item kept the version %q", v0)
	}
	mustSet(t, phone, map[string]string{"jid": "b@example.org"})
	expectPush(t, phone, item{JID: "b@example.org", Sub: "none"})
	mustSet(t, phone, map[string]string{"jid": "c@example.org"}, "G")
	expectPush(t, phone, item{JID: "c@example.org", Sub: "none", Groups: []string{"G"}})
	mustSet(t, phone, map[string]string{"jid": "a@example.org", "subscription": "remove"})
	cur := expectPush(t, phone, item{JID: "a@example.org", Sub: "remove"})

	// A new session that cached v1 gets an empty result, then the three
	// changes as pushes in order, the last at the current version.
	laptop := connect(t, srv, "laptop")
	res := get(t, laptop, &v1)
	modtest.MustResult(t, res, jid.JID{})
	if len(res.Inner) != 0 {
		t.Fatalf("versioned get since a known version: result has a payload")
	}
	expectPush(t, laptop, item{JID: "b@example.org", Sub: "none"})
	expectPush(t, laptop, item{JID: "c@example.org", Sub: "none", Groups: []string{"G"}})
	if last := expectPush(t, laptop, item{JID: "a@example.org", Sub: "remove"}); last != cur {
		t.Errorf("last push at %q, want the current version %q", last, cur)
	}

	// The current version: an empty result and nothing else.
	res = get(t, laptop, &cur)
	modtest.MustResult(t, res, jid.JID{})
	if len(res.Inner) != 0 {
		t.Fatal("versioned get at the current version: result has a payload")
	}
	laptop.ExpectNone(200*time.Millisecond, isPush)
	// The session is interested now.
	mustSet(t, phone, map[string]string{"jid": "d@example.org"})
	expectPush(t, laptop, item{JID: "d@example.org", Sub: "none"})
	_, items := fetch(t, phone)
	cur, _ = fetch(t, phone)
	if len(items) != 3 {
		t.Fatalf("roster %v", items)
	}

	// Unknown versions: the whole roster with the current version.
	for _, ver := range []string{"bogus", v0 + "x", "", "1.1"} {
		res := get(t, laptop, &ver)
		modtest.MustResult(t, res, jid.JID{})
		got, hasVer, items, ok := query(res)
		if !ok || !hasVer || got != cur || len(items) != 3 {
			t.Errorf("get with ver %q = query %v, ver %q (%v), %d items; want the roster at %q", ver, ok, got, hasVer, len(items), cur)
		}
	}
	laptop.ExpectNone(100*time.Millisecond, isPush)
}

func TestSetErrors(t *testing.T) {
	srv, _, _ := start(t, roster.Options{MaxNameLen: 10, MaxGroups: 2, MaxGroupLen: 5})
	c := connect(t, srv, "phone")
	fetch(t, c)
	own := "alice@" + srv.Domain
	ok := map[string]string{"jid": "carol@example.org"}
	tests := []struct {
		name  string
		items []xml.TokenReader
		cond  mstanza.Condition
	}{
		{"no item", nil, mstanza.BadRequest},
		{"two items", []xml.TokenReader{itemElem(ok), itemElem(map[string]string{"jid": "dave@example.org"})}, mstanza.BadRequest},
		{"no jid", []xml.TokenReader{itemElem(map[string]string{"name": "x"})}, mstanza.BadRequest},
		{"malformed jid", []xml.TokenReader{itemElem(map[string]string{"jid": "a@b@c"})}, mstanza.JIDMalformed},
		{"empty jid", []xml.TokenReader{itemElem(map[string]string{"jid": ""})}, mstanza.JIDMalformed},
		{"full jid", []xml.TokenReader{itemElem(map[string]string{"jid": "carol@example.org/phone"})}, mstanza.BadRequest},
		{"own jid", []xml.TokenReader{itemElem(map[string]string{"jid": own})}, mstanza.NotAllowed},
		{"duplicate groups", []xml.TokenReader{itemElem(ok, "A", "A")}, mstanza.BadRequest},
		{"empty group", []xml.TokenReader{itemElem(ok, "")}, mstanza.NotAcceptable},
		{"long group", []xml.TokenReader{itemElem(ok, "123456")}, mstanza.NotAcceptable},
		{"too many groups", []xml.TokenReader{itemElem(ok, "A", "B", "C")}, mstanza.NotAcceptable},
		{"long name", []xml.TokenReader{itemElem(map[string]string{"jid": "carol@example.org", "name": "12345678901"})}, mstanza.NotAcceptable},
		{"remove absent", []xml.TokenReader{itemElem(map[string]string{"jid": "nobody@example.org", "subscription": "remove"})}, mstanza.ItemNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := set(t, c, tt.items...)
			if got := modtest.Condition(res); got != tt.cond {
				t.Fatalf("condition %q, want %q", got, tt.cond)
			}
		})
	}
	c.ExpectNone(100*time.Millisecond, isPush)
	if _, items := fetch(t, c); len(items) != 0 {
		t.Fatalf("failed sets left %v", items)
	}

	// Limits are inclusive; subscription, ask and approved in a set are
	// ignored (RFC 6121 §2.1.2), and so are unknown children.
	mustSet(t, c, map[string]string{"jid": "carol@example.org", "name": "1234567890", "subscription": "both", "ask": "subscribe", "approved": "true"}, "12345", "B")
	expectPush(t, c, item{JID: "carol@example.org", Name: "1234567890", Sub: "none", Groups: []string{"12345", "B"}})
	// A JID is stored in its canonical form.
	mustSet(t, c, map[string]string{"jid": "Dave@Example.ORG"})
	expectPush(t, c, item{JID: "dave@example.org", Sub: "none"})
}

func TestLimit(t *testing.T) {
	srv, _, _ := start(t, roster.Options{MaxItems: 2})
	c := connect(t, srv, "phone")
	mustSet(t, c, map[string]string{"jid": "a@example.org"})
	mustSet(t, c, map[string]string{"jid": "b@example.org"})
	res := set(t, c, itemElem(map[string]string{"jid": "c@example.org"}))
	if got := modtest.Condition(res); got != mstanza.ResourceConstraint {
		t.Fatalf("third item: condition %q, want resource-constraint", got)
	}
	if !bytes.Contains(errorText(res), []byte("at most 2")) {
		t.Errorf("error text %q does not give the limit", errorText(res))
	}
	// Changing an item of a full roster is fine, and so is adding after a
	// removal.
	mustSet(t, c, map[string]string{"jid": "b@example.org", "name": "B"})
	mustSet(t, c, map[string]string{"jid": "a@example.org", "subscription": "remove"})
	mustSet(t, c, map[string]string{"jid": "c@example.org"})
}

func errorText(st *stanza.Stanza) []byte {
	var out []byte
	in := false
	for _, tok := range st.Inner {
		switch t := tok.(type) {
		case xml.StartElement:
			in = t.Name.Local == "text"
		case xml.CharData:
			if in {
				out = append(out, t...)
			}
		case xml.EndElement:
			in = false
		}
	}
	return out
}

// TestDeleteAccount: deleting the account deletes the roster, and only
// that account's.
func TestDeleteAccount(t *testing.T) {
	srv, _, store := start(t, roster.Options{})
	c := connect(t, srv, "phone")
	mustSet(t, c, map[string]string{"jid": "carol@example.org"}, "G")
	bob := srv.Connect(t, jid.MustParse("bob@"+srv.Domain+"/x"), "pw-bob")
	mustSet(t, bob, map[string]string{"jid": "carol@example.org"})

	alice := jid.MustParse("alice@" + srv.Domain)
	if err := srv.DeleteUser(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	if items, ver, err := store.Roster(t.Context(), alice.String()); err != nil || len(items) != 0 || ver != "" {
		t.Fatalf("alice's roster after deletion = %v, %q, %v", items, ver, err)
	}
	if items, _, _ := store.Roster(t.Context(), "bob@"+srv.Domain); len(items) != 1 {
		t.Fatalf("bob's roster = %v", items)
	}
}

func TestExport(t *testing.T) {
	srv, _, _ := start(t, roster.Options{})
	c := connect(t, srv, "phone")
	mustSet(t, c, map[string]string{"jid": "carol@example.org", "name": "Carol & co"}, "Friends")
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if err := srv.ExportUser(t.Context(), jid.MustParse("alice@"+srv.Domain), enc); err != nil {
		t.Fatal(err)
	}
	enc.Flush()
	for _, want := range []string{`<query xmlns="jabber:iq:roster">`, `jid="carol@example.org"`, `name="Carol &amp; co"`, `subscription="none"`, `<group xmlns="jabber:iq:roster">Friends</group>`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("export lacks %s: %s", want, buf.String())
		}
	}
	if got := srv.UserDataKinds(); len(got["roster"]) != 1 {
		t.Errorf("UserDataKinds = %v", got)
	}
}

// TestStreamFeature: authenticated streams advertise roster versioning.
func TestStreamFeature(t *testing.T) {
	srv, _, _ := start(t, roster.Options{})
	var seen atomic.Bool
	ver := xmpp.StreamFeature{
		Name:      xml.Name{Space: roster.NSVer, Local: "ver"},
		Necessary: xmpp.Authn,
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			seen.Store(true)
			return false, nil, d.Skip()
		},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := xmpp.NewClientSession(ctx, jid.MustParse("alice@"+srv.Domain+"/f"), conn,
		xmpp.StartTLS(srv.ClientTLS()),
		xmpp.SASL("", "pw-alice", saslMechs...),
		servertest.BindResource(),
		ver,
	)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if !seen.Load() {
		t.Fatal("no <ver xmlns='urn:xmpp:features:rosterver'/> in the stream features")
	}
}

func TestItemAndUpdate(t *testing.T) {
	srv, m, _ := start(t, roster.Options{MaxItems: 1})
	c := connect(t, srv, "phone")
	fetch(t, c)
	ctx := t.Context()
	alice, carol := jid.MustParse("alice@"+srv.Domain), jid.MustParse("carol@example.org/res")

	if _, ok, err := m.Item(ctx, alice, carol); ok || err != nil {
		t.Fatalf("Item of an empty roster = %v, %v", ok, err)
	}
	// Update as the presence module will: a new item with ask set.
	err := m.Update(ctx, alice, carol, func(it storage.RosterItem, exists bool) (storage.RosterItem, bool, error) {
		if exists || it.JID != "carol@example.org" || it.Subscription != storage.SubNone {
			t.Errorf("Update got %+v, %v", it, exists)
		}
		it.Ask = true
		return it, false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	expectPush(t, c, item{JID: "carol@example.org", Sub: "none", Ask: "subscribe"})
	it, ok, err := m.Item(ctx, alice, carol)
	if !ok || err != nil || !it.Ask {
		t.Fatalf("Item = %+v, %v, %v", it, ok, err)
	}

	// A client's set keeps the server's subscription state.
	if err := m.Update(ctx, alice, carol, func(it storage.RosterItem, _ bool) (storage.RosterItem, bool, error) {
		it.Subscription, it.Ask, it.PendingIn = storage.SubTo, false, true
		return it, false, nil
	}); err != nil {
		t.Fatal(err)
	}
	expectPush(t, c, item{JID: "carol@example.org", Sub: "to"})
	mustSet(t, c, map[string]string{"jid": "carol@example.org", "name": "C"})
	expectPush(t, c, item{JID: "carol@example.org", Name: "C", Sub: "to"})
	if it, _, _ := m.Item(ctx, alice, carol); !it.PendingIn || it.Subscription != storage.SubTo {
		t.Fatalf("after a client set: %+v", it)
	}

	// ErrUnchanged writes nothing; a function error is returned.
	if err := m.Update(ctx, alice, carol, func(storage.RosterItem, bool) (storage.RosterItem, bool, error) {
		return storage.RosterItem{}, false, roster.ErrUnchanged
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := m.Update(ctx, alice, carol, func(storage.RosterItem, bool) (storage.RosterItem, bool, error) {
		return storage.RosterItem{}, false, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update error = %v", err)
	}
	c.ExpectNone(100*time.Millisecond, isPush)

	// Removal.
	if err := m.Update(ctx, alice, carol, func(it storage.RosterItem, _ bool) (storage.RosterItem, bool, error) {
		return it, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	expectPush(t, c, item{JID: "carol@example.org", Sub: "remove"})
	if items, err := m.Items(ctx, alice); err != nil || len(items) != 0 {
		t.Fatalf("Items = %v, %v", items, err)
	}
}

func TestNew(t *testing.T) {
	if _, err := roster.New(roster.Options{}, roster.Deps{}); err == nil {
		t.Error("New without a store succeeded")
	}
	for _, o := range []roster.Options{{MaxItems: -1}, {MaxNameLen: -1}, {MaxGroups: -1}, {MaxGroupLen: -1}} {
		if _, err := roster.New(o, roster.Deps{Store: memory.New()}); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

var saslMechs = []sasl.Mechanism{sasl.ScramSha256}

// TestConcurrentSets: two resources set items at the same time; each
// interested resource gets every push, each push's version is new, and
// the last push carries the version of the final roster.
func TestConcurrentSets(t *testing.T) {
	srv, _, _ := start(t, roster.Options{})
	phone, laptop := connect(t, srv, "phone"), connect(t, srv, "laptop")
	fetch(t, phone)
	fetch(t, laptop)
	const n = 25
	for i := range n {
		for j, c := range []*servertest.Client{phone, laptop} {
			st := modtest.IQ(id("cset"), stanza.Set, jid.JID{}, stanza.Elem(xml.Name{Space: roster.NS, Local: "query"}, nil,
				itemElem(map[string]string{"jid": fmt.Sprintf("c%d-%d@example.org", j, i)})))
			c.Send(st)
		}
	}
	for _, c := range []*servertest.Client{phone, laptop} {
		seen := map[string]bool{}
		var last string
		for range 2 * n {
			st := c.Expect(isPush)
			ver, _, items, _ := query(st)
			if seen[ver] || len(items) != 1 {
				t.Fatalf("push %q with %d items, version seen before: %v", ver, len(items), seen[ver])
			}
			seen[ver], last = true, ver
		}
		ver, items := fetch(t, c)
		if len(items) != 2*n || ver != last {
			t.Fatalf("roster of %d items at %q; last push at %q", len(items), ver, last)
		}
	}
}

// TestBbolt runs a set, a removal and a versioned get on the bbolt store.
func TestBbolt(t *testing.T) {
	store, err := bbolt.Open(filepath.Join(t.TempDir(), "kiez.db"), bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	m, err := roster.New(roster.Options{}, roster.Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{m}})
	srv.AddUser(t, "alice", "pw-alice")
	c := connect(t, srv, "phone")
	fetch(t, c)
	mustSet(t, c, map[string]string{"jid": "carol@example.org", "name": "Carol"}, "G")
	v1 := expectPush(t, c, item{JID: "carol@example.org", Name: "Carol", Sub: "none", Groups: []string{"G"}})
	mustSet(t, c, map[string]string{"jid": "dave@example.org"})
	expectPush(t, c, item{JID: "dave@example.org", Sub: "none"})
	mustSet(t, c, map[string]string{"jid": "carol@example.org", "subscription": "remove"})
	expectPush(t, c, item{JID: "carol@example.org", Sub: "remove"})

	other := connect(t, srv, "laptop")
	modtest.MustResult(t, get(t, other, &v1), jid.JID{})
	expectPush(t, other, item{JID: "dave@example.org", Sub: "none"})
	expectPush(t, other, item{JID: "carol@example.org", Sub: "remove"})
	if _, items := fetch(t, other); len(items) != 1 {
		t.Fatalf("roster %v", items)
	}
	if err := srv.DeleteUser(t.Context(), jid.MustParse("alice@"+srv.Domain)); err != nil {
		t.Fatal(err)
	}
	if items, ver, err := store.Roster(t.Context(), "alice@"+srv.Domain); err != nil || len(items) != 0 || ver != "" {
		t.Fatalf("roster after account deletion = %v, %q, %v", items, ver, err)
	}
}

// TestHiddenAndFull: an item that exists only for a contact's pending
// request is not shown, nor pushed; Update refuses to create items in a
// full roster.
func TestHiddenAndFull(t *testing.T) {
	srv, m, _ := start(t, roster.Options{MaxItems: 2})
	c := connect(t, srv, "phone")
	fetch(t, c)
	alice := jid.MustParse("alice@" + srv.Domain)
	pending := func(it storage.RosterItem, exists bool) (storage.RosterItem, bool, error) {
		it.PendingIn, it.Hidden = true, !exists
		return it, false, nil
	}
	if err := m.Update(t.Context(), alice, jid.MustParse("bob@"+srv.Domain), pending); err != nil {
		t.Fatal(err)
	}
	c.ExpectNone(100*time.Millisecond, isPush)
	if _, items := fetch(t, c); len(items) != 0 {
		t.Fatalf("hidden item shown: %+v", items)
	}
	if _, ok, _ := m.Item(t.Context(), alice, jid.MustParse("bob@"+srv.Domain)); !ok {
		t.Fatal("the pending request was not kept")
	}
	// Approving makes it visible and pushes it.
	if err := m.Update(t.Context(), alice, jid.MustParse("bob@"+srv.Domain), func(it storage.RosterItem, _ bool) (storage.RosterItem, bool, error) {
		it.PendingIn, it.Subscription, it.Hidden = false, storage.SubFrom, false
		return it, false, nil
	}); err != nil {
		t.Fatal(err)
	}
	c.Expect(isPush)
	if _, items := fetch(t, c); len(items) != 1 || items[0].Sub != "from" {
		t.Fatalf("after approval: %+v", items)
	}
	// A pending contact the user adds by hand, without name or groups,
	// shows at once.
	if err := m.Update(t.Context(), alice, jid.MustParse("erin@example.org"), pending); err != nil {
		t.Fatal(err)
	}
	mustSet(t, c, map[string]string{"jid": "erin@example.org"})
	if _, items := fetch(t, c); len(items) != 2 {
		t.Fatalf("after adding the pending contact: %+v", items)
	}
	// The limit (2) holds for items others cause.
	if err := m.Update(t.Context(), alice, jid.MustParse("dave@example.org"), pending); !errors.Is(err, roster.ErrFull) {
		t.Fatalf("third item in a roster of two: %v", err)
	}
}

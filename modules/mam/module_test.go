package mam_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/memory"
)

// backend is what the tests need of a store.
type backend interface {
	storage.Accounts
	storage.Archive
	storage.KV
	storage.ServiceData
}

// backends are the stores every test runs on.
var backends = []struct {
	name string
	open func(t *testing.T) backend
}{
	{"memory", func(t *testing.T) backend { return memory.New() }},
	{"bbolt", func(t *testing.T) backend {
		s, err := bbolt.Open(filepath.Join(t.TempDir(), "kiez.db"), bbolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// each runs f once per backend.
func each(t *testing.T, f func(t *testing.T, open func(*testing.T) backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.open) })
	}
}

type env struct {
	srv   *servertest.Server
	mod   *mam.Module
	store backend
}

func start(t *testing.T, open func(*testing.T) backend, opts mam.Options, extra ...func(*mam.Module) server.Module) *env {
	t.Helper()
	store := open(t)
	mod, err := mam.New(opts, mam.Deps{Archive: store, KV: store, Service: store})
	if err != nil {
		t.Fatal(err)
	}
	mods := []server.Module{mod}
	for _, f := range extra {
		mods = append(mods, f(mod))
	}
	// The tests run the janitor themselves, at the times they choose.
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: mods, Retention: server.Retention{Interval: -1}})
	return &env{srv: srv, mod: mod, store: store}
}

func (e *env) user(t *testing.T, name string) *servertest.Client {
	t.Helper()
	j := e.srv.AddUser(t, name, "pw-"+name)
	c := e.srv.Connect(t, j, "pw-"+name)
	c.Send(&stanza.Stanza{Kind: stanza.Presence})
	c.Sync()
	return c
}

func chat(to jid.JID, id, body string, extra ...xml.TokenReader) *stanza.Stanza {
	st := &stanza.Stanza{Kind: stanza.Message, ID: id, Type: "chat", To: to}
	st.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, body))
	for _, x := range extra {
		st.AppendChild(x)
	}
	return st
}

func text(st *stanza.Stanza) string {
	var b bytes.Buffer
	st.WriteTo(&b)
	return b.String()
}

// field is a form field of a query: var and values.
type field struct {
	v      string
	values []string
}

// queryIQ builds a MAM query with an optional form and RSM set.
func queryIQ(id string, fields []field, rsm []xml.TokenReader, flip bool) *stanza.Stanza {
	var children []xml.TokenReader
	if len(fields) > 0 {
		f := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{form.FormTypeField(mam.NS)}}
		for _, fd := range fields {
			f.Fields = append(f.Fields, form.Field{Var: fd.v, Values: fd.values})
		}
		children = append(children, f.TokenReader())
	}
	if rsm != nil {
		children = append(children, stanza.Elem(xml.Name{Space: mam.NSRSM, Local: "set"}, nil, rsm...))
	}
	if flip {
		children = append(children, stanza.Elem(xml.Name{Space: mam.NS, Local: "flip-page"}, nil))
	}
	return modtest.IQ(id, stanza.Set, jid.JID{}, stanza.Elem(xml.Name{Space: mam.NS, Local: "query"},
		[]xml.Attr{stanza.Attr("queryid", "q-"+id)}, children...))
}

func rsmMax(n int) xml.TokenReader {
	return stanza.TextElem(xml.Name{Space: mam.NSRSM, Local: "max"}, strconv.Itoa(n))
}

func rsmElem(local, v string) xml.TokenReader {
	return stanza.TextElem(xml.Name{Space: mam.NSRSM, Local: local}, v)
}

// result is one archived message as a query returned it.
type result struct {
	id, body, stamp, from, to string
}

// page is a query's answer.
type page struct {
	results     []result
	first, last string
	count       string
	complete    bool
	iq          *stanza.Stanza
}

// find returns the text and attributes of the first element named local
// among toks.
func find(toks []xml.Token, local string) (string, xml.StartElement, bool) {
	for i, t := range toks {
		se, ok := t.(xml.StartElement)
		if !ok || se.Name.Local != local {
			continue
		}
		var b strings.Builder
		depth := 0
		for _, t := range toks[i:] {
			switch tt := t.(type) {
			case xml.StartElement:
				depth++
			case xml.EndElement:
				depth--
			case xml.CharData:
				if depth == 1 {
					b.Write(tt)
				}
			}
			if depth == 0 {
				break
			}
		}
		return b.String(), se, true
	}
	return "", xml.StartElement{}, false
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// query runs a query and collects its results until the iq answer.
func query(t *testing.T, c *servertest.Client, st *stanza.Stanza) page {
	t.Helper()
	c.Send(st)
	var p page
	for {
		got := c.Expect(func(s *stanza.Stanza) bool {
			return s.ID == st.ID || (s.Kind == stanza.Message && s.HasChild(xml.Name{Space: mam.NS, Local: "result"}))
		})
		if got.Kind == stanza.IQKind {
			p.iq = got
			if got.Type != stanza.Result {
				return p
			}
			_, fin, ok := find(got.Inner, "fin")
			if !ok {
				t.Fatalf("no fin in %s", text(got))
			}
			p.complete = attr(fin, "complete") == "true"
			p.first, _, _ = find(got.Inner, "first")
			p.last, _, _ = find(got.Inner, "last")
			p.count, _, _ = find(got.Inner, "count")
			return p
		}
		_, res, _ := find(got.Inner, "result")
		if q := attr(res, "queryid"); q != "q-"+st.ID {
			t.Fatalf("result with queryid %q, want %q", q, "q-"+st.ID)
		}
		if !got.From.Equal(jid.JID{}) && !got.From.Equal(c.LocalAddr().Bare()) {
			t.Fatalf("result from %s", got.From)
		}
		body, _, _ := find(got.Inner, "body")
		_, delay, _ := find(got.Inner, "delay")
		_, fwd, ok := find(got.Inner[1:], "message")
		if !ok {
			t.Fatalf("no forwarded message in %s", text(got))
		}
		if fwd.Name.Space != stanza.NSClient {
			t.Fatalf("forwarded message in namespace %q", fwd.Name.Space)
		}
		p.results = append(p.results, result{id: attr(res, "id"), body: body, stamp: attr(delay, "stamp"), from: attr(fwd, "from"), to: attr(fwd, "to")})
	}
}

func bodies(rs []result) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.body)
	}
	return strings.Join(out, ",")
}

func stanzaIDs(st *stanza.Stanza) map[string]string {
	out := map[string]string{}
	for _, t := range st.Inner {
		if se, ok := t.(xml.StartElement); ok && se.Name.Space == mam.NSSID && se.Name.Local == "stanza-id" {
			out[attr(se, "by")] = attr(se, "id")
		}
	}
	return out
}

// Paging forward and backward over 250 messages returns each once, in
// order, with first/last and complete on the last page (XEP-0059).
func TestPaging(t *testing.T) { each(t, testPaging) }

func testPaging(t *testing.T, open func(*testing.T) backend) {
	e := start(t, open, mam.Options{})
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	const n = 250
	for i := range n {
		alice.Send(chat(bob.LocalAddr().Bare(), fmt.Sprint("m", i), fmt.Sprint(i)))
	}
	alice.Sync()

	seen := map[string]bool{}
	var order []string
	after := ""
	for pageNo := 0; ; pageNo++ {
		rsm := []xml.TokenReader{rsmMax(50)}
		if after != "" {
			rsm = append(rsm, rsmElem("after", after))
		}
		p := query(t, alice, queryIQ(fmt.Sprint("fwd", pageNo), nil, rsm, false))
		modtest.MustResult(t, p.iq, jid.JID{})
		if len(p.results) == 0 {
			t.Fatalf("page %d empty", pageNo)
		}
		if p.first != p.results[0].id || p.last != p.results[len(p.results)-1].id {
			t.Fatalf("first/last %s/%s, results %s..%s", p.first, p.last, p.results[0].id, p.results[len(p.results)-1].id)
		}
		if p.count != strconv.Itoa(n) {
			t.Fatalf("count %q", p.count)
		}
		for _, r := range p.results {
			if seen[r.id] {
				t.Fatalf("id %s twice", r.id)
			}
			seen[r.id] = true
			order = append(order, r.body)
		}
		after = p.last
		if p.complete {
			if pageNo != 4 {
				t.Fatalf("complete on page %d", pageNo)
			}
			break
		}
		if pageNo > 5 {
			t.Fatal("no complete page")
		}
	}
	for i, b := range order {
		if b != strconv.Itoa(i) {
			t.Fatalf("message %d has body %s", i, b)
		}
	}

	// Backwards from the end: an empty <before/> is the last page.
	seen = map[string]bool{}
	before := ""
	for pageNo := 0; ; pageNo++ {
		p := query(t, alice, queryIQ(fmt.Sprint("back", pageNo), nil, []xml.TokenReader{rsmMax(40), rsmElem("before", before)}, false))
		modtest.MustResult(t, p.iq, jid.JID{})
		for i, r := range p.results {
			if seen[r.id] {
				t.Fatalf("id %s twice", r.id)
			}
			seen[r.id] = true
			if i > 0 && r.id <= p.results[i-1].id && len(r.id) == len(p.results[i-1].id) {
				t.Fatal("page not in chronological order")
			}
		}
		before = p.first
		if p.complete {
			if pageNo != 6 || len(p.results) != 10 || p.results[0].body != "0" {
				t.Fatalf("complete on page %d with %d results starting at %s", pageNo, len(p.results), p.results[0].body)
			}
			break
		}
		if pageNo > 7 {
			t.Fatal("no complete page")
		}
	}
	if len(seen) != n {
		t.Fatalf("backwards saw %d messages", len(seen))
	}

	// Bob's archive has the same messages, incoming.
	p := query(t, bob, queryIQ("bob", nil, []xml.TokenReader{rsmMax(5), rsmElem("before", "")}, false))
	if bodies(p.results) != "245,246,247,248,249" || p.complete {
		t.Fatalf("bob's last page %s complete=%v", bodies(p.results), p.complete)
	}
	if p.results[0].from != alice.LocalAddr().String() {
		t.Fatalf("archived from %s", p.results[0].from)
	}
}

// A delivered message carries the stanza ID it is archived under; stanza
// IDs forged in the recipient's name are removed, others kept.
func TestStanzaID(t *testing.T) { each(t, testStanzaID) }

func testStanzaID(t *testing.T, open func(*testing.T) backend) {
	e := start(t, open, mam.Options{})
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	bobJID := bob.LocalAddr().Bare()
	forged := stanza.Elem(xml.Name{Space: mam.NSSID, Local: "stanza-id"}, []xml.Attr{stanza.Attr("by", "Bob@localhost"), stanza.Attr("id", "forged")})
	other := stanza.Elem(xml.Name{Space: mam.NSSID, Local: "stanza-id"}, []xml.Attr{stanza.Attr("by", "room@muc.example"), stanza.Attr("id", "kept")})
	alice.Send(chat(bobJID, "s1", "hello", forged, other))
	got := bob.Expect(servertest.Body("hello"))
	ids := stanzaIDs(got)
	if len(ids) != 2 || ids["room@muc.example"] != "kept" || ids["bob@localhost"] == "" || ids["bob@localhost"] == "forged" {
		t.Fatalf("stanza ids %v in %s", ids, text(got))
	}
	p := query(t, bob, queryIQ("q", nil, nil, false))
	if len(p.results) != 1 || p.results[0].id != ids["bob@localhost"] {
		t.Fatalf("archived %+v, delivered id %s", p.results, ids["bob@localhost"])
	}

	// Not archived (a no-store hint), but the forged ID is still removed.
	alice.Send(chat(bobJID, "s2", "secret", forged, stanza.Elem(xml.Name{Space: mam.NSHints, Local: "no-store"}, nil)))
	got = bob.Expect(servertest.Body("secret"))
	if ids := stanzaIDs(got); len(ids) != 0 {
		t.Fatalf("stanza ids %v on an unarchived message", ids)
	}
	// Chat states are not archived either.
	cs := &stanza.Stanza{Kind: stanza.Message, Type: "chat", ID: "cs", To: bobJID}
	cs.AppendChild(stanza.Elem(xml.Name{Space: "http://jabber.org/protocol/chatstates", Local: "composing"}, nil))
	alice.Send(cs)
	bob.Expect(servertest.ByID("cs"))
	// OMEMO messages without a body are.
	om := &stanza.Stanza{Kind: stanza.Message, Type: "chat", ID: "om", To: bobJID}
	om.AppendChild(stanza.Elem(xml.Name{Space: "eu.siacs.conversations.axolotl", Local: "encrypted"}, nil))
	alice.Send(om)
	if got := bob.Expect(servertest.ByID("om")); stanzaIDs(got)["bob@localhost"] == "" {
		t.Fatalf("OMEMO message not archived: %s", text(got))
	}
	for _, c := range []*servertest.Client{alice, bob} {
		p := query(t, c, queryIQ("after", nil, nil, false))
		if len(p.results) != 2 || p.results[0].body != "hello" || p.results[1].body != "" {
			t.Fatalf("archive %+v", p.results)
		}
	}
}

// The form filters with, start, end, ids, before-id and after-id; unknown
// IDs are item-not-found, bad values bad-request.
func TestFilters(t *testing.T) { each(t, testFilters) }

func testFilters(t *testing.T, open func(*testing.T) backend) {
	e := start(t, open, mam.Options{})
	alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
	for i := range 10 {
		to := bob.LocalAddr().Bare()
		if i%2 == 1 {
			to = carol.LocalAddr().Bare()
		}
		alice.Send(chat(to, fmt.Sprint("m", i), fmt.Sprint(i)))
		alice.Sync()
	}
	all := query(t, alice, queryIQ("all", nil, nil, false))
	if bodies(all.results) != "0,1,2,3,4,5,6,7,8,9" || !all.complete || all.count != "10" {
		t.Fatalf("all: %s complete=%v count=%s", bodies(all.results), all.complete, all.count)
	}
	id := func(i int) string { return all.results[i].id }
	for _, tc := range []struct {
		name   string
		fields []field
		rsm    []xml.TokenReader
		flip   bool
		want   string
		cond   string
	}{
		{name: "with", fields: []field{{"with", []string{"carol@localhost"}}}, want: "1,3,5,7,9"},
		{name: "with full", fields: []field{{"with", []string{"carol@localhost/x"}}}, want: ""},
		{name: "start", fields: []field{{"start", []string{all.results[7].stamp}}}, want: "7,8,9"},
		{name: "end", fields: []field{{"end", []string{all.results[2].stamp}}}, want: "0,1,2"},
		{name: "start end with", fields: []field{{"start", []string{all.results[2].stamp}}, {"end", []string{all.results[6].stamp}}, {"with", []string{"bob@localhost"}}}, want: "2,4,6"},
		{name: "ids", fields: []field{{"ids", []string{id(3), id(8)}}}, want: "3,8"},
		{name: "after-id before-id", fields: []field{{"after-id", []string{id(2)}}, {"before-id", []string{id(6)}}}, want: "3,4,5"},
		{name: "before-id max", fields: []field{{"before-id", []string{id(6)}}}, rsm: []xml.TokenReader{rsmMax(2)}, want: "0,1"},
		{name: "rsm before max", fields: []field{{"before-id", []string{id(6)}}}, rsm: []xml.TokenReader{rsmMax(2), rsmElem("before", "")}, want: "4,5"},
		{name: "flip", rsm: []xml.TokenReader{rsmMax(3), rsmElem("after", id(5))}, flip: true, want: "8,7,6"},
		{name: "max 0", rsm: []xml.TokenReader{rsmMax(0)}, want: ""},
		{name: "unknown after", rsm: []xml.TokenReader{rsmElem("after", "12345")}, cond: "item-not-found"},
		{name: "unknown before", rsm: []xml.TokenReader{rsmElem("before", "x")}, cond: "item-not-found"},
		{name: "unknown after-id", fields: []field{{"after-id", []string{"99"}}}, cond: "item-not-found"},
		{name: "unknown ids", fields: []field{{"ids", []string{id(1), "99"}}}, cond: "item-not-found"},
		{name: "bad start", fields: []field{{"start", []string{"yesterday"}}}, cond: "bad-request"},
		{name: "bad with", fields: []field{{"with", []string{"@@"}}}, cond: "jid-malformed"},
		{name: "unknown field", fields: []field{{"{urn:example}search", []string{"x"}}}, cond: "feature-not-implemented"},
		{name: "index", rsm: []xml.TokenReader{rsmElem("index", "3")}, cond: "feature-not-implemented"},
		{name: "bad max", rsm: []xml.TokenReader{rsmElem("max", "-1")}, cond: "bad-request"},
		{name: "max twice", rsm: []xml.TokenReader{rsmMax(1), rsmMax(2)}, cond: "bad-request"},
		{name: "empty after", rsm: []xml.TokenReader{rsmElem("after", "")}, cond: "bad-request"},
		{name: "bad form", fields: []field{{"", []string{"x"}}}, cond: "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := query(t, alice, queryIQ(strings.ReplaceAll(tc.name, " ", "-"), tc.fields, tc.rsm, tc.flip))
			if tc.cond != "" {
				if got := string(modtest.Condition(p.iq)); got != tc.cond {
					t.Fatalf("condition %q, want %q", got, tc.cond)
				}
				return
			}
			modtest.MustResult(t, p.iq, jid.JID{})
			if got := bodies(p.results); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if tc.fields != nil && p.count != "" {
				t.Fatalf("count %s on a filtered query", p.count)
			}
		})
	}
}

// Preferences: never stops archiving from then on; the always and never
// lists override the default.
func TestPrefs(t *testing.T) { each(t, testPrefs) }

func testPrefs(t *testing.T, open func(*testing.T) backend) {
	e := start(t, open, mam.Options{})
	alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
	prefs := func(id, def string, always, never []string) *stanza.Stanza {
		list := func(local string, jids []string) xml.TokenReader {
			var c []xml.TokenReader
			for _, j := range jids {
				c = append(c, stanza.TextElem(xml.Name{Space: mam.NS, Local: "jid"}, j))
			}
			return stanza.Elem(xml.Name{Space: mam.NS, Local: local}, nil, c...)
		}
		var attrs []xml.Attr
		if def != "" {
			attrs = append(attrs, stanza.Attr("default", def))
		}
		return modtest.IQ(id, stanza.Set, jid.JID{}, stanza.Elem(xml.Name{Space: mam.NS, Local: "prefs"}, attrs, list("always", always), list("never", never)))
	}
	res := modtest.Do(t, alice, modtest.IQ("get", stanza.Get, jid.JID{}, modtest.Query(mam.NS, "prefs")))
	modtest.MustResult(t, res, jid.JID{})
	if !strings.Contains(text(res), `<prefs xmlns="urn:xmpp:mam:2" default="always"><always/><never/></prefs>`) {
		t.Fatalf("default prefs %s", text(res))
	}
	n := 0
	send := func(c *servertest.Client, to jid.JID, archived bool) {
		t.Helper()
		n++
		body := fmt.Sprint("b", n)
		c.Send(chat(to, body, body))
		c.Sync()
		p := query(t, c, queryIQ(body, nil, []xml.TokenReader{rsmMax(1), rsmElem("before", "")}, false))
		got := len(p.results) == 1 && p.results[0].body == body
		if got != archived {
			t.Fatalf("message %s archived %v, want %v", body, got, archived)
		}
	}
	send(alice, bob.LocalAddr().Bare(), true)

	res = modtest.Do(t, alice, prefs("never", "never", []string{"carol@localhost"}, nil))
	modtest.MustResult(t, res, jid.JID{})
	if !strings.Contains(text(res), `default="never"><always><jid>carol@localhost</jid></always><never/>`) {
		t.Fatalf("set answered %s", text(res))
	}
	send(alice, bob.LocalAddr().Bare(), false)
	send(alice, carol.LocalAddr(), true)
	// Incoming follows alice's prefs too: bob's message to alice is in
	// bob's archive, not in alice's.
	bob.Send(chat(alice.LocalAddr().Bare(), "in", "incoming"))
	if ids := stanzaIDs(alice.Expect(servertest.Body("incoming"))); len(ids) != 0 {
		t.Fatalf("message archived by alice despite never: %v", ids)
	}

	res = modtest.Do(t, alice, prefs("always", "always", nil, []string{"bob@localhost", "carol@localhost/other"}))
	modtest.MustResult(t, res, jid.JID{})
	send(alice, bob.LocalAddr(), false)
	send(alice, carol.LocalAddr().Bare(), true)
	send(alice, jid.MustParse("carol@localhost/other"), false)

	// The stored prefs survive a fresh module reading the same store.
	if b, err := e.store.Get(context.Background(), "alice@localhost", "mam:prefs"); err != nil || !strings.Contains(string(b), "bob@localhost") {
		t.Fatalf("stored prefs %q, %v", b, err)
	}
	res = modtest.Do(t, alice, prefs("bad", "sometimes", nil, nil))
	if c := modtest.Condition(res); c != "bad-request" {
		t.Fatalf("bad default: %q", c)
	}
	res = modtest.Do(t, alice, prefs("badjid", "", []string{"@"}, nil))
	if c := modtest.Condition(res); c != "jid-malformed" {
		t.Fatalf("bad jid: %q", c)
	}
}

// The roster mode archives only contacts in the roster.
func TestRosterMode(t *testing.T) {
	store := memory.New()
	r := rosterFunc(func(ctx context.Context, user, contact jid.JID) (storage.RosterItem, bool, error) {
		return storage.RosterItem{JID: contact.String()}, contact.Localpart() == "bob", nil
	})
	mod, err := mam.New(mam.Options{Default: mam.Roster}, mam.Deps{Archive: store, KV: store, Roster: r})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{mod}})
	e := &env{srv: srv, mod: mod, store: store}
	alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
	alice.Send(chat(bob.LocalAddr().Bare(), "1", "to bob"))
	alice.Send(chat(carol.LocalAddr().Bare(), "2", "to carol"))
	alice.Sync()
	p := query(t, alice, queryIQ("q", nil, nil, false))
	if bodies(p.results) != "to bob" {
		t.Fatalf("archived %s", bodies(p.results))
	}
}

type rosterFunc func(ctx context.Context, user, contact jid.JID) (storage.RosterItem, bool, error)

func (f rosterFunc) Item(ctx context.Context, user, contact jid.JID) (storage.RosterItem, bool, error) {
	return f(ctx, user, contact)
}

// Only the owner reads an archive.
func TestForbidden(t *testing.T) { each(t, testForbidden) }

func testForbidden(t *testing.T, open func(*testing.T) backend) {
	e := start(t, open, mam.Options{})
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	alice.Send(chat(bob.LocalAddr().Bare(), "1", "private"))
	alice.Sync()
	aliceJID := alice.LocalAddr().Bare()
	for _, st := range []*stanza.Stanza{
		queryIQ("q", nil, nil, false),
		modtest.IQ("m", stanza.Get, jid.JID{}, modtest.Query(mam.NS, "metadata")),
		modtest.IQ("p", stanza.Get, jid.JID{}, modtest.Query(mam.NS, "prefs")),
	} {
		st.To = aliceJID
		bob.Send(st)
		got := bob.Expect(func(s *stanza.Stanza) bool {
			return s.ID == st.ID || s.HasChild(xml.Name{Space: mam.NS, Local: "result"})
		})
		if c := modtest.Condition(got); c != "forbidden" {
			t.Fatalf("%s answered %s", st.ID, text(got))
		}
	}
	// The owner may address the archive by bare JID.
	st := queryIQ("own", nil, nil, false)
	st.To = aliceJID
	if p := query(t, alice, st); bodies(p.results) != "private" {
		t.Fatalf("own archive by bare JID: %s", text(p.iq))
	}
	info := modtest.DiscoInfo(t, alice, aliceJID)
	for _, f := range []string{mam.NS, mam.NSExtended, mam.NSSID} {
		if !modtest.HasFeature(info, f) {
			t.Fatalf("no feature %s", f)
		}
	}
}

// Sent messages are archived whether the recipient is online, offline or
// remote; a message to an address that is no account bounces and is not
// archived.
func TestOutgoing(t *testing.T) { each(t, testOutgoing) }

func testOutgoing(t *testing.T, open func(*testing.T) backend) {
	e := start(t, open, mam.Options{})
	alice := e.user(t, "alice")
	e.srv.AddUser(t, "offline", "pw")
	alice.Send(chat(jid.MustParse("offline@localhost"), "1", "to offline"))
	alice.Send(chat(jid.MustParse("nobody@localhost"), "2", "to nobody"))
	alice.Send(chat(jid.MustParse("someone@remote.example"), "3", "to remote"))
	// No offline module: the message to offline bounces too, after both
	// archives kept it.
	for _, id := range []string{"1", "2", "3"} {
		if got := alice.Expect(servertest.ByID(id)); !got.IsError() {
			t.Fatalf("message %s not bounced: %s", id, text(got))
		}
	}
	p := query(t, alice, queryIQ("q", nil, nil, false))
	if bodies(p.results) != "to offline,to remote" {
		t.Fatalf("archived %s", bodies(p.results))
	}
	if p.results[0].to != "offline@localhost" || p.results[0].from != alice.LocalAddr().String() {
		t.Fatalf("archived addresses %+v", p.results[0])
	}
	st, err := e.store.ArchiveStats(context.Background(), "offline@localhost")
	if err != nil || st.Count != 1 {
		t.Fatalf("offline user's archive %+v, %v", st, err)
	}
	// Messages to oneself are archived once.
	alice.Send(chat(alice.LocalAddr().Bare(), "self", "note to self"))
	got := alice.Expect(servertest.Body("note to self"))
	p = query(t, alice, queryIQ("q2", []field{{"with", []string{"alice@localhost"}}}, nil, false))
	if bodies(p.results) != "note to self" || p.results[0].id != stanzaIDs(got)["alice@localhost"] {
		t.Fatalf("self messages %+v, delivered %s", p.results, text(got))
	}
}

func TestMetadataAndForm(t *testing.T) { each(t, testMetadataAndForm) }

func testMetadataAndForm(t *testing.T, open func(*testing.T) backend) {
	e := start(t, open, mam.Options{})
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	meta := func() *stanza.Stanza {
		res := modtest.Do(t, alice, modtest.IQ(fmt.Sprint("meta", time.Now().UnixNano()), stanza.Get, jid.JID{}, modtest.Query(mam.NS, "metadata")))
		modtest.MustResult(t, res, jid.JID{})
		return res
	}
	if got := text(meta()); !strings.Contains(got, `<metadata xmlns="urn:xmpp:mam:2"/>`) {
		t.Fatalf("empty metadata %s", got)
	}
	for i := range 3 {
		alice.Send(chat(bob.LocalAddr().Bare(), fmt.Sprint(i), fmt.Sprint(i)))
	}
	alice.Sync()
	p := query(t, alice, queryIQ("q", nil, nil, false))
	m := meta()
	_, s, _ := find(m.Inner, "start")
	_, en, _ := find(m.Inner, "end")
	if attr(s, "id") != p.results[0].id || attr(en, "id") != p.results[2].id || attr(s, "timestamp") != p.results[0].stamp {
		t.Fatalf("metadata %s for %+v", text(m), p.results)
	}

	res := modtest.Do(t, alice, modtest.IQ("form", stanza.Get, jid.JID{}, modtest.Query(mam.NS, "query")))
	modtest.MustResult(t, res, jid.JID{})
	for _, v := range []string{"with", "start", "end", "before-id", "after-id", "ids"} {
		if !strings.Contains(text(res), `var="`+v+`"`) {
			t.Fatalf("form lacks %s: %s", v, text(res))
		}
	}
	var f *form.Form
	for i, tok := range res.Inner {
		if se, ok := tok.(xml.StartElement); ok && se.Name.Space == form.NS && se.Name.Local == "x" {
			var err error
			if f, err = form.Parse(stanza.Tokens(res.Inner[i:]...)); err != nil {
				t.Fatalf("form %s: %v", text(res), err)
			}
		}
	}
	if f.FormType() != mam.NS || f.Field("ids") == nil || f.Field("ids").Type != form.ListMulti ||
		!strings.Contains(fmt.Sprint(f.Field("ids").Extra), "{http://jabber.org/protocol/xdata-validate open}") {
		t.Fatalf("form %+v", f)
	}
}

// The janitor removes messages older than the retention period.
func TestRetention(t *testing.T) { each(t, testRetention) }

func testRetention(t *testing.T, open func(*testing.T) backend) {
	e := start(t, open, mam.Options{Retention: time.Hour})
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	alice.Send(chat(bob.LocalAddr().Bare(), "1", "fleeting"))
	if ids := stanzaIDs(bob.Expect(servertest.Body("fleeting"))); ids["bob@localhost"] == "" {
		t.Fatal("not archived")
	}
	alice.Sync()
	if rep := e.srv.RunJanitor(context.Background(), time.Now()); rep.Removed["mam"] != 0 || rep.Err != nil {
		t.Fatalf("janitor within the retention: %+v", rep)
	}
	rep := e.srv.RunJanitor(context.Background(), time.Now().Add(2*time.Hour))
	if rep.Removed["mam"] != 2 || rep.Err != nil || rep.Backlog { // alice's copy and bob's
		t.Fatalf("janitor after the retention: %+v", rep)
	}
	st, err := e.store.ArchiveStats(context.Background(), "bob@localhost")
	if err != nil || st.Count != 0 {
		t.Fatalf("bob's archive after the janitor: %+v, %v", st, err)
	}
	if p := query(t, bob, queryIQ("q", nil, nil, false)); len(p.results) != 0 {
		t.Fatalf("expired message returned: %+v", p.results)
	}
}

func TestOptions(t *testing.T) {
	store := memory.New()
	for _, o := range []mam.Options{
		{Default: "sometimes"},
		{Retention: -time.Hour},
		{Retention: 11 * 365 * 24 * time.Hour},
		{MaxPage: 251},
	} {
		if _, err := mam.New(o, mam.Deps{Archive: store, KV: store}); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	if _, err := mam.New(mam.Options{}, mam.Deps{KV: store}); err == nil {
		t.Error("nil archive accepted")
	}
	if _, err := mam.New(mam.Options{}, mam.Deps{Archive: store}); err == nil {
		t.Error("nil key-value store accepted")
	}
}

// Deleting the account deletes the archive and the preferences; export
// writes both first.
func TestDeleteAndExportUser(t *testing.T) { each(t, testDeleteAndExportUser) }

func testDeleteAndExportUser(t *testing.T, open func(*testing.T) backend) {
	e := start(t, open, mam.Options{})
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	res := modtest.Do(t, alice, modtest.IQ("p", stanza.Set, jid.JID{}, stanza.Elem(xml.Name{Space: mam.NS, Local: "prefs"}, []xml.Attr{stanza.Attr("default", "always")})))
	modtest.MustResult(t, res, jid.JID{})
	alice.Send(chat(bob.LocalAddr().Bare(), "1", "a < b & c"))
	alice.Sync()
	ctx := context.Background()
	aliceJID := jid.MustParse("alice@localhost")

	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if err := e.srv.ExportUser(ctx, aliceJID, enc); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{`<archive xmlns="urn:xmpp:pie:0#mam">`, `default="always"`, `<result xmlns="urn:xmpp:mam:2" id="`, `a &lt; b &amp; c`, `to="bob@localhost"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("export lacks %s: %s", want, out)
		}
	}
	// The export parses.
	d := xml.NewDecoder(strings.NewReader(out))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("export does not parse: %v", err)
			}
			break
		}
	}

	if err := e.srv.DeleteUser(ctx, aliceJID); err != nil {
		t.Fatal(err)
	}
	if st, err := e.store.ArchiveStats(ctx, "alice@localhost"); err != nil || st.Count != 0 {
		t.Fatalf("archive after deletion %+v, %v", st, err)
	}
	if _, err := e.store.Get(ctx, "alice@localhost", "mam:prefs"); err == nil {
		t.Fatal("prefs kept after deletion")
	}
	if st, _ := e.store.ArchiveStats(ctx, "bob@localhost"); st.Count != 1 {
		t.Fatalf("bob's archive %+v", st)
	}
}

// The ad-hoc command asks for confirmation, then wipes the archive;
// cancelling or not confirming keeps it.
func TestDeleteCommand(t *testing.T) { each(t, testDeleteCommand) }

func testDeleteCommand(t *testing.T, open func(*testing.T) backend) {
	e := start(t, open, mam.Options{}, func(m *mam.Module) server.Module {
		a, err := adhoc.New(adhoc.Options{}, adhoc.Deps{Commands: []adhoc.Command{m.DeleteArchiveCommand()}})
		if err != nil {
			t.Fatal(err)
		}
		return a
	})
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	for i := range 3 {
		alice.Send(chat(bob.LocalAddr().Bare(), fmt.Sprint(i), fmt.Sprint(i)))
	}
	alice.Sync()
	host := jid.MustParse("localhost")
	n := 0
	run := func(action, sid string, confirm string) *stanza.Stanza {
		n++
		attrs := []xml.Attr{stanza.Attr("node", mam.DeleteNode), stanza.Attr("action", action)}
		if sid != "" {
			attrs = append(attrs, stanza.Attr("sessionid", sid))
		}
		var children []xml.TokenReader
		if confirm != "" {
			f := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "confirm", Values: []string{confirm}}}}
			children = append(children, f.TokenReader())
		}
		res := modtest.Do(t, alice, modtest.IQ(fmt.Sprint("cmd", n), stanza.Set, host, stanza.Elem(xml.Name{Space: adhoc.NS, Local: "command"}, attrs, children...)))
		modtest.MustResult(t, res, host)
		return res
	}
	count := func() int {
		st, err := e.store.ArchiveStats(context.Background(), "alice@localhost")
		if err != nil {
			t.Fatal(err)
		}
		return st.Count
	}
	sessionOf := func(st *stanza.Stanza) (sid, status string) {
		_, c, _ := find(st.Inner, "command")
		if !strings.Contains(text(st), `var="confirm"`) && attr(c, "status") == "executing" {
			t.Fatalf("no confirm field: %s", text(st))
		}
		return attr(c, "sessionid"), attr(c, "status")
	}

	sid, status := sessionOf(run("execute", "", ""))
	if status != "executing" {
		t.Fatalf("status %s", status)
	}
	if _, status := sessionOf(run("cancel", sid, "")); status != "canceled" || count() != 3 {
		t.Fatalf("cancel: %s, %d messages", status, count())
	}
	sid, _ = sessionOf(run("execute", "", ""))
	if _, status := sessionOf(run("complete", sid, "0")); status != "completed" || count() != 3 {
		t.Fatalf("not confirmed: %s, %d messages", status, count())
	}
	sid, _ = sessionOf(run("execute", "", ""))
	res := run("complete", sid, "1")
	if _, status := sessionOf(res); status != "completed" || count() != 0 || !strings.Contains(text(res), "deleted") {
		t.Fatalf("confirmed: %s, %d messages", text(res), count())
	}
	if st, _ := e.store.ArchiveStats(context.Background(), "bob@localhost"); st.Count != 3 {
		t.Fatalf("bob's archive touched: %+v", st)
	}
	// Archiving goes on.
	alice.Send(chat(bob.LocalAddr().Bare(), "after", "after"))
	alice.Sync()
	if count() != 1 {
		t.Fatalf("%d messages after deletion", count())
	}
}

// A sender's archive keeps no stanza ID the sender forged in its name.
func TestOutgoingForgedID(t *testing.T) { each(t, testOutgoingForgedID) }

func testOutgoingForgedID(t *testing.T, open func(*testing.T) backend) {
	e := start(t, open, mam.Options{})
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	forged := stanza.Elem(xml.Name{Space: mam.NSSID, Local: "stanza-id"}, []xml.Attr{stanza.Attr("by", "alice@localhost"), stanza.Attr("id", "forged")})
	alice.Send(chat(bob.LocalAddr().Bare(), "1", "hi", forged))
	alice.Sync()
	alice.Send(queryIQ("q", nil, nil, false))
	res := alice.Expect(func(s *stanza.Stanza) bool { return s.HasChild(xml.Name{Space: mam.NS, Local: "result"}) })
	if got := text(res); !strings.Contains(got, "<body>hi</body>") || strings.Contains(got, "forged") {
		t.Fatalf("archived %s", got)
	}
	alice.Expect(servertest.ByID("q"))
}

// TestServerFeatures: the archive is advertised in the server's
// disco#info too (as Prosody and ejabberd do), since clients such as
// Profanity 0.13 look for it there before fetching history; stanza IDs
// stay an account feature.
func TestServerFeatures(t *testing.T) {
	e := start(t, backends[0].open, mam.Options{})
	alice := e.user(t, "alice")
	info := modtest.DiscoInfo(t, alice, jid.MustParse("localhost"))
	for _, f := range []string{mam.NS, mam.NSExtended} {
		if !modtest.HasFeature(info, f) {
			t.Errorf("server disco#info lacks %s: %s", f, text(info))
		}
	}
	if modtest.HasFeature(info, mam.NSSID) {
		t.Errorf("server disco#info lists %s, an account feature: %s", mam.NSSID, text(info))
	}
}

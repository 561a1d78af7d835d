package private_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/private"
	"github.com/kiez-im/kiez/modules/vcard"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/memory"
)

// store is what the tests need of a backend: accounts for the server,
// KV for the module.
type store interface {
	storage.Accounts
	storage.KV
}

func memoryStore(t *testing.T) store { return memory.New() }

func bboltStore(t *testing.T) store {
	s, err := bbolt.Open(filepath.Join(t.TempDir(), "kiez.db"), bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// start runs a server with the private module (and any extra modules) on
// st and adds alice and bob.
func start(t *testing.T, st store, opts private.Options, extra ...server.Module) (srv *servertest.Server, alice, bob jid.JID) {
	t.Helper()
	m, err := private.New(opts, private.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv = servertest.Start(t, server.Config{Accounts: st, Modules: append([]server.Module{m}, extra...)})
	return srv, srv.AddUser(t, "alice", "pw-alice"), srv.AddUser(t, "bob", "pw-bob")
}

const bookmarks = `<storage xmlns='storage:bookmarks'>` +
	`<conference name='Council' autojoin='true' jid='council@conference.example.org'><nick>alice</nick></conference>` +
	`<url name='Docs' url='https://example.org/a?b=c&amp;d'/></storage>`

const notes = `<storage xmlns='storage:rosternotes'><note jid='bob@example.org' cdate='2024-01-01T00:00:00Z'>owes me &lt;3&gt; beers</note></storage>`

// elements parses every top-level element of s into tokens with explicit
// namespaces.
func elements(t *testing.T, s string) []xml.Token {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	var toks []xml.Token
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return toks
		}
		if err != nil {
			t.Fatal(err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		inner, err := stanza.ReadElement(d, 0)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, stanza.Resolve(stanza.Tokens(se.Copy(), se.End()), "")[0])
		toks = append(toks, inner...)
		toks = append(toks, se.End())
	}
}

// find returns the first element named name in s (a whole document or
// fragment), or nil.
func find(t *testing.T, s string, name xml.Name) []xml.Token {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name != name {
			continue
		}
		inner, err := stanza.ReadElement(d, 0)
		if err != nil {
			t.Fatal(err)
		}
		toks := stanza.Resolve(stanza.Tokens(se.Copy(), se.End()), "")[:1]
		return append(append(toks, inner...), se.End())
	}
}

func serialise(t *testing.T, toks []xml.Token) string {
	t.Helper()
	var b bytes.Buffer
	if err := stanza.WriteTokens(&b, toks, ""); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// canon is the serialised form of the elements in s.
func canon(t *testing.T, s string) string { return serialise(t, elements(t, s)) }

var queryName = xml.Name{Space: private.NS, Local: "query"}

// query builds a private XML iq whose query holds the elements in inner
// (XML text, possibly several elements or none).
func query(t *testing.T, id, typ string, to jid.JID, inner string) *stanza.Stanza {
	return modtest.IQ(id, typ, to, stanza.Elem(queryName, nil, stanza.Tokens(elements(t, inner)...)))
}

// content returns the serialised children of the query in an iq result.
func content(t *testing.T, res *stanza.Stanza) string {
	t.Helper()
	_, r, ok := res.Child(queryName)
	if !ok {
		t.Fatal("result without <query xmlns='jabber:iq:private'/>")
	}
	var toks []xml.Token
	for tok, err := r.Token(); err == nil; tok, err = r.Token() {
		toks = append(toks, tok)
	}
	return serialise(t, toks[1:len(toks)-1])
}

// TestRoundTrip: bookmarks and roster notes are stored independently and
// read back unchanged; an unset item reads as the empty element.
func TestRoundTrip(t *testing.T) {
	for _, backend := range []struct {
		name string
		new  func(t *testing.T) store
	}{{"memory", memoryStore}, {"bbolt", bboltStore}} {
		t.Run(backend.name, func(t *testing.T) {
			st := backend.new(t)
			srv, alice, bob := start(t, st, private.Options{})
			a := srv.Connect(t, alice, "pw-alice")
			b := srv.Connect(t, bob, "pw-bob")

			get := func(c *servertest.Client, id, inner string) string {
				t.Helper()
				res := modtest.Do(t, c, query(t, id, stanza.Get, jid.JID{}, inner))
				modtest.MustResult(t, res, jid.JID{})
				return content(t, res)
			}
			set := func(c *servertest.Client, id string, to jid.JID, inner string) {
				t.Helper()
				res := modtest.Do(t, c, query(t, id, stanza.Set, to, inner))
				modtest.MustResult(t, res, jid.JID{})
				if len(res.Inner) != 0 {
					t.Fatalf("set result has %d child tokens", len(res.Inner))
				}
			}
			emptyBookmarks := canon(t, `<storage xmlns='storage:bookmarks'/>`)
			emptyNotes := canon(t, `<storage xmlns='storage:rosternotes'/>`)

			if got := get(a, "g0", `<storage xmlns='storage:bookmarks'/>`); got != emptyBookmarks {
				t.Fatalf("bookmarks before set = %s", got)
			}
			set(a, "s1", jid.JID{}, bookmarks)
			set(a, "s2", alice, notes) // to her own bare JID
			if got := get(a, "g1", `<storage xmlns='storage:bookmarks'/>`); got != canon(t, bookmarks) {
				t.Fatalf("bookmarks = %s\nwant %s", got, canon(t, bookmarks))
			}
			if got := get(a, "g2", `<storage xmlns='storage:rosternotes'/>`); got != canon(t, notes) {
				t.Fatalf("notes = %s\nwant %s", got, canon(t, notes))
			}
			// Same namespace, other element name: another item.
			if got := get(a, "g3", `<other xmlns='storage:bookmarks'/>`); got != canon(t, `<other xmlns='storage:bookmarks'/>`) {
				t.Fatalf("other element in the bookmarks namespace = %s", got)
			}
			// Bob has his own, empty, storage.
			if got := get(b, "g4", `<storage xmlns='storage:bookmarks'/>`); got != emptyBookmarks {
				t.Fatalf("bob's bookmarks = %s", got)
			}

			// Replacing one namespace leaves the other.
			newer := `<storage xmlns='storage:bookmarks'><url name='New' url='https://example.net/'/></storage>`
			set(a, "s3", jid.JID{}, newer)
			if got := get(a, "g5", `<storage xmlns='storage:bookmarks'/>`); got != canon(t, newer) {
				t.Fatalf("bookmarks after replacing = %s", got)
			}
			if got := get(a, "g6", `<storage xmlns='storage:rosternotes'/>`); got != canon(t, notes) {
				t.Fatalf("notes after replacing bookmarks = %s", got)
			}
			keys, err := st.Keys(t.Context(), alice.String())
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"private:{storage:bookmarks}storage", "private:{storage:rosternotes}storage"}
			if !slices.Equal(keys, want) {
				t.Fatalf("stored keys %q, want %q", keys, want)
			}

			// Storing the empty element clears the item.
			set(a, "s4", jid.JID{}, `<storage xmlns='storage:rosternotes'/>`)
			if got := get(a, "g7", `<storage xmlns='storage:rosternotes'/>`); got != emptyNotes {
				t.Fatalf("notes after clearing = %s", got)
			}
			if _, err := st.Get(t.Context(), alice.String(), "private:{storage:rosternotes}storage"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("cleared item still stored: %v", err)
			}
		})
	}
}

// TestRefused: the namespace rules of XEP-0049 §3.
func TestRefused(t *testing.T) {
	st := memoryStore(t)
	srv, alice, _ := start(t, st, private.Options{})
	a := srv.Connect(t, alice, "pw-alice")
	for _, tc := range []struct {
		name  string
		inner string
		cond  mstanza.Condition
	}{
		{"jabber:client", `<storage xmlns='jabber:client'/>`, mstanza.NotAcceptable},
		{"jabber:server", `<storage xmlns='jabber:server'><x/></storage>`, mstanza.NotAcceptable},
		{"jabber:iq:private", `<query xmlns='jabber:iq:private'><x xmlns='urn:x'/></query>`, mstanza.NotAcceptable},
		{"inherited jabber:iq:private", `<storage/>`, mstanza.NotAcceptable},
		{"no namespace", `<storage xmlns=''/>`, mstanza.NotAcceptable},
		{"no child", ``, mstanza.BadRequest},
		{"text only", `text`, mstanza.BadRequest},
		{"two children", `<a xmlns='urn:a'/><b xmlns='urn:b'/>`, mstanza.BadRequest},
	} {
		for _, typ := range []string{stanza.Get, stanza.Set} {
			t.Run(tc.name+" "+typ, func(t *testing.T) {
				// Raw XML, so that what is sent is exactly what the case
				// says (the builders would fill in empty namespaces).
				id := strings.ReplaceAll(tc.name, " ", "-") + "-" + typ
				if err := a.SendRaw(`<iq type='` + typ + `' id='` + id + `'><query xmlns='jabber:iq:private'>` + tc.inner + `</query></iq>`); err != nil {
					t.Fatal(err)
				}
				res := a.Expect(servertest.ByID(id))
				if got := modtest.Condition(res); got != tc.cond {
					t.Fatalf("condition %q, want %q", got, tc.cond)
				}
				var b bytes.Buffer
				res.WriteTo(&b)
				if !strings.Contains(b.String(), `type="modify"`) {
					t.Fatalf("error type: %s", b.String())
				}
			})
		}
	}
	if keys, _ := st.Keys(t.Context(), alice.String()); len(keys) != 0 {
		t.Fatalf("refused sets stored %q", keys)
	}
}

// TestOtherUserForbidden: nobody reads or writes another's private XML.
func TestOtherUserForbidden(t *testing.T) {
	st := memoryStore(t)
	srv, alice, bob := start(t, st, private.Options{})
	a := srv.Connect(t, alice, "pw-alice")
	b := srv.Connect(t, bob, "pw-bob")
	modtest.MustResult(t, modtest.Do(t, a, query(t, "own", stanza.Set, jid.JID{}, bookmarks)), jid.JID{})
	for _, typ := range []string{stanza.Get, stanza.Set} {
		res := modtest.Do(t, b, query(t, "other-"+typ, typ, alice, `<storage xmlns='storage:bookmarks'/>`))
		if got := modtest.Condition(res); got != mstanza.Forbidden {
			t.Fatalf("%s to alice: condition %q, want forbidden", typ, got)
		}
		if strings.Contains(serialise(t, res.Inner), "Council") {
			t.Fatalf("error reveals alice's bookmarks: %s", serialise(t, res.Inner))
		}
	}
	stored, err := st.Get(t.Context(), alice.String(), "private:{storage:bookmarks}storage")
	if err != nil || !strings.Contains(string(stored), "Council") {
		t.Fatalf("alice's bookmarks after bob's set: %q, %v", stored, err)
	}
}

// TestLimits: an item over MaxSize is refused with not-acceptable, an item
// past MaxItems with resource-constraint; replacing an item is always
// allowed.
func TestLimits(t *testing.T) {
	item := func(ns string, n int) string {
		return `<x xmlns='` + ns + `'>` + strings.Repeat("a", n) + `</x>`
	}
	limit := len(canon(t, item("urn:0", 100)))
	st := memoryStore(t)
	srv, alice, _ := start(t, st, private.Options{MaxSize: limit, MaxItems: 3})
	a := srv.Connect(t, alice, "pw-alice")
	do := func(id, inner string) *stanza.Stanza {
		return modtest.Do(t, a, query(t, id, stanza.Set, jid.JID{}, inner))
	}
	modtest.MustResult(t, do("fits", item("urn:0", 100)), jid.JID{})
	res := do("too-big", item("urn:0", 101))
	if got := modtest.Condition(res); got != mstanza.NotAcceptable {
		t.Fatalf("one byte over MaxSize: condition %q", got)
	}
	modtest.MustResult(t, do("1", item("urn:1", 1)), jid.JID{})
	modtest.MustResult(t, do("2", item("urn:2", 1)), jid.JID{})
	res = do("3", item("urn:3", 1))
	if got := modtest.Condition(res); got != mstanza.ResourceConstraint {
		t.Fatalf("item past MaxItems: condition %q", got)
	}
	var b bytes.Buffer
	res.WriteTo(&b)
	if !strings.Contains(b.String(), `type="wait"`) {
		t.Fatalf("error type: %s", b.String())
	}
	// Replacing an existing item is not a new item.
	modtest.MustResult(t, do("replace", item("urn:2", 50)), jid.JID{})
	// Clearing one makes room.
	modtest.MustResult(t, do("clear", `<x xmlns='urn:1'/>`), jid.JID{})
	modtest.MustResult(t, do("3 again", item("urn:3", 1)), jid.JID{})
	keys, _ := st.Keys(t.Context(), alice.String())
	if want := []string{"private:{urn:0}x", "private:{urn:2}x", "private:{urn:3}x"}; !slices.Equal(keys, want) {
		t.Fatalf("keys %q, want %q", keys, want)
	}
	// Keys of other modules do not count.
	if err := st.Put(t.Context(), alice.String(), "vcard", []byte("<vCard xmlns='vcard-temp'/>")); err != nil {
		t.Fatal(err)
	}
	modtest.MustResult(t, do("replace 3", item("urn:3", 2)), jid.JID{})
}

// TestDeleteAndExport: the export holds every item; deleting the account
// removes them, and only them.
func TestDeleteAndExport(t *testing.T) {
	for _, backend := range []struct {
		name string
		new  func(t *testing.T) store
	}{{"memory", memoryStore}, {"bbolt", bboltStore}} {
		t.Run(backend.name, func(t *testing.T) {
			st := backend.new(t)
			srv, alice, bob := start(t, st, private.Options{})
			a := srv.Connect(t, alice, "pw-alice")
			b := srv.Connect(t, bob, "pw-bob")
			modtest.MustResult(t, modtest.Do(t, a, query(t, "1", stanza.Set, jid.JID{}, bookmarks)), jid.JID{})
			modtest.MustResult(t, modtest.Do(t, a, query(t, "2", stanza.Set, jid.JID{}, notes)), jid.JID{})
			modtest.MustResult(t, modtest.Do(t, b, query(t, "3", stanza.Set, jid.JID{}, bookmarks)), jid.JID{})

			var buf bytes.Buffer
			enc := xml.NewEncoder(&buf)
			if err := srv.ExportUser(t.Context(), alice, enc); err != nil {
				t.Fatal(err)
			}
			enc.Flush()
			user := find(t, buf.String(), xml.Name{Space: server.NSPIE, Local: "user"})
			q := find(t, serialise(t, user), queryName)
			if q == nil {
				t.Fatalf("export lacks <query xmlns='jabber:iq:private'/>: %s", buf.String())
			}
			// Items in key order: bookmarks, then roster notes.
			if got, want := serialise(t, q[1:len(q)-1]), canon(t, bookmarks+notes); got != want {
				t.Fatalf("exported items\n%s\nwant\n%s", got, want)
			}

			if err := srv.DeleteUser(t.Context(), alice); err != nil {
				t.Fatal(err)
			}
			if keys, err := st.Keys(context.Background(), alice.String()); err != nil || len(keys) != 0 {
				t.Fatalf("alice's keys after deleting the account: %q, %v", keys, err)
			}
			if keys, _ := st.Keys(context.Background(), bob.String()); len(keys) != 1 {
				t.Fatalf("bob's keys after deleting alice: %q", keys)
			}
		})
	}
}

// TestDeleteUserOnlyOwnKeys: with vcard and private on one store, each
// module deletes only its keys; the export of a user without items has
// no query.
func TestDeleteUserOnlyOwnKeys(t *testing.T) {
	st := memory.New()
	p, err := private.New(private.Options{}, private.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	const user = "alice@example.org"
	for _, k := range []string{"vcard", "private:{urn:a}a", "private:{urn:b}b", "privateer"} {
		if err := st.Put(t.Context(), user, k, []byte("<x xmlns='urn:x'/>")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.DeleteUser(t.Context(), jid.MustParse(user+"/phone")); err != nil {
		t.Fatal(err)
	}
	if keys, _ := st.Keys(t.Context(), user); !slices.Equal(keys, []string{"privateer", "vcard"}) {
		t.Fatalf("keys after private's DeleteUser: %q", keys)
	}
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if err := p.ExportUser(t.Context(), jid.MustParse(user), enc); err != nil {
		t.Fatal(err)
	}
	enc.Flush()
	if buf.Len() != 0 {
		t.Fatalf("export without items: %s", buf.String())
	}
}

// TestWithVCard: both modules on one server and store; deleting the
// account removes the data of both and nothing of bob's.
func TestWithVCard(t *testing.T) {
	st := memoryStore(t)
	v, err := vcard.New(vcard.Options{}, vcard.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv, alice, bob := start(t, st, private.Options{}, v)
	a := srv.Connect(t, alice, "pw-alice")
	b := srv.Connect(t, bob, "pw-bob")
	vc := modtest.IQ("v", stanza.Set, jid.JID{}, stanza.Tokens(elements(t, `<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>`)...))
	modtest.MustResult(t, modtest.Do(t, a, vc), jid.JID{})
	modtest.MustResult(t, modtest.Do(t, a, query(t, "p", stanza.Set, jid.JID{}, bookmarks)), jid.JID{})
	modtest.MustResult(t, modtest.Do(t, b, query(t, "pb", stanza.Set, jid.JID{}, bookmarks)), jid.JID{})
	if keys, _ := st.Keys(t.Context(), alice.String()); len(keys) != 2 {
		t.Fatalf("alice's keys %q", keys)
	}
	if err := srv.DeleteUser(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	if keys, _ := st.Keys(t.Context(), alice.String()); len(keys) != 0 {
		t.Fatalf("alice's keys after deletion: %q", keys)
	}
	if keys, _ := st.Keys(t.Context(), bob.String()); len(keys) != 1 {
		t.Fatalf("bob's keys after alice's deletion: %q", keys)
	}
}

func TestFeature(t *testing.T) {
	srv, alice, _ := start(t, memoryStore(t), private.Options{})
	a := srv.Connect(t, alice, "pw-alice")
	if info := modtest.DiscoInfo(t, a, jid.MustParse(srv.Domain)); !modtest.HasFeature(info, private.NS) {
		t.Fatalf("server disco#info features %v lack %s", modtest.Features(info), private.NS)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  private.Options
		store storage.KV
	}{
		{"no store", private.Options{}, nil},
		{"negative size", private.Options{MaxSize: -1}, memory.New()},
		{"negative items", private.Options{MaxItems: -1}, memory.New()},
	} {
		if _, err := private.New(tc.opts, private.Deps{Store: tc.store}); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

// TestLimitConcurrent: sets from several sessions at once cannot pass
// MaxItems.
func TestLimitConcurrent(t *testing.T) {
	const max = 5
	st := memoryStore(t)
	srv, alice, _ := start(t, st, private.Options{MaxItems: max})
	var clients []*servertest.Client
	for i := range 4 {
		clients = append(clients, srv.Connect(t, jid.MustParse(alice.String()+"/r"+strconv.Itoa(i)), "pw-alice"))
	}
	for i := range 40 {
		ns := "urn:item:" + strconv.Itoa(i)
		clients[i%len(clients)].Send(query(t, "c"+strconv.Itoa(i), stanza.Set, jid.JID{}, `<x xmlns='`+ns+`'><y/></x>`))
	}
	ok := 0
	for i := range 40 {
		res := clients[i%len(clients)].Expect(servertest.ByID("c" + strconv.Itoa(i)))
		if res.Type == stanza.Result {
			ok++
		}
	}
	keys, _ := st.Keys(t.Context(), alice.String())
	if ok != max || len(keys) != max {
		t.Fatalf("%d sets accepted, %d items stored; want %d", ok, len(keys), max)
	}
}

package caps_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/caps"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	capsinfo "github.com/kiez-im/kiez/stanza/caps"
)

const (
	nsTune   = "http://jabber.org/protocol/tune"
	nsMUC    = "http://jabber.org/protocol/muc"
	nsAvatar = "urn:xmpp:avatar:metadata"
)

// client software: what its disco#info says.
var (
	exodus = capsinfo.Info{
		Identities: []capsinfo.Identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}},
		Features: []string{capsinfo.NS, "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
			nsMUC, nsTune + "+notify"},
	}
	psi = capsinfo.Info{
		Identities: []capsinfo.Identity{{Category: "client", Type: "pc", Lang: "en", Name: "Psi"}},
		Features:   []string{capsinfo.NS, nsAvatar + "+notify"},
		Forms: []capsinfo.Form{{FormType: "urn:xmpp:dataforms:softwareinfo", Fields: []capsinfo.Field{
			{Var: "software", Values: []string{"Psi"}}, {Var: "os", Values: []string{"Linux"}}}}},
	}
)

// capsOf returns the <c/> a client of that software sends.
func capsOf(t *testing.T, in capsinfo.Info, node string) capsinfo.Caps {
	t.Helper()
	ver, err := in.Ver(capsinfo.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	return capsinfo.Caps{Hash: capsinfo.SHA1, Node: node, Ver: ver}
}

type watched struct {
	full  jid.JID
	feats caps.Features
}

// env is a server with the caps module and the accounts alice, bob and
// carol.
type env struct {
	srv     *servertest.Server
	mod     *caps.Module
	watched chan watched
	started atomic.Int32   // queries begun
	done    chan bool      // an answer taken (verified or not) or timed out
	vers    chan [2]string // hash and ver of each query begun
	opts    caps.Options
	t       *testing.T
	clients map[string]*client // by resource
}

func setup(t *testing.T, opts caps.Options) *env {
	t.Helper()
	e := &env{mod: modtest.Must(caps.New(opts, caps.Deps{})), watched: make(chan watched, 64),
		done: make(chan bool, 64), vers: make(chan [2]string, 64), t: t, opts: opts}
	e.mod.Watch(func(ctx context.Context, full jid.JID, feats caps.Features) {
		if ctx == nil {
			t.Error("listener without a context")
		}
		e.watched <- watched{full, feats}
	})
	caps.SetHooks(e.mod, func(hash, ver string) {
		e.started.Add(1)
		e.vers <- [2]string{hash, ver}
	}, func(hash, ver string, verified bool) { e.done <- verified })
	e.srv = servertest.Start(t, server.Config{Modules: []server.Module{e.mod}})
	for _, u := range []string{"alice", "bob", "carol"} {
		e.srv.AddUser(t, u, "pw-"+u)
	}
	return e
}

// watch waits for the listener to be told of full.
func (e *env) watch(full jid.JID) caps.Features {
	e.t.Helper()
	select {
	case w := <-e.watched:
		if !w.full.Equal(full) {
			e.t.Fatalf("listener told of %s, want %s", w.full, full)
		}
		return w.feats
	case <-time.After(patience):
		e.t.Fatalf("listener not told of %s: hung?", full)
	}
	return caps.Features{}
}

// noWatch fails the test if the listener was told of anything.
func (e *env) noWatch() {
	e.t.Helper()
	select {
	case w := <-e.watched:
		e.t.Fatalf("listener told of %s", w.full)
	default:
	}
}

// waitDone waits for a query's end and returns whether it verified.
func (e *env) waitDone() bool {
	e.t.Helper()
	select {
	case ok := <-e.done:
		return ok
	case <-time.After(patience):
		e.t.Fatal("query did not end: hung?")
	}
	return false
}

// known fails the test unless full's features are known and are in's.
func (e *env) known(full jid.JID, in capsinfo.Info) caps.Features {
	e.t.Helper()
	f, ok := e.mod.Features(full)
	if !ok {
		e.t.Fatalf("features of %s unknown", full)
	}
	if !slices.Equal(slices.Collect(f.All()), slices.Sorted(slices.Values(in.Features))) {
		e.t.Fatalf("features of %s: %v, want %v", full, slices.Collect(f.All()), in.Features)
	}
	return f
}

func (e *env) unknown(full jid.JID) {
	e.t.Helper()
	if f, ok := e.mod.Features(full); ok {
		e.t.Fatalf("features of %s known: %v", full, slices.Collect(f.All()))
	}
}

func (e *env) queries() int { return int(e.started.Load()) }

// A client's caps are asked for with node#ver and verified; its
// features are known and the listener told. A second resource with the
// same ver is not asked: its features are known at once.
func TestVerified(t *testing.T) {
	e := setup(t, caps.Options{})
	a := login(t, e.srv, "alice@localhost/a")
	cs := capsOf(t, exodus, "http://code.google.com/p/exodus")
	e.unknown(a.jid)
	a.presence(cs)
	q := a.expectQuery()
	if q.node() != cs.Node+"#"+cs.Ver || q.iq.From.String() != "localhost" || q.iq.Type != stanza.Get {
		t.Fatalf("query from %s for node %q", q.iq.From, q.node())
	}
	q.answer(exodus)
	feats := e.watch(a.jid)
	if !feats.Has(nsMUC) || feats.Has(nsAvatar) || !feats.Notify(nsTune) || feats.Notify(nsMUC) || feats.Len() != len(exodus.Features) {
		t.Fatalf("told %v", slices.Collect(feats.All()))
	}
	e.known(a.jid, exodus)

	// Another resource with the same ver: known at once, on the
	// presence's path, no second query.
	b := login(t, e.srv, "alice@localhost/b")
	b.presence(cs)
	b.sync()
	e.known(b.jid, exodus)
	e.watch(b.jid)
	if n := e.queries(); n != 1 {
		t.Fatalf("%d queries, want 1", n)
	}
	b.noQuery()

	// The same caps again, or presence without caps: nothing changes,
	// nobody is told again.
	a.presence(cs)
	a.presence(capsinfo.Caps{})
	a.sync()
	e.known(a.jid, exodus)
	e.noWatch()

	// Unavailable presence forgets them; available presence with the
	// cached ver brings them back at once.
	a.send(&stanza.Stanza{Kind: stanza.Presence, Type: "unavailable"})
	a.sync()
	e.unknown(a.jid)
	a.presence(cs)
	a.sync()
	e.known(a.jid, exodus)
	e.watch(a.jid)

	// New caps: asked for, known after the answer; the old ones are gone
	// meanwhile.
	cs2 := capsOf(t, psi, "https://psi-plus.com")
	a.presence(cs2)
	q = a.expectQuery()
	e.unknown(a.jid)
	q.answer(psi)
	if f := e.watch(a.jid); !f.Notify(nsAvatar) || f.Has(nsMUC) {
		t.Fatalf("told %v", slices.Collect(f.All()))
	}
	e.known(a.jid, psi)
	e.known(b.jid, exodus)

	// Addresses without a session, or bare.
	for _, j := range []string{"alice@localhost/gone", "alice@localhost", "nobody@localhost/x", "localhost"} {
		e.unknown(jid.MustParse(j))
	}
	// The session ends: nothing is known of it.
	b.sess.Close()
	b.sess.Conn().Close()
	waitGone(t, e, b.jid)
}

// waitGone waits until the module no longer knows features of the
// ended session full (the server drops it from its registry, then the
// module forgets it).
func waitGone(t *testing.T, e *env, full jid.JID) {
	t.Helper()
	for deadline := time.Now().Add(patience); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, ok := e.mod.Features(full); !ok {
			return
		}
	}
	t.Fatalf("session %s did not end: hung?", full)
}

// Resources advertising a ver being asked for wait for that one query,
// and all learn the features from it.
func TestConcurrentSameVer(t *testing.T) {
	e := setup(t, caps.Options{})
	a := login(t, e.srv, "alice@localhost/a")
	b := login(t, e.srv, "bob@localhost/b")
	cs := capsOf(t, psi, "https://psi-plus.com")
	a.presence(cs)
	q := a.expectQuery() // a's client holds the answer back
	b.presence(cs)
	b.sync()
	if n := e.queries(); n != 1 {
		t.Fatalf("%d queries, want 1", n)
	}
	e.unknown(b.jid)
	q.answer(psi)
	told := map[string]bool{}
	for range 2 {
		select {
		case w := <-e.watched:
			told[w.full.String()] = true
		case <-time.After(patience):
			t.Fatal("listener not told: hung?")
		}
	}
	if !told[a.jid.String()] || !told[b.jid.String()] {
		t.Fatalf("told %v", told)
	}
	e.known(a.jid, psi)
	e.known(b.jid, psi)
	b.noQuery()
}

// An answer that does not hash to the ver, an error, or an ill-formed
// answer leaves the features unknown; the account that failed is not
// asked again for the ver at its next presence, other accounts are.
func TestNotVerified(t *testing.T) {
	e := setup(t, caps.Options{})
	cs := capsOf(t, exodus, "http://code.google.com/p/exodus")

	a := login(t, e.srv, "alice@localhost/a")
	a.presence(cs)
	a.expectQuery().answer(psi) // a lie
	if e.waitDone() {
		t.Fatal("a wrong answer verified")
	}
	a.sync()
	e.unknown(a.jid)
	e.noWatch()
	a.presence(cs)
	a.sync()
	if n := e.queries(); n != 1 {
		t.Fatalf("%d queries, want 1: the liar was asked again", n)
	}

	b := login(t, e.srv, "bob@localhost/b")
	b.presence(cs)
	q := b.expectQuery()
	q.reply <- q.iq.ErrorReply(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.FeatureNotImplemented})
	if e.waitDone() {
		t.Fatal("an error verified")
	}

	c := login(t, e.srv, "carol@localhost/c")
	c.presence(cs)
	// The right features, but two identical identities: ill-formed
	// (XEP-0115 §5.4), whatever the hash.
	c.expectQuery().answerXML(t, `<query xmlns='http://jabber.org/protocol/disco#info'>`+
		`<identity category='client' type='pc' name='Exodus 0.9.1'/><identity category='client' type='pc' name='Exodus 0.9.1'/>`+
		`<feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/>`+
		`<feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/>`+
		`<feature var='http://jabber.org/protocol/tune+notify'/></query>`)
	if e.waitDone() {
		t.Fatal("an ill-formed answer verified")
	}
	c.sync()
	for _, j := range []jid.JID{a.jid, b.jid, c.jid} {
		e.unknown(j)
	}
	e.noWatch()

	// Alice, who lied, sends caps of other software: those are asked
	// for.
	a.presence(capsOf(t, psi, "https://psi-plus.com"))
	a.expectQuery().answer(psi)
	e.watch(a.jid)
	e.known(a.jid, psi)
}

// A client that does not answer: the query ends after QueryTimeout and
// a late answer is ignored; the account is not asked again for the ver
// at once, but when another account's client verifies it, the silent
// session learns the features too.
func TestNoAnswer(t *testing.T) {
	e := setup(t, caps.Options{QueryTimeout: 50 * time.Millisecond})
	cs := capsOf(t, exodus, "http://code.google.com/p/exodus")
	a := login(t, e.srv, "alice@localhost/a")
	a.presence(cs)
	q := a.expectQuery()
	if e.waitDone() {
		t.Fatal("no answer verified")
	}
	q.answer(exodus) // too late
	a.sync()
	e.unknown(a.jid)
	e.noWatch()
	a.presence(cs)
	a.sync()
	if n := e.queries(); n != 1 {
		t.Fatalf("%d queries, want 1", n)
	}

	b := login(t, e.srv, "bob@localhost/b")
	b.presence(cs)
	b.expectQuery().answer(exodus)
	told := map[string]bool{}
	for range 2 {
		select {
		case w := <-e.watched:
			told[w.full.String()] = true
		case <-time.After(patience):
			t.Fatal("listener not told: hung?")
		}
	}
	if !told[a.jid.String()] || !told[b.jid.String()] {
		t.Fatalf("told %v", told)
	}
	e.known(a.jid, exodus)
	e.known(b.jid, exodus)
	a.noQuery()
}

// The cache keeps CacheSize vers, the least recently used going first.
func TestCacheSize(t *testing.T) {
	e := setup(t, caps.Options{CacheSize: 1})
	csE := capsOf(t, exodus, "http://code.google.com/p/exodus")
	csP := capsOf(t, psi, "https://psi-plus.com")
	a := login(t, e.srv, "alice@localhost/a")
	a.presence(csE)
	a.expectQuery().answer(exodus)
	e.watch(a.jid)
	a.presence(csP) // evicts exodus
	a.expectQuery().answer(psi)
	e.watch(a.jid)

	b := login(t, e.srv, "bob@localhost/b")
	b.presence(csP) // cached
	b.sync()
	e.known(b.jid, psi)
	e.watch(b.jid)
	if n := e.queries(); n != 2 {
		t.Fatalf("%d queries, want 2", n)
	}
	b.presence(csE) // evicted: asked again
	b.expectQuery().answer(exodus)
	e.watch(b.jid)
	e.known(b.jid, exodus)
	if n := e.queries(); n != 3 {
		t.Fatalf("%d queries, want 3", n)
	}
	// Sessions keep their features when the cache forgets the ver.
	e.known(a.jid, psi)
}

// Legacy caps (no hash) and caps of a hash the module lacks are not
// asked for and give no features; SHA-256 is supported.
func TestUnverifiable(t *testing.T) {
	e := setup(t, caps.Options{})
	a := login(t, e.srv, "alice@localhost/a")
	cs := capsOf(t, exodus, "http://code.google.com/p/exodus")
	a.presence(cs)
	a.expectQuery().answer(exodus)
	e.watch(a.jid)

	a.presence(capsinfo.Caps{Node: "http://psi-im.org/caps", Ver: "0.11"})
	a.sync()
	e.unknown(a.jid)
	a.presence(capsinfo.Caps{Hash: "md5", Node: "http://psi-im.org/caps", Ver: "1B2M2Y8AsgTpgAmY7PhCfg=="})
	a.sync()
	e.unknown(a.jid)
	if n := e.queries(); n != 1 {
		t.Fatalf("%d queries, want 1", n)
	}
	a.noQuery()
	e.noWatch()

	ver, _ := psi.Ver(capsinfo.SHA256)
	a.presence(capsinfo.Caps{Hash: capsinfo.SHA256, Node: "https://psi-plus.com", Ver: ver})
	a.expectQuery().answer(psi)
	e.watch(a.jid)
	e.known(a.jid, psi)
}

func TestNew(t *testing.T) {
	for _, o := range []caps.Options{{CacheSize: -1}, {QueryTimeout: -time.Second}} {
		if _, err := caps.New(o, caps.Deps{}); err == nil {
			t.Errorf("New(%+v) did not fail", o)
		}
	}
	m := modtest.Must(caps.New(caps.Options{}, caps.Deps{}))
	if m.Name() != "caps" {
		t.Errorf("name %q", m.Name())
	}
	if _, ok := m.Features(jid.MustParse("alice@localhost/a")); ok {
		t.Error("features before the server runs")
	}
	servertest.Start(t, server.Config{Modules: []server.Module{m}})
	defer func() {
		if recover() == nil {
			t.Error("Watch after server.New did not panic")
		}
	}()
	m.Watch(func(context.Context, jid.JID, caps.Features) {})
}

package register_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/register"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

// memInvites is an in-memory register.Invites for the tests: single-use
// tokens, one being redeemed counting as used.
type memInvites struct {
	mu     sync.Mutex
	tokens map[string]register.Invite
	busy   map[string]bool
}

func newInvites(tokens map[string]register.Invite) *memInvites {
	return &memInvites{tokens: tokens, busy: map[string]bool{}}
}

func (m *memInvites) Redeem(ctx context.Context, token string, user jid.JID, create func(register.Invite) error) error {
	m.mu.Lock()
	inv, ok := m.tokens[token]
	if !ok || m.busy[token] {
		m.mu.Unlock()
		return register.ErrInvalidToken
	}
	m.busy[token] = true
	m.mu.Unlock()
	err := create(inv)
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.busy, token)
	if err == nil {
		delete(m.tokens, token)
	}
	return err
}

func (m *memInvites) has(token string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.tokens[token]
	return ok
}

var _ register.Invites = (*memInvites)(nil)

// start runs a server with the register module (and extra modules) on an
// in-memory store, with the account alice.
func start(t *testing.T, opts register.Options, deps register.Deps, extra ...server.Module) *servertest.Server {
	t.Helper()
	var srv *servertest.Server
	deps.Accounts = func() register.Accounts { return srv.Server }
	m, err := register.New(opts, deps)
	if err != nil {
		t.Fatal(err)
	}
	store := memory.New()
	srv = servertest.Start(t, server.Config{Accounts: store, Modules: append([]server.Module{m}, extra...)})
	srv.AddUser(t, "alice", "pw-alice")
	return srv
}

// rawClient speaks XMPP byte by byte, as an unauthenticated client does.
// rawClient is a raw client with the registration requests.
type rawClient struct{ *servertest.Raw }

// dial connects to srv and negotiates TLS; it returns the client and the
// stream features offered on the TLS stream.
func dial(t *testing.T, srv *servertest.Server) (*rawClient, string) {
	t.Helper()
	r, features := srv.DialRaw(t)
	return &rawClient{r}, features
}

// dialConn negotiates TLS on c, as dial does.
func dialConn(t *testing.T, c net.Conn) (*rawClient, string) {
	t.Helper()
	r, features := servertest.NewRaw(t, c)
	return &rawClient{r}, features
}

// register sends a registration with the legacy fields.
func (r *rawClient) register(username, password string) string {
	return r.IQ(`<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>` + username +
		`</username><password>` + password + `</password></query></iq>`)
}

// registerForm sends a registration with the data form.
func (r *rawClient) registerForm(username, password, token string) string {
	return r.IQ(`<iq type='set' id='regf'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>` +
		`<field var='FORM_TYPE'><value>jabber:iq:register</value></field>` +
		`<field var='username'><value>` + username + `</value></field>` +
		`<field var='password'><value>` + password + `</value></field>` +
		`<field var='token'><value>` + token + `</value></field></x></query></iq>`)
}

// wantResult fails unless got is an iq result.
func wantResult(t *testing.T, got string) {
	t.Helper()
	if !strings.Contains(got, `type="result"`) {
		t.Fatalf("want a result; got %q", got)
	}
}

// wantError fails unless got is an iq error with the condition.
func wantError(t *testing.T, got, cond string) {
	t.Helper()
	if !strings.Contains(got, `type="error"`) || !strings.Contains(got, "<"+cond+" ") {
		t.Fatalf("want error %s; got %q", cond, got)
	}
}

// login logs in with mellium's client, SCRAM-SHA-256.
func login(srv *servertest.Server, user, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := srv.Login(ctx, jid.MustParse(user+"@localhost"), password)
	if err != nil {
		return err
	}
	return sess.Close()
}

// TestOpen: with the open policy the feature is offered, the fields are
// the legacy ones without a form, and a registered account logs in, on
// the same stream and with a new one.
func TestOpen(t *testing.T) {
	srv := start(t, register.Options{Policy: register.PolicyOpen}, register.Deps{})
	r, feats := dial(t, srv)
	if !strings.Contains(feats, `<register xmlns="http://jabber.org/features/iq-register"`) {
		t.Fatalf("no registration feature: %q", feats)
	}
	got := r.IQ(`<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>`)
	wantResult(t, got)
	for _, want := range []string{"<instructions>", "<username/>", "<password/>"} {
		if !strings.Contains(got, want) {
			t.Errorf("fields lack %s: %q", want, got)
		}
	}
	if strings.Contains(got, "jabber:x:data") {
		t.Errorf("a form without a token to ask for: %q", got)
	}
	wantResult(t, r.register("Newbie", "correct horse"))
	if got := r.AuthPlain("newbie", "correct horse"); !strings.Contains(got, "<success") {
		t.Fatalf("auth on the registering stream: %q", got)
	}
	if err := login(srv, "newbie", "correct horse"); err != nil {
		t.Fatalf("login after registration: %v", err)
	}
	// A bare JID at the stream's domain is a username too.
	r2, _ := dial(t, srv)
	wantResult(t, r2.register("carol@localhost", "correct horse"))
	if err := login(srv, "carol", "correct horse"); err != nil {
		t.Fatalf("login after registration as a bare JID: %v", err)
	}
}

// TestClosed: nothing is offered, and a client trying anyway is refused
// without losing its stream.
func TestClosed(t *testing.T) {
	srv := start(t, register.Options{Policy: register.PolicyClosed}, register.Deps{})
	r, feats := dial(t, srv)
	if strings.Contains(feats, "iq-register") {
		t.Fatalf("registration offered with the closed policy: %q", feats)
	}
	wantError(t, r.IQ(`<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>`), "service-unavailable")
	wantError(t, r.register("bob", "correct horse"), "not-allowed")
	if got := r.AuthPlain("alice", "pw-alice"); !strings.Contains(got, "<success") {
		t.Fatalf("auth after refused registration: %q", got)
	}
	if err := login(srv, "bob", "correct horse"); err == nil {
		t.Fatal("bob logged in")
	}
}

// TestInvite: registration needs a valid token, which it consumes;
// a refused registration keeps it; an invitation naming an account
// registers only that one.
func TestInvite(t *testing.T) {
	inv := newInvites(map[string]register.Invite{"t1": {}, "t2": {}, "named": {Username: "Juliet"}})
	srv := start(t, register.Options{}, register.Deps{Invites: inv})
	r, feats := dial(t, srv)
	if !strings.Contains(feats, "iq-register") {
		t.Fatalf("no registration feature: %q", feats)
	}
	got := r.IQ(`<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>`)
	wantResult(t, got)
	for _, want := range []string{`<x xmlns="jabber:x:data" type="form">`, `<value>jabber:iq:register</value>`,
		`var="token"`, `type="text-private" var="password"`} {
		if !strings.Contains(got, want) {
			t.Errorf("form lacks %s: %q", want, got)
		}
	}

	wantError(t, r.register("bob", "correct horse"), "not-allowed")
	wantError(t, r.registerForm("bob", "correct horse", ""), "not-allowed")
	wantError(t, r.registerForm("bob", "correct horse", "bogus"), "not-allowed")
	// Refused for the name: the token stays.
	wantError(t, r.registerForm("alice", "correct horse", "t1"), "conflict")
	wantError(t, r.registerForm("bob", "short", "t1"), "not-acceptable")
	if !inv.has("t1") {
		t.Fatal("a refused registration used the token")
	}
	wantResult(t, r.registerForm("bob", "correct horse", "t1"))
	if inv.has("t1") {
		t.Error("the token was not used up")
	}
	if err := login(srv, "bob", "correct horse"); err != nil {
		t.Fatalf("login after registration: %v", err)
	}
	wantError(t, r.registerForm("carol", "correct horse", "t1"), "not-allowed")

	wantError(t, r.registerForm("romeo", "correct horse", "named"), "not-allowed")
	if !inv.has("named") {
		t.Fatal("a registration of another name used the invitation")
	}
	wantResult(t, r.registerForm("juliet", "correct horse", "named"))
	if err := login(srv, "juliet", "correct horse"); err != nil {
		t.Fatalf("login after registration: %v", err)
	}

	// A reserved name needs an invitation naming it.
	wantError(t, r.registerForm("Support", "correct horse", "t2"), "not-acceptable")
	if !inv.has("t2") {
		t.Fatal("a refused reserved name used the token")
	}
	inv.mu.Lock()
	inv.tokens["staff"] = register.Invite{Username: "support"}
	inv.mu.Unlock()
	wantResult(t, r.registerForm("Support", "correct horse", "staff"))
	if err := login(srv, "support", "correct horse"); err != nil {
		t.Fatalf("login after registration: %v", err)
	}
}

// TestRules: usernames and passwords that break the rules, and malformed
// requests, are refused; the stream goes on.
func TestRules(t *testing.T) {
	srv := start(t, register.Options{Policy: register.PolicyOpen, MaxUsername: 10}, register.Deps{})
	r, _ := dial(t, srv)
	for _, tc := range []struct {
		name, req, cond string
	}{
		{"taken", `<username>alice</username><password>correct horse</password>`, "conflict"},
		{"taken, case mapped", `<username>ALICE</username><password>correct horse</password>`, "conflict"},
		{"reserved", `<username>Admin</username><password>correct horse</password>`, "not-acceptable"},
		{"reserved postmaster", `<username>postmaster</username><password>correct horse</password>`, "not-acceptable"},
		{"too long", `<username>abcdefghijk</username><password>correct horse</password>`, "not-acceptable"},
		{"space", `<username>a b</username><password>correct horse</password>`, "not-acceptable"},
		{"forbidden character", `<username>a:b</username><password>correct horse</password>`, "not-acceptable"},
		{"other domain", `<username>bob@example.org</username><password>correct horse</password>`, "not-acceptable"},
		{"short password", `<username>bob</username><password>1234567</password>`, "not-acceptable"},
		{"empty password", `<username>bob</username><password/>`, "not-acceptable"},
		{"no password", `<username>bob</username>`, "not-acceptable"},
		{"no username", `<password>correct horse</password>`, "not-acceptable"},
		{"bad form", `<x xmlns='jabber:x:data' type='submit'><field><value>1</value></field></x>`, "bad-request"},
		{"other form", `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:x</value></field></x>`, "bad-request"},
		{"remove before authentication", `<remove/>`, "unexpected-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, r.IQ(`<iq type='set' id='x'><query xmlns='jabber:iq:register'>`+tc.req+`</query></iq>`), tc.cond)
		})
	}
	wantError(t, r.IQ(`<iq type='set' id='d' to='example.org'><query xmlns='jabber:iq:register'><username>bob</username><password>correct horse</password></query></iq>`), "bad-request")
	// Eight characters are enough, counted as characters.
	wantResult(t, r.register("bob", "pässwörd"))
	if err := login(srv, "bob", "pässwörd"); err != nil {
		t.Fatal(err)
	}
	// Nothing was created by the refusals.
	users, err := srv.Users(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 {
		t.Errorf("accounts %q, want alice and bob", users)
	}
}

// TestRateLimit: the limiter is asked with the client's address, only
// for registrations that would succeed; saying no refuses with
// resource-constraint. A stream without an IP address is not limited.
func TestRateLimit(t *testing.T) {
	var calls atomic.Int32
	client := netip.MustParseAddr("127.0.0.1")
	limit := func(a netip.Addr) bool {
		if a != client {
			t.Errorf("limiter asked for %s, want %s", a, client)
		}
		return calls.Add(1) <= 1
	}
	srv := start(t, register.Options{Policy: register.PolicyOpen}, register.Deps{RateLimit: limit})
	r, _ := dial(t, srv)
	wantResult(t, r.register("bob", "correct horse"))
	wantError(t, r.register("carol", "correct horse"), "resource-constraint")
	// Refusals for the name or password do not count.
	wantError(t, r.register("bob", "correct horse"), "conflict")
	wantError(t, r.register("dave", "short"), "not-acceptable")
	if n := calls.Load(); n != 2 {
		t.Errorf("limiter asked %d times, want 2", n)
	}

	c, err := srv.DialInProcess()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := dialConn(t, c)
	wantResult(t, p.register("erin", "correct horse"))
	if n := calls.Load(); n != 2 {
		t.Errorf("limiter asked %d times for a stream without an address", n-2)
	}
}

// TestChangePassword: an authenticated user changes their password
// (XEP-0077 §3.3) and logs in with the new one only.
func TestChangePassword(t *testing.T) {
	srv := start(t, register.Options{Policy: register.PolicyClosed}, register.Deps{})
	c := srv.Connect(t, jid.MustParse("alice@localhost"), "pw-alice")
	do := func(id, to, query string) *stanza.Stanza {
		t.Helper()
		if to != "" {
			to = ` to='` + to + `'`
		}
		if err := c.SendRaw(`<iq type='set' id='` + id + `'` + to + `><query xmlns='jabber:iq:register'>` + query + `</query></iq>`); err != nil {
			t.Fatal(err)
		}
		return c.Expect(servertest.ByID(id))
	}
	for _, tc := range []struct {
		name, query, cond string
	}{
		{"no username", `<password>correct horse</password>`, "bad-request"},
		{"another account", `<username>bob</username><password>correct horse</password>`, "bad-request"},
		{"empty password", `<username>alice</username><password/>`, "not-acceptable"},
		{"short password", `<username>alice</username><password>short</password>`, "not-acceptable"},
		{"remove with more", `<remove/><username>alice</username>`, "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := modtest.Condition(do(tc.name, "localhost", tc.query)); string(got) != tc.cond {
				t.Errorf("condition %q, want %s", got, tc.cond)
			}
		})
	}
	get := modtest.Do(t, c, modtest.IQ("get", stanza.Get, jid.MustParse("localhost"), modtest.Query(register.NS, "query")))
	modtest.MustResult(t, get, jid.MustParse("localhost"))
	var b strings.Builder
	get.WriteTo(&b)
	if !strings.Contains(b.String(), "<registered/><username>alice</username><password/>") {
		t.Errorf("registration of a user: %q", b.String())
	}
	if res := do("change", "localhost", `<username>Alice</username><password>new password</password>`); res.Type != stanza.Result {
		t.Fatalf("password change: %s %q", res.Type, modtest.Condition(res))
	}
	if err := login(srv, "alice", "pw-alice"); err == nil {
		t.Error("login with the old password")
	}
	if err := login(srv, "alice", "new password"); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	// Without 'to', and with a form.
	res := do("change2", "", `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register:changepassword</value></field>`+
		`<field var='username'><value>alice@localhost</value></field><field var='password'><value>third password</value></field></x>`)
	if res.Type != stanza.Result {
		t.Fatalf("password change by form: %s %q", res.Type, modtest.Condition(res))
	}
	if err := login(srv, "alice", "third password"); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	if !modtest.HasFeature(modtest.DiscoInfo(t, c, jid.MustParse("localhost")), register.NS) {
		t.Error("jabber:iq:register not in the server's disco#info")
	}
}

// TestRemove: a user deletes their account (XEP-0077 §3.2): the result
// comes before the stream ends, the account can no longer log in, and
// registering the name again starts empty.
func TestRemove(t *testing.T) {
	store := memory.New()
	ros, err := roster.New(roster.Options{}, roster.Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	var srv *servertest.Server
	m, err := register.New(register.Options{Policy: register.PolicyOpen},
		register.Deps{Accounts: func() register.Accounts { return srv.Server }})
	if err != nil {
		t.Fatal(err)
	}
	srv = servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{m, ros}})
	alice := srv.AddUser(t, "alice", "pw-alice")
	c := srv.Connect(t, alice, "pw-alice")
	c.SendRaw(`<iq type='set' id='add'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'/></query></iq>`)
	modtest.MustResult(t, c.Expect(servertest.ByID("add")), jid.JID{})

	c.SendRaw(`<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>`)
	if res := c.Expect(servertest.ByID("rm")); res.Type != stanza.Result {
		t.Fatalf("remove: %s %q", res.Type, modtest.Condition(res))
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of the removed account goes on")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		users, err := srv.Users(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(users) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("accounts %q after removal", users)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := login(srv, "alice", "pw-alice"); err == nil {
		t.Fatal("login after removal")
	}

	r, _ := dial(t, srv)
	wantResult(t, r.register("alice", "a new start"))
	c = srv.Connect(t, alice, "a new start")
	c.SendRaw(`<iq type='get' id='ros'><query xmlns='jabber:iq:roster'/></iq>`)
	res := c.Expect(servertest.ByID("ros"))
	if res.Type != stanza.Result {
		t.Fatalf("roster: %s", res.Type)
	}
	var b strings.Builder
	res.WriteTo(&b)
	if strings.Contains(b.String(), "bob@localhost") {
		t.Errorf("the new account has the old roster: %q", b.String())
	}
}

// TestRemoveNotAllowed: with AllowRemove false the account stays.
func TestRemoveNotAllowed(t *testing.T) {
	srv := start(t, register.Options{Policy: register.PolicyClosed, AllowRemove: new(false)}, register.Deps{})
	c := srv.Connect(t, jid.MustParse("alice@localhost"), "pw-alice")
	c.SendRaw(`<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>`)
	if got := modtest.Condition(c.Expect(servertest.ByID("rm"))); got != "not-allowed" {
		t.Fatalf("condition %q, want not-allowed", got)
	}
	c.Sync()
	if err := login(srv, "alice", "pw-alice"); err != nil {
		t.Fatal(err)
	}
}

// TestNew: New refuses what cannot work.
func TestNew(t *testing.T) {
	accounts := func() register.Accounts { return nil }
	for _, tc := range []struct {
		name string
		opts register.Options
		deps register.Deps
		want string
	}{
		{"no accounts", register.Options{Policy: register.PolicyOpen}, register.Deps{}, "Accounts"},
		{"invite without invites", register.Options{}, register.Deps{Accounts: accounts}, "Invites"},
		{"unknown policy", register.Options{Policy: "sometimes"}, register.Deps{Accounts: accounts}, "sometimes"},
		{"negative", register.Options{Policy: register.PolicyOpen, MinPassword: -1}, register.Deps{Accounts: accounts}, "negative"},
		{"bad reserved", register.Options{Policy: register.PolicyOpen, Reserved: []string{"a b"}}, register.Deps{Accounts: accounts}, "a b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := register.New(tc.opts, tc.deps)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
	if _, err := register.New(register.Options{}, register.Deps{Accounts: accounts, Invites: newInvites(nil)}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

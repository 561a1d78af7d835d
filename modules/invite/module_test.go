package invite_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/invite"
	"github.com/kiez-im/kiez/modules/register"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

type env struct {
	srv    *servertest.Server
	inv    *invite.Module
	roster *roster.Module
	store  *memory.Store
	web    *httptest.Server
	alice  jid.JID
}

// start runs a server with register (invite policy), invite, roster and
// adhoc on a memory store, an HTTP front and the account alice.
func start(t *testing.T, opts invite.Options) *env {
	t.Helper()
	var handler atomic.Value
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(web.Close)
	store := memory.New()
	ros := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: store}))
	inv := modtest.Must(invite.New(opts, invite.Deps{Store: store, Roster: ros}))
	var srv *servertest.Server
	reg := modtest.Must(register.New(register.Options{}, register.Deps{
		Accounts: func() register.Accounts { return srv.Server }, Invites: inv}))
	ad := modtest.Must(adhoc.New(adhoc.Options{}, adhoc.Deps{Commands: inv.Commands()}))
	srv = servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{reg, inv, ros, ad},
		HTTPBaseURL: func(string) string { return web.URL + "/" }})
	handler.Store(srv.HTTPHandler())
	alice := srv.AddUser(t, "alice", "pw-alice")
	return &env{srv: srv, inv: inv, roster: ros, store: store, web: web, alice: alice}
}

// rawClient speaks XMPP byte by byte, as an unauthenticated client does.
// rawClient is a raw client with the registration request.
type rawClient struct{ *servertest.Raw }

// dial connects to srv and negotiates TLS.
func dial(t *testing.T, srv *servertest.Server) *rawClient {
	t.Helper()
	r, _ := srv.DialRaw(t)
	return &rawClient{r}
}

// register sends a registration with the data form and its token.
func (r *rawClient) register(username, password, token string) string {
	return r.IQ(`<iq type='set' id='regf'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>` +
		`<field var='FORM_TYPE'><value>jabber:iq:register</value></field>` +
		`<field var='username'><value>` + username + `</value></field>` +
		`<field var='password'><value>` + password + `</value></field>` +
		`<field var='token'><value>` + token + `</value></field></x></query></iq>`)
}

func wantResult(t *testing.T, got string) {
	t.Helper()
	if !strings.Contains(got, `type="result"`) {
		t.Fatalf("want a result; got %q", got)
	}
}

func wantError(t *testing.T, got, cond string) {
	t.Helper()
	if !strings.Contains(got, `type="error"`) || !strings.Contains(got, "<"+cond+" ") {
		t.Fatalf("want error %s; got %q", cond, got)
	}
}

func login(srv *servertest.Server, user, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := srv.Login(ctx, jid.MustParse(user+"@localhost"), password)
	if err != nil {
		return err
	}
	return sess.Close()
}

// stored returns every key and value in the invite namespace.
func (e *env) stored(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	keys, err := e.store.ServiceKeys(ctx, invite.Namespace, storage.ServiceKeysQuery{Max: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, k := range keys {
		v, _, err := e.store.ServiceValue(ctx, invite.Namespace, k)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(k + "=" + string(v) + "\n")
	}
	return b.String()
}

// TestAdminInvite: an administrator's invitation registers one account,
// once; the token is stored only hashed and gone once used.
func TestAdminInvite(t *testing.T) {
	e := start(t, invite.Options{})
	ctx := context.Background()
	inv, err := e.inv.Create(ctx, invite.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "xmpp:localhost?register;preauth=" + inv.Token; inv.URI != want {
		t.Errorf("URI %q, want %q", inv.URI, want)
	}
	if want := e.web.URL + "/invite/" + inv.Token; inv.LandingURL != want {
		t.Errorf("LandingURL %q, want %q", inv.LandingURL, want)
	}
	if d := time.Until(inv.Expires); d < 6*24*time.Hour || d > 7*24*time.Hour {
		t.Errorf("expires in %v, want 7 days", d)
	}
	if s := e.stored(t); s == "" || strings.Contains(s, inv.Token) {
		t.Fatalf("stored %q: want the invitation without its token in clear", s)
	}

	r := dial(t, e.srv)
	wantError(t, r.register("bob", "correct horse", "AAAAAAAAAAAAAAAAAAAAAAAA"), "not-allowed")
	wantError(t, r.register("alice", "correct horse", inv.Token), "conflict") // keeps the token
	wantResult(t, r.register("bob", "correct horse", inv.Token))
	if err := login(e.srv, "bob", "correct horse"); err != nil {
		t.Fatalf("login after registration: %v", err)
	}
	if s := e.stored(t); s != "" {
		t.Errorf("left in the store after use: %q", s)
	}
	wantError(t, r.register("carol", "correct horse", inv.Token), "not-allowed")

	// A named invitation registers that name only, reserved or not.
	named, err := e.inv.Create(ctx, invite.CreateOptions{Username: "support"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "xmpp:support@localhost?register;preauth=" + named.Token; named.URI != want {
		t.Errorf("URI %q, want %q", named.URI, want)
	}
	wantError(t, r.register("romeo", "correct horse", named.Token), "not-allowed")
	wantResult(t, r.register("support", "correct horse", named.Token))
}

// TestExpired: an expired invitation is refused and its page is gone.
func TestExpired(t *testing.T) {
	e := start(t, invite.Options{Validity: time.Hour})
	invite.SetNow(e.inv, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	inv, err := e.inv.Create(context.Background(), invite.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	invite.SetNow(e.inv, time.Now)
	r := dial(t, e.srv)
	wantError(t, r.register("bob", "correct horse", inv.Token), "not-allowed")
	if res := get(t, inv.LandingURL); res.code != http.StatusNotFound {
		t.Errorf("landing page of an expired invitation: %d", res.code)
	}
}

// TestExpiredPurged: the server's janitor removes expired invitations
// (and a user's index entries) from the store, as service data.
func TestExpiredPurged(t *testing.T) {
	e := start(t, invite.Options{Validity: time.Hour})
	ctx := t.Context()
	if _, err := e.inv.Create(ctx, invite.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.inv.Create(ctx, invite.CreateOptions{Creator: e.alice, Contact: true}); err != nil {
		t.Fatal(err)
	}
	if rep := e.srv.RunJanitor(ctx, time.Now()); rep.Removed[server.KindServiceData] != 0 {
		t.Fatalf("janitor within the validity: %+v", rep)
	}
	rep := e.srv.RunJanitor(ctx, time.Now().Add(2*time.Hour))
	if rep.Removed[server.KindServiceData] != 3 || rep.Err != nil || rep.Backlog { // two tokens, alice's index entry
		t.Fatalf("janitor after the validity: %+v", rep)
	}
	if n, err := e.store.ExpireServiceData(ctx, time.Now().Add(2*time.Hour), 0); n != 0 || err != nil {
		t.Errorf("left for another expiry: %d, %v", n, err)
	}
}

// command runs the "Invite a friend" command as c and returns the URI
// of the answer's form.
func command(t *testing.T, c *servertest.Client) (string, *stanza.Stanza) {
	t.Helper()
	iq := modtest.IQ("inv", stanza.Set, jid.MustParse("localhost"), stanza.Elem(xml.Name{Space: adhoc.NS, Local: "command"},
		[]xml.Attr{stanza.Attr("node", invite.InviteNode), stanza.Attr("action", "execute")}))
	res := modtest.Do(t, c, iq)
	var out bytes.Buffer
	res.WriteTo(&out)
	m := regexp.MustCompile(`var="uri"[^>]*><value>([^<]*)</value>`).FindStringSubmatch(out.String())
	if m == nil {
		return "", res
	}
	return strings.ReplaceAll(m[1], "&amp;", "&"), res
}

// TestUserInvite: a user's invitation from the ad-hoc command registers
// an account that is the user's mutual contact.
func TestUserInvite(t *testing.T) {
	e := start(t, invite.Options{MaxPerUser: 2})
	a := e.srv.Connect(t, e.alice, "pw-alice")
	// Fetching the roster makes the session interested in pushes.
	modtest.Do(t, a, modtest.IQ("r", stanza.Get, jid.JID{}, modtest.Query(roster.NS, "query")))
	uri, res := command(t, a)
	if uri == "" {
		var out bytes.Buffer
		res.WriteTo(&out)
		t.Fatalf("no uri in %s", out.String())
	}
	token, ok := strings.CutPrefix(uri, "xmpp:alice@localhost?roster;preauth=")
	token, ok2 := strings.CutSuffix(token, ";ibr=y")
	if !ok || !ok2 {
		t.Fatalf("uri %q", uri)
	}
	r := dial(t, e.srv)
	wantResult(t, r.register("bob", "correct horse", token))
	ctx := context.Background()
	bob := jid.MustParse("bob@localhost")
	for _, p := range [][2]jid.JID{{e.alice, bob}, {bob, e.alice}} {
		it, ok, err := e.roster.Item(ctx, p[0], p[1])
		if err != nil || !ok || it.Subscription != storage.SubBoth || it.Hidden || it.Ask {
			t.Errorf("%s's item for %s: %+v %v %v, want subscription both", p[0], p[1], it, ok, err)
		}
	}
	// Alice's client hears of her new contact.
	a.Expect(func(st *stanza.Stanza) bool {
		var out bytes.Buffer
		st.WriteTo(&out)
		return strings.Contains(out.String(), `"bob@localhost"`) && strings.Contains(out.String(), `"both"`)
	})

	// MaxPerUser unused invitations, then resource-constraint.
	command(t, a)
	command(t, a)
	if _, res := command(t, a); modtest.Condition(res) != "resource-constraint" {
		t.Errorf("invitation over the limit: %v", modtest.Condition(res))
	}
}

// TestAllowUsers: with AllowUsers false there is no command.
func TestAllowUsers(t *testing.T) {
	m := modtest.Must(invite.New(invite.Options{AllowUsers: new(false)}, invite.Deps{Store: memory.New()}))
	if cmds := m.Commands(); len(cmds) != 0 {
		t.Errorf("commands: %v", cmds)
	}
}

type response struct {
	code   int
	header http.Header
	body   string
}

func get(t *testing.T, url string) response {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, string(b)}
}

// TestLandingPage: a valid token's page links its URI under a strict
// CSP; an unknown, malformed or used one is 404 and not echoed.
func TestLandingPage(t *testing.T) {
	e := start(t, invite.Options{})
	inv, err := e.inv.Create(context.Background(), invite.CreateOptions{Creator: e.alice, Contact: true})
	if err != nil {
		t.Fatal(err)
	}
	res := get(t, inv.LandingURL)
	if res.code != http.StatusOK {
		t.Fatalf("GET %s: %d", inv.LandingURL, res.code)
	}
	for _, want := range []string{`href="xmpp:alice@localhost?roster;preauth=` + inv.Token + `;ibr=y"`, "alice@localhost invites you", "Conversations", "Monal", "Dino", "Gajim"} {
		if !strings.Contains(res.body, want) {
			t.Errorf("page lacks %q:\n%s", want, res.body)
		}
	}
	if csp := res.header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if strings.Contains(res.body, "<script") {
		t.Error("the page has a script")
	}
	for _, bad := range []string{"AAAAAAAAAAAAAAAAAAAAAAAA", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", inv.Token + "x"} {
		res := get(t, e.web.URL+"/invite/"+bad)
		if res.code != http.StatusNotFound {
			t.Errorf("GET unknown %q: %d", bad, res.code)
		}
		if strings.Contains(res.body, "script>") || strings.Contains(res.body, "AAAA") {
			t.Errorf("404 page echoes the request: %s", res.body)
		}
	}
	r := dial(t, e.srv)
	wantResult(t, r.register("bob", "correct horse", inv.Token))
	if res := get(t, inv.LandingURL); res.code != http.StatusNotFound {
		t.Errorf("page of a used invitation: %d", res.code)
	}
}

// TestDeleteUser: deleting the inviter's account deletes their
// invitations, not the administrator's.
func TestDeleteUser(t *testing.T) {
	e := start(t, invite.Options{})
	ctx := context.Background()
	mine, err := e.inv.Create(ctx, invite.CreateOptions{Creator: e.alice, Contact: true})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := e.inv.Create(ctx, invite.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.DeleteUser(ctx, e.alice); err != nil {
		t.Fatal(err)
	}
	r := dial(t, e.srv)
	wantError(t, r.register("bob", "correct horse", mine.Token), "not-allowed")
	wantResult(t, r.register("bob", "correct horse", admin.Token))
	if s := e.stored(t); s != "" {
		t.Errorf("left in the store: %q", s)
	}
}

// TestRedeemOnce: of two concurrent redemptions one creates the account;
// a failed creation keeps the token.
func TestRedeemOnce(t *testing.T) {
	m := modtest.Must(invite.New(invite.Options{}, invite.Deps{Store: memory.New()}))
	ctx := context.Background()
	inv, err := m.Create(ctx, invite.CreateOptions{Domain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	user := jid.MustParse("bob@example.org")
	failed := errors.New("no")
	if err := m.Redeem(ctx, inv.Token, user, func(register.Invite) error { return failed }); !errors.Is(err, failed) {
		t.Fatalf("failing create: %v", err)
	}
	if err := m.Redeem(ctx, inv.Token, jid.MustParse("bob@example.com"), func(register.Invite) error { return nil }); !errors.Is(err, register.ErrInvalidToken) {
		t.Errorf("another domain: %v", err)
	}
	var created atomic.Int32
	release := make(chan struct{})
	inside := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		err := m.Redeem(ctx, inv.Token, user, func(register.Invite) error {
			created.Add(1)
			close(inside)
			<-release
			return nil
		})
		if err != nil {
			t.Errorf("first: %v", err)
		}
	})
	<-inside
	if err := m.Redeem(ctx, inv.Token, user, func(register.Invite) error { created.Add(1); return nil }); !errors.Is(err, register.ErrInvalidToken) {
		t.Errorf("concurrent redemption: %v", err)
	}
	close(release)
	wg.Wait()
	if err := m.Redeem(ctx, inv.Token, user, func(register.Invite) error { created.Add(1); return nil }); !errors.Is(err, register.ErrInvalidToken) {
		t.Errorf("after use: %v", err)
	}
	if n := created.Load(); n != 1 {
		t.Errorf("created %d times", n)
	}
}

// TestNew: invalid options are refused.
func TestNew(t *testing.T) {
	store := memory.New()
	for _, c := range []struct {
		opts invite.Options
		deps invite.Deps
	}{
		{invite.Options{}, invite.Deps{}},
		{invite.Options{Validity: -time.Second}, invite.Deps{Store: store}},
		{invite.Options{Validity: invite.MaxValidity + time.Second}, invite.Deps{Store: store}},
		{invite.Options{MaxPerUser: -1}, invite.Deps{Store: store}},
	} {
		if _, err := invite.New(c.opts, c.deps); err == nil {
			t.Errorf("New(%+v, %+v) succeeded", c.opts, c.deps)
		}
	}
	m := modtest.Must(invite.New(invite.Options{}, invite.Deps{Store: store}))
	ctx := context.Background()
	for _, o := range []invite.CreateOptions{
		{},                                     // no domain before Init
		{Domain: "example.org", Contact: true}, // contact without creator
		{Domain: "example.org", Creator: jid.MustParse("example.org")},
		{Domain: "example.org", Username: "a b@"},
	} {
		if _, err := m.Create(ctx, o); err == nil {
			t.Errorf("Create(%+v) succeeded", o)
		}
	}
}

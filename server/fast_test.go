package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

const (
	fastUA      = `d4565fa7-4d72-4749-b3d3-740edbf87770` // sasl2SCRAM's user agent
	fastRequest = `<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>`
	fastElem    = `<fast xmlns='urn:xmpp:fast:0'/>`
	htNone      = "HT-SHA-256-NONE"
)

var fastTokenRE = regexp.MustCompile(`<token xmlns='urn:xmpp:fast:0' expiry='(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)' token='([^']+)'/>`)

func fastMAC(token, label string, cb ...byte) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(label))
	m.Write(cb)
	return m.Sum(nil)
}

// fastCB returns the client's channel binding data for the HT mechanism
// mech on its TLS connection.
func (c *smClient) fastCB(mech string) []byte {
	c.t.Helper()
	cs := c.c.(*tls.Conn).ConnectionState()
	switch mech {
	case "HT-SHA-256-EXPR":
		b, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			c.t.Fatal(err)
		}
		return b
	case "HT-SHA-256-ENDP":
		// servertest's certificate is ECDSA with SHA-256 (RFC 5929 §4.1).
		h := sha256.Sum256(cs.PeerCertificates[0].Raw)
		return h[:]
	}
	return nil
}

// sasl2FAST sends an <authenticate/> with the HT mechanism mech for user
// with token and extra (which holds <fast/> or not), and returns the
// server's answer up to </success> or </failure>; on success it checks
// the server's HMAC.
func (c *smClient) sasl2FAST(user, mech, token, extra string) (string, bool) {
	c.t.Helper()
	b64 := base64.StdEncoding
	cb := c.fastCB(mech)
	c.send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='` + mech + `'><initial-response>` +
		b64.EncodeToString(append([]byte(user+"\x00"), fastMAC(token, "Initiator", cb...)...)) +
		`</initial-response><user-agent id='` + fastUA + `'><software>kiez test</software></user-agent>` +
		extra + `</authenticate>`)
	m := c.await(`<(success|failure) xmlns=` + q + `urn:xmpp:sasl:2` + q + `>(.*?)</(success|failure)>`)
	if m[1] == "failure" {
		return m[2], false
	}
	addl := regexp.MustCompile(`<additional-data>([^<]+)</additional-data>`).FindStringSubmatch(m[2])
	if addl == nil {
		c.t.Fatalf("no additional data in %q", m[0])
	}
	v, _ := b64.DecodeString(addl[1])
	if !hmac.Equal(v, fastMAC(token, "Responder", cb...)) {
		c.t.Fatalf("wrong server HMAC in %q", m[0])
	}
	return m[2], true
}

// fastLogin logs in on a new connection to srv by mech with token, and
// drops the connection.
func fastLogin(t *testing.T, srv *servertest.Server, user, mech, token, extra string) (string, bool) {
	t.Helper()
	c := dialSM(t, srv.Addr)
	defer c.tcp.Close()
	c.sasl2Features()
	return c.sasl2FAST(user, mech, token, extra)
}

// fastToken logs user in with SCRAM asking for a token for mech, and
// returns it.
func fastToken(t *testing.T, srv *servertest.Server, user, mech string) string {
	t.Helper()
	c := dialSM(t, srv.Addr)
	c.sasl2Features()
	s := c.sasl2SCRAM(user, "pw", `<request-token xmlns='urn:xmpp:fast:0' mechanism='`+mech+`'/>`)
	m := fastTokenRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no token in %q", s)
	}
	c.tcp.Close()
	return m[2]
}

// TestFAST (XEP-0484): a token asked for in a SCRAM login logs in with
// HT-SHA-256-NONE (the server's HMAC checked), with Bind 2; a wrong token,
// an unknown user, a login without <fast/> and a token used with another
// mechanism are refused; a token asked for again replaces the old one;
// invalidation and account deletion remove it.
func TestFAST(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	alice := srv.AddUser(t, "alice", "pw")

	c := dialSM(t, srv.Addr)
	feats := c.sasl2Features()
	if !regexp.MustCompile(`<inline>.*<fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-EXPR</mechanism>` +
		`<mechanism>HT-SHA-256-ENDP</mechanism><mechanism>HT-SHA-256-NONE</mechanism></fast>`).MatchString(feats) {
		t.Fatalf("features lack FAST: %q", feats)
	}
	success := c.sasl2SCRAM("alice", "pw", fastRequest)
	m := fastTokenRE.FindStringSubmatch(success)
	if m == nil {
		t.Fatalf("no token in %q", success)
	}
	if exp, err := time.Parse(time.RFC3339, m[1]); err != nil || exp.Before(time.Now().Add(20*24*time.Hour)) {
		t.Fatalf("expiry %s: %v", m[1], err)
	}
	token := m[2]

	if s, ok := fastLogin(t, srv, "alice", htNone, token, bind2Body+fastElem); !ok || !strings.Contains(s, `<authorization-identifier>alice@localhost/kiez-test.`) {
		t.Fatalf("FAST login: %v %q", ok, s)
	}
	for _, tc := range []struct{ name, user, mech, token, extra, want string }{
		{"wrong token", "alice", htNone, token + "x", fastElem, `<not-authorized `},
		{"unknown user", "nobody", htNone, token, fastElem, `<not-authorized `},
		{"no <fast/>", "alice", htNone, token, "", `<malformed-request `},
		{"other mechanism", "alice", "HT-SHA-256-EXPR", token, fastElem, `<not-authorized `},
		{"unknown mechanism", "alice", "HT-SHA-256-XYZ", token, fastElem, `<invalid-mechanism `},
		{"bad count", "alice", htNone, token, `<fast xmlns='urn:xmpp:fast:0' count='x'/>`, `<malformed-request `},
	} {
		if s, ok := fastLogin(t, srv, tc.user, tc.mech, tc.token, tc.extra); ok || !strings.Contains(s, tc.want) {
			t.Errorf("%s: %v %q, want %s", tc.name, ok, s, tc.want)
		}
	}

	// Asking for a new token with the current one rotates it; both work
	// until the new one is used.
	s, ok := fastLogin(t, srv, "alice", htNone, token, fastElem+fastRequest)
	m = fastTokenRE.FindStringSubmatch(s)
	if !ok || m == nil || m[2] == token {
		t.Fatalf("rotation: %v %q", ok, s)
	}
	token2 := m[2]
	if _, ok := fastLogin(t, srv, "alice", htNone, token, fastElem); !ok {
		t.Fatal("old token refused before the new one was used")
	}
	if _, ok := fastLogin(t, srv, "alice", htNone, token2, fastElem); !ok {
		t.Fatal("new token refused")
	}
	if _, ok := fastLogin(t, srv, "alice", htNone, token, fastElem); ok {
		t.Fatal("old token accepted after the new one was used")
	}

	// Invalidation: the login succeeds with no new token, and the token
	// is gone after it.
	if s, ok := fastLogin(t, srv, "alice", htNone, token2, `<fast xmlns='urn:xmpp:fast:0' invalidate='true'/>`); !ok || strings.Contains(s, "<token") {
		t.Fatalf("invalidating login: %v %q", ok, s)
	}
	if _, ok := fastLogin(t, srv, "alice", htNone, token2, fastElem); ok {
		t.Fatal("invalidated token accepted")
	}

	// Account deletion removes the tokens.
	token3 := fastToken(t, srv, "alice", htNone)
	if err := srv.DeleteUser(context.Background(), alice); err != nil {
		t.Fatal(err)
	}
	srv.AddUser(t, "alice", "pw")
	if _, ok := fastLogin(t, srv, "alice", htNone, token3, fastElem); ok {
		t.Fatal("token survived account deletion")
	}
}

// TestFASTChannelBinding: tokens for HT-SHA-256-EXPR (tls-exporter) and
// HT-SHA-256-ENDP (tls-server-end-point) log in with the channel binding
// data of their own connection; the token replayed with another
// connection's data, or with HT-SHA-256-NONE, is refused.
func TestFASTChannelBinding(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	srv.AddUser(t, "alice", "pw")
	for _, mech := range []string{"HT-SHA-256-EXPR", "HT-SHA-256-ENDP"} {
		token := fastToken(t, srv, "alice", mech)
		if s, ok := fastLogin(t, srv, "alice", mech, token, fastElem); !ok {
			t.Fatalf("%s: %q", mech, s)
		}
		if s, ok := fastLogin(t, srv, "alice", htNone, token, fastElem); ok || !strings.Contains(s, "<not-authorized ") {
			t.Errorf("%s token with HT-SHA-256-NONE: %v %q", mech, ok, s)
		}
	}
	// A captured tls-exporter login does not work on another connection.
	token := fastToken(t, srv, "alice", "HT-SHA-256-EXPR")
	c1 := dialSM(t, srv.Addr)
	c1.sasl2Features()
	captured := fastMAC(token, "Initiator", c1.fastCB("HT-SHA-256-EXPR")...)
	c2 := dialSM(t, srv.Addr)
	c2.sasl2Features()
	c2.send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-EXPR'><initial-response>` +
		base64.StdEncoding.EncodeToString(append([]byte("alice\x00"), captured...)) +
		`</initial-response><user-agent id='` + fastUA + `'/>` + fastElem + `</authenticate>`)
	c2.await(`<failure xmlns=` + q + `urn:xmpp:sasl:2` + q + `><not-authorized `)
}

// TestFASTCountAndExpiry: a 'count' not above the last one seen for the
// token, or none after one was seen, is refused as a replay, and a new token starts afresh; a token
// used on a later day than its issue is replaced, the old one valid until
// the new one is used; an expired token is credentials-expired.
func TestFASTCountAndExpiry(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	srv.AddUser(t, "alice", "pw")
	token := fastToken(t, srv, "alice", htNone)
	count := func(n string) string { return `<fast xmlns='urn:xmpp:fast:0' count='` + n + `'/>` }
	for _, tc := range []struct {
		n  string
		ok bool
	}{{"1", true}, {"1", false}, {"3", true}, {"2", false}, {"4", true}} {
		if s, ok := fastLogin(t, srv, "alice", htNone, token, count(tc.n)); ok != tc.ok {
			t.Fatalf("count %s: %v %q", tc.n, ok, s)
		}
	}
	// Once counted, a login that omits the count is a replay too.
	if s, ok := fastLogin(t, srv, "alice", htNone, token, fastElem); ok || !strings.Contains(s, "<not-authorized ") {
		t.Fatalf("login without count after counted ones: %v %q", ok, s)
	}

	// Two days later the token is due for rotation.
	srv.PassFASTTime(2 * 24 * time.Hour)
	s, ok := fastLogin(t, srv, "alice", htNone, token, count("5"))
	m := fastTokenRE.FindStringSubmatch(s)
	if !ok || m == nil {
		t.Fatalf("no rotation: %v %q", ok, s)
	}
	if _, ok := fastLogin(t, srv, "alice", htNone, m[2], count("1")); !ok {
		t.Fatal("the new token's count does not start afresh")
	}
	if _, ok := fastLogin(t, srv, "alice", htNone, token, count("6")); ok {
		t.Fatal("old token accepted after the new one was used")
	}

	srv.PassFASTTime(22 * 24 * time.Hour)
	if s, ok := fastLogin(t, srv, "alice", htNone, m[2], fastElem); ok || !strings.Contains(s, "<credentials-expired ") {
		t.Fatalf("expired token: %v %q", ok, s)
	}
}

// TestFASTRevocation: a password change and RevokeTokens revoke an
// account's tokens.
func TestFASTRevocation(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	alice := srv.AddUser(t, "alice", "pw")
	ctx := context.Background()
	for name, revoke := range map[string]func() error{
		"password change": func() error { return srv.SetPassword(ctx, alice, "pw") },
		"RevokeTokens":    func() error { return srv.RevokeTokens(ctx, alice) },
	} {
		token := fastToken(t, srv, "alice", htNone)
		if _, ok := fastLogin(t, srv, "alice", htNone, token, fastElem); !ok {
			t.Fatalf("%s: token refused before", name)
		}
		if err := revoke(); err != nil {
			t.Fatal(err)
		}
		if _, ok := fastLogin(t, srv, "alice", htNone, token, fastElem); ok {
			t.Errorf("%s: token accepted after", name)
		}
	}
}

// TestFASTKey: with Config.FASTKey, the store holds no token, and a
// server on the same store with another key accepts none of its tokens,
// while one with the same key (a restart) does.
func TestFASTKey(t *testing.T) {
	store := memory.New()
	key := []byte(strings.Repeat("k", 32))
	srv := servertest.Start(t, server.Config{Accounts: store, FASTKey: key})
	srv.AddUser(t, "alice", "pw")
	token := fastToken(t, srv, "alice", htNone)

	ctx := context.Background()
	keys, err := store.ServiceKeys(ctx, "fast", storage.ServiceKeysQuery{Max: 10})
	if err != nil || len(keys) != 1 {
		t.Fatalf("stored FAST records: %q %v", keys, err)
	}
	v, _, err := store.ServiceValue(ctx, "fast", keys[0])
	if err != nil || strings.Contains(string(v), token) {
		t.Fatalf("the store holds the token: %q %v", v, err)
	}

	other := servertest.Start(t, server.Config{Accounts: store, FASTKey: []byte(strings.Repeat("x", 32))})
	if _, ok := fastLogin(t, other, "alice", htNone, token, fastElem); ok {
		t.Fatal("a server with another key accepted the token")
	}
	same := servertest.Start(t, server.Config{Accounts: store, FASTKey: key})
	if _, ok := fastLogin(t, same, "alice", htNone, token, fastElem); !ok {
		t.Fatal("a server with the same key refused the token")
	}
	if _, err := server.New(ctx, server.Config{Domains: []string{"localhost"}, Accounts: memory.New(), FASTKey: []byte("short")}); err == nil {
		t.Fatal("a 5-byte FASTKey was accepted")
	}
}

// failingPuts is a memory store whose PutServiceValue fails while fail is
// set, as a full disk would.
type failingPuts struct {
	*memory.Store
	fail atomic.Bool
}

func (f *failingPuts) PutServiceValue(ctx context.Context, ns, key string, v []byte, exp time.Time) error {
	if f.fail.Load() {
		return errors.New("disk full")
	}
	return f.Store.PutServiceValue(ctx, ns, key, v, exp)
}

// TestFASTStoreFailure: when the token cannot be stored, the login
// succeeds without it, with Bind 2, and the stream goes on.
func TestFASTStoreFailure(t *testing.T) {
	store := &failingPuts{Store: memory.New()}
	srv := servertest.Start(t, server.Config{Accounts: store})
	srv.AddUser(t, "alice", "pw")
	store.fail.Store(true)
	c := dialSM(t, srv.Addr)
	c.sasl2Features()
	s := c.sasl2SCRAM("alice", "pw", fastRequest+bind2Body)
	if strings.Contains(s, "<token") || !strings.Contains(s, "<bound ") {
		t.Fatalf("success: %q", s)
	}
	c.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.await(`id=` + q + `p` + q)
}

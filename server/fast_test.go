package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

const (
	fastUA      = `d4565fa7-4d72-4749-b3d3-740edbf87770` // sasl2SCRAM's user agent
	fastRequest = `<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>`
)

var fastTokenRE = regexp.MustCompile(`<token xmlns='urn:xmpp:fast:0' expiry='[^']+' token='([^']+)'/>`)

func fastMAC(token, label string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(label))
	return m.Sum(nil)
}

// sasl2FAST sends a HT-SHA-256-NONE <authenticate/> for user with token
// and extra, and returns the server's answer up to </success> or
// </failure>; on success it checks the server's HMAC.
func (c *smClient) sasl2FAST(user, token, extra string) (string, bool) {
	c.t.Helper()
	b64 := base64.StdEncoding
	c.send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>` +
		b64.EncodeToString(append([]byte(user+"\x00"), fastMAC(token, "Initiator")...)) +
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
	if !hmac.Equal(v, fastMAC(token, "Responder")) {
		c.t.Fatalf("wrong server HMAC in %q", m[0])
	}
	return m[2], true
}

// TestFAST (XEP-0484): a token asked for in a SCRAM login logs in with
// HT-SHA-256-NONE (the server's HMAC checked), with Bind 2; a wrong token
// and an unknown user are refused; a token asked for again replaces the
// old one; invalidation and account deletion remove it.
func TestFAST(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	alice := srv.AddUser(t, "alice", "pw")

	c := dialSM(t, srv.Addr)
	feats := c.sasl2Features()
	if !strings.Contains(feats, `<inline>`) || !strings.Contains(feats, `<fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-NONE</mechanism></fast>`) {
		t.Fatalf("features lack FAST: %q", feats)
	}
	success := c.sasl2SCRAM("alice", "pw", fastRequest)
	m := fastTokenRE.FindStringSubmatch(success)
	if m == nil {
		t.Fatalf("no token in %q", success)
	}
	token := m[1]

	login := func(user, token, extra string) (string, bool) {
		c := dialSM(t, srv.Addr)
		c.sasl2Features()
		return c.sasl2FAST(user, token, extra)
	}
	if s, ok := login("alice", token, bind2Body); !ok || !strings.Contains(s, `<authorization-identifier>alice@localhost/kiez-test.`) {
		t.Fatalf("FAST login: %v %q", ok, s)
	}
	if s, ok := login("alice", token+"x", ""); ok || !strings.Contains(s, `<not-authorized `) {
		t.Fatalf("wrong token: %v %q", ok, s)
	}
	if s, ok := login("nobody", token, ""); ok || !strings.Contains(s, `<not-authorized `) {
		t.Fatalf("unknown user: %v %q", ok, s)
	}

	// Asking for a new token with the current one rotates it; both work
	// until the new one is used.
	s, ok := login("alice", token, fastRequest)
	m = fastTokenRE.FindStringSubmatch(s)
	if !ok || m == nil || m[1] == token {
		t.Fatalf("rotation: %v %q", ok, s)
	}
	token2 := m[1]
	if _, ok := login("alice", token2, ""); !ok {
		t.Fatal("new token refused")
	}
	if _, ok := login("alice", token, ""); ok {
		t.Fatal("old token accepted after the new one was used")
	}

	// Invalidation: the login succeeds, the token is gone after it.
	if _, ok := login("alice", token2, `<fast xmlns='urn:xmpp:fast:0' invalidate='true'/>`); !ok {
		t.Fatal("invalidating login refused")
	}
	if _, ok := login("alice", token2, ""); ok {
		t.Fatal("invalidated token accepted")
	}

	// Account deletion removes the tokens.
	c = dialSM(t, srv.Addr)
	c.sasl2Features()
	m = fastTokenRE.FindStringSubmatch(c.sasl2SCRAM("alice", "pw", fastRequest))
	if m == nil {
		t.Fatal("no token")
	}
	c.tcp.Close()
	if err := srv.DeleteUser(context.Background(), alice); err != nil {
		t.Fatal(err)
	}
	srv.AddUser(t, "alice", "pw")
	if _, ok := login("alice", m[1], ""); ok {
		t.Fatal("token survived account deletion")
	}
}

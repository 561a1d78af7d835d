package server_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/filter/ipfilter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

// scramFail runs a SCRAM exchange with mech to its end with a wrong proof,
// and returns the server's answer.
func (r *rawClient) scramFail(mech, user string) string {
	r.t.Helper()
	r.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='` + mech + `'>` +
		base64.StdEncoding.EncodeToString([]byte("n,,n="+user+",r=abcdefghijklmnop")) + `</auth>`)
	got := r.expect("</challenge>", "</failure>")
	_, ch, ok := strings.Cut(got, "<challenge")
	if !ok {
		return got
	}
	_, ch, _ = strings.Cut(ch, ">")
	ch, _, _ = strings.Cut(ch, "</challenge>")
	first, err := base64.StdEncoding.DecodeString(ch)
	if err != nil {
		r.t.Fatalf("challenge %q: %v", ch, err)
	}
	var nonce string
	for f := range strings.SplitSeq(string(first), ",") {
		if v, ok := strings.CutPrefix(f, "r="); ok {
			nonce = v
		}
	}
	size := map[string]int{"SCRAM-SHA-1": 20, "SCRAM-SHA-256": 32, "SCRAM-SHA-512": 64}[mech]
	proof := base64.StdEncoding.EncodeToString(make([]byte, size))
	r.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` +
		base64.StdEncoding.EncodeToString([]byte("c=biws,r="+nonce+",p="+proof)) + `</response>`)
	return r.expect("</failure>", "<success")
}

// TestAuthEveryMechanism: a client with a wrong password that tries each
// offered mechanism in turn, as slixmpp does (SCRAM-SHA-512, -256, -1,
// then PLAIN), gets a <failure><not-authorized/> for each, the last one
// included, on a stream that stays open; and the per-connection cap
// (Limits.AuthAttempts, 10 by default) still ends a stream that keeps
// guessing.
func TestAuthEveryMechanism(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	srv.AddUser(t, "alice", "pw")
	r := dialRaw(t, srv.Addr)
	r.startTLS()
	for _, mech := range []string{"SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"} {
		if got := r.scramFail(mech, "alice"); !strings.Contains(got, "<not-authorized/>") {
			t.Fatalf("%s: %q", mech, got)
		}
	}
	if got := r.authPlain("alice", "nope"); !strings.Contains(got, "<not-authorized/>") {
		t.Fatalf("PLAIN: %q", got)
	}
	if strings.Contains(r.buf.String(), "stream:error") {
		t.Fatalf("stream ended: %q", r.buf.String())
	}
	// Six more wrong passwords make ten: the tenth failure is written,
	// then the stream ends.
	for i := 5; i < 10; i++ {
		if got := r.authPlain("alice", "nope"); !strings.Contains(got, "<not-authorized/>") {
			t.Fatalf("attempt %d: %q", i, got)
		}
	}
	r.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
		base64.StdEncoding.EncodeToString([]byte("\x00alice\x00nope")) + `</auth>`)
	got := r.expectClosed()
	if !strings.Contains(got, "<not-authorized/>") || !strings.Contains(got, "<stream:error><policy-violation ") {
		t.Fatalf("tenth attempt: %q", got)
	}
}

// TestConnFilterCountsGuesses: the connection filter hears of one failure
// for a client that tries each mechanism in turn, and of one more for each
// mechanism tried again on the stream; the failure that bans is answered,
// then the stream ends, and the next connection is closed unanswered.
func TestConnFilterCountsGuesses(t *testing.T) {
	f, err := ipfilter.New(ipfilter.Options{AuthFailures: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{ConnFilter: f})
	srv.AddUser(t, "alice", "pw")
	r := dialRaw(t, srv.Addr)
	r.startTLS()
	for _, mech := range []string{"SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"} {
		if got := r.scramFail(mech, "alice"); !strings.Contains(got, "<not-authorized/>") {
			t.Fatalf("%s: %q", mech, got)
		}
	}
	r.authPlain("alice", "nope")
	if bans := f.Bans(); len(bans) != 0 {
		t.Fatalf("banned after one round of mechanisms: %v", bans)
	}
	r.authPlain("alice", "nope") // PLAIN again: the second guess
	r = dialRaw(t, srv.Addr)
	r.startTLS()
	r.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
		base64.StdEncoding.EncodeToString([]byte("\x00alice\x00nope")) + `</auth>`)
	got := r.expectClosed()
	if !strings.Contains(got, "<not-authorized/>") || !strings.Contains(got, "<stream:error><policy-violation ") {
		t.Fatalf("third guess: %q", got)
	}
	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(header)) // an admitted stream would be answered
	var ne net.Error
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a banned address's connection: read %d, %v", n, err)
	}
}

// TestSlixmppWrongPassword: Debian's slixmpp with a wrong password tries
// each offered mechanism in turn (SCRAM-SHA-512, -256, -1, then PLAIN)
// and receives a <failure/> for every one, the last included; the
// connection filter counts the round as one failure.
func TestSlixmppWrongPassword(t *testing.T) {
	py := requireSlixmpp(t)
	f, err := ipfilter.New(ipfilter.Options{AuthFailures: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{ConnFilter: f})
	alice := srv.AddUser(t, "alice", "pw")
	host, port, _ := net.SplitHostPort(srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "../testdata/interop/slixmpp_wrongpass.py", alice.String(), host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("slixmpp: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "FAILED_AUTH"); n < 4 || !strings.Contains(string(out), "ALL_FAILED") {
		t.Fatalf("%d failures; slixmpp said:\n%s", n, out)
	}
	if bans := f.Bans(); len(bans) != 0 {
		t.Fatalf("one round of mechanisms banned the client: %v", bans)
	}
}

package main

import (
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// processDomain is one of the kiezd processes of
// TestFederationProcesses.
type processDomain struct {
	domain, c2s, s2s string
	file             string
}

// writeProcessConfig writes d's configuration, reaching each peer and
// its group chat service through [s2s.hosts], with a certificate from ca
// for certNames (d's domain and its sub-domains when nil), and adds the
// account user with kiezd adduser.
func writeProcessConfig(t *testing.T, bin string, d *processDomain, peers []*processDomain, certNames []string, ca *testCA, user string) {
	t.Helper()
	dir := t.TempDir()
	d.file = filepath.Join(dir, "kiezd.toml")
	now := time.Now()
	if certNames == nil {
		certNames = []string{d.domain, "*." + d.domain}
	}
	certLines := writeCert(t, dir, d.domain, certSpec{names: certNames, ca: ca,
		notBefore: now.Add(-time.Hour), notAfter: now.Add(24 * time.Hour)})
	var hosts strings.Builder
	for _, p := range peers {
		fmt.Fprintf(&hosts, "%q = %q\n%q = %q\n", p.domain, p.s2s, "conference."+p.domain, p.s2s)
	}
	conf := fmt.Sprintf(`domains = [%q]
data_dir = "data"
scram_iterations = 4096

[listen]
c2s = [%q]
direct_tls = []
https = []

[log]
level = "debug"

[s2s]
listen = [%q]

[s2s.hosts]
%s
%s`, d.domain, d.c2s, d.s2s, hosts.String(), certLines)
	if err := os.WriteFile(d.file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	createDB(t, filepath.Join(dir, "data"))
	cmd := exec.Command(bin, "-config", d.file, "adduser", user)
	cmd.Stdin = strings.NewReader("password\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kiezd adduser %s: %v\n%s", user, err, out)
	}
}

// TestFederationProcesses runs two kiezd processes built from this
// source, a.test and b.test on loopback, with certificates from a test CA
// both trust (SSL_CERT_FILE), so that they authenticate each other with
// SASL EXTERNAL: a subscription handshake both ways, a message each way
// on one bidirectional stream, both archives, a remote user in a room of
// conference.a.test, offline delivery of a remote sender's message, a
// blocked remote contact stopped, and a bounce once b.test is stopped. A
// third process, c.test, has a certificate from the same CA for another
// name: a.test offers it no SASL EXTERNAL, and the two authenticate with
// dialback over TLS.
func TestFederationProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kiezd and starts three server processes")
	}
	bin := buildKiezd(t)
	ca := newTestCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &processDomain{domain: "a.test", c2s: freePort(t), s2s: freePort(t)}
	b := &processDomain{domain: "b.test", c2s: freePort(t), s2s: freePort(t)}
	c := &processDomain{domain: "c.test", c2s: freePort(t), s2s: freePort(t)}
	writeProcessConfig(t, bin, a, []*processDomain{b, c}, nil, ca, "alice@a.test")
	writeProcessConfig(t, bin, b, []*processDomain{a}, nil, ca, "bob@b.test")
	// Valid for a name that is not c.test's: the chain verifies, the
	// identity does not.
	writeProcessConfig(t, bin, c, []*processDomain{a}, []string{"other.test"}, ca, "carol@c.test")
	start := func(d *processDomain) *child {
		cmd := exec.Command(bin, "-config", d.file, "serve")
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+caFile)
		return startProcess(t, cmd, d.c2s)
	}
	pa, pb, pc := start(a), start(b), start(c)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a.test:\n%s\nb.test:\n%s\nc.test:\n%s", pa.logs, pb.logs, pc.logs)
		}
	})
	connect := func(d *processDomain, user string) (*servertest.Client, func()) {
		addr, err := net.ResolveTCPAddr("tcp", d.c2s)
		if err != nil {
			t.Fatal(err)
		}
		sess, err := login(t, addr, false, user, "password")
		if err != nil {
			t.Fatal(err)
		}
		c := servertest.NewClient(t, sess)
		c.Send(&stanza.Stanza{Kind: stanza.Presence})
		return c, func() { logout(sess) }
	}
	aliceJID, bobJID, carolJID := jid.MustParse("alice@a.test"), jid.MustParse("bob@b.test"), jid.MustParse("carol@c.test")
	alice, _ := connect(a, "alice@a.test")
	bob, bobOut := connect(b, "bob@b.test")
	alice.Sync()
	bob.Sync()

	subscribeBoth(alice, bob, aliceJID, bobJID)
	chat(alice, bobJID, "m1", "hello from a.test")
	bob.Expect(servertest.Body("hello from a.test"))
	chat(bob, aliceJID, "m2", "hello from b.test")
	alice.Expect(servertest.Body("hello from b.test"))
	wantArchived(t, alice, bob)
	// a.test opened the one stream, authenticated by its certificate,
	// and b.test answered on it (XEP-0288).
	if !strings.Contains(pa.logs.String(), "auth=sasl bidi=true") || strings.Contains(pb.logs.String(), "outgoing stream established") {
		t.Errorf("not one bidirectional stream authenticated with SASL EXTERNAL")
	}

	// Bob joins alice's room at conference.a.test (streams of its own,
	// from and to the service's domain, which a.test's certificate
	// covers with its wildcard) and talks there: both occupants get it.
	remoteOccupant(t, alice, bob, "lounge@conference.a.test")

	// Bob goes offline: once alice sees it, her message waits in his
	// offline storage.
	bobOut()
	alice.Expect(func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Presence && st.Type == "unavailable" && st.From.Bare().Equal(bobJID)
	})
	chat(alice, bobJID, "m3", "while you were away")
	// b.test reads its stream in order: once it answers this iq, the
	// message is stored.
	wantResultIQ(t, textIQ(t, alice, "after-m3", `<iq type='get' id='after-m3' to='b.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`))
	bob, _ = connect(b, "bob@b.test")
	got := bob.Expect(servertest.Body("while you were away"))
	if !got.From.Bare().Equal(aliceJID) || !got.HasChild(xml.Name{Space: "urn:xmpp:delay", Local: "delay"}) {
		t.Errorf("offline message from %s: %s", got.From, stanzaText(got))
	}

	// Alice blocks bob (XEP-0191): a.test refuses his message with the
	// error of the blocking module, and alice never sees it.
	wantResultIQ(t, textIQ(t, alice, "block", `<iq type='set' id='block'><block xmlns='urn:xmpp:blocking'><item jid='bob@b.test'/></block></iq>`))
	chat(bob, aliceJID, "m4", "are you there?")
	if e := bob.Expect(servertest.ByID("m4")); e.Type != stanza.Error || !strings.Contains(stanzaText(e), "service-unavailable") {
		t.Fatalf("to a user who blocks him: %s", stanzaText(e))
	}
	alice.SyncNone(servertest.Body("are you there?"))
	wantResultIQ(t, textIQ(t, alice, "unblock", `<iq type='set' id='unblock'><unblock xmlns='urn:xmpp:blocking'><item jid='bob@b.test'/></unblock></iq>`))

	// Carol at c.test writes to alice: c.test opens the stream, a.test
	// offers no SASL EXTERNAL for a certificate not valid for c.test, and
	// dialback (over TLS; a.test asks c.test's authoritative server)
	// authenticates it. Alice's answer goes back on the same stream.
	carol, _ := connect(c, "carol@c.test")
	carol.Sync()
	chat(carol, aliceJID, "m5", "hello from c.test")
	if got := alice.Expect(servertest.Body("hello from c.test")); !got.From.Bare().Equal(carolJID) {
		t.Errorf("carol's message from %s", got.From)
	}
	chat(alice, carolJID, "m6", "hello from a.test to c.test")
	carol.Expect(servertest.Body("hello from a.test to c.test"))
	if logs := pc.logs.String(); !logLine(logs, "outgoing stream established", "remote=a.test auth=dialback bidi=true") || strings.Contains(logs, "auth=sasl") {
		t.Errorf("c.test's stream to a.test not authenticated by dialback")
	}
	if logLine(pa.logs.String(), "outgoing stream established", "remote=c.test") {
		t.Errorf("a.test opened a stream of its own to c.test")
	}

	// b.test stops (SIGTERM): it ends the stream with system-shutdown,
	// and what alice sends then bounces.
	pb.cmd.Process.Signal(syscall.SIGTERM)
	waited := make(chan error, 1)
	go func() { waited <- pb.cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("b.test's exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("b.test did not stop on SIGTERM")
	}
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(pa.logs.String(), "s2s: outgoing stream ended"); {
		if time.Now().After(deadline) {
			t.Fatal("a.test did not see its stream to b.test end")
		}
		time.Sleep(20 * time.Millisecond)
	}
	chat(alice, bobJID, "m7", "anyone there?")
	bounce := stanzaText(alice.Expect(servertest.ByID("m7")))
	if !strings.Contains(bounce, "remote-server-not-found") && !strings.Contains(bounce, "remote-server-timeout") {
		t.Fatalf("to a stopped server: %s", bounce)
	}
}

// logLine says whether a line of logs holds every one of parts.
func logLine(logs string, parts ...string) bool {
	for l := range strings.SplitSeq(logs, "\n") {
		found := true
		for _, p := range parts {
			found = found && strings.Contains(l, p)
		}
		if found {
			return true
		}
	}
	return false
}

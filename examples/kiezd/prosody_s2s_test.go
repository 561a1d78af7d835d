package main

import (
	"encoding/xml"
	"net"
	"os"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// TestProsodyFederation federates kiezd with Debian's Prosody on
// loopback, both ways: kiezd serves the domain 127.0.0.1 (an IP literal,
// so that Prosody reaches it without DNS, on 127.0.0.1:5269) and reaches
// Prosody's localhost through [s2s.hosts]. Both have self-signed
// certificates, so each authenticates the other with dialback over TLS.
// Without Prosody's mod_s2s_bidi each server opens a stream; with it
// (XEP-0288), the stream of the server that sends first carries both
// servers' stanzas, whichever it is.
func TestProsodyFederation(t *testing.T) {
	for _, tc := range []struct {
		name               string
		bidi, prosodyFirst bool
	}{
		{"two streams", false, false},
		{"bidi, kiezd first", true, false},
		{"bidi, prosody first", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) { prosodyFederation(t, tc.bidi, tc.prosodyFirst) })
	}
}

func prosodyFederation(t *testing.T, bidi, prosodyFirst bool) {
	modules := `"roster"; "saslauth"; "tls"; "dialback"; "disco"`
	if bidi {
		modules += `; "s2s_bidi"`
	}
	p := newProsody(t, modules)
	s2sAddr := freePort(t)
	_, s2sPort, _ := net.SplitHostPort(s2sAddr)
	data, err := os.ReadFile(p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(data), "s2s_ports = { }", "s2s_ports = { "+s2sPort+" }\ns2s_secure_auth = false\ns2s_require_encryption = true", 1)
	if err := os.WriteFile(p.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p.register("pat", "pat-password")

	// kiezd must be where Prosody looks for 127.0.0.1: port 5269.
	ln, err := net.Listen("tcp", "127.0.0.1:5269")
	if err != nil {
		t.Skipf("127.0.0.1:5269 is taken: %v", err)
	}
	ln.Close()
	file, _ := testConfig(t, "\n[log]\nlevel = \"debug\"\n\n[muc]\nenabled = false\n\n[s2s]\nlisten = [\"127.0.0.1:5269\"]\n\n[s2s.hosts]\nlocalhost = \""+s2sAddr+"\"\n")
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(text), `domains = ["localhost"]`, `domains = ["127.0.0.1"]`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "kim@127.0.0.1"); code != 0 {
		t.Fatal(stderr)
	}
	p.start()
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("kiezd did not start:\n%s", d.stderr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logText, _ := os.ReadFile(p.dir + "/prosody.log")
			t.Logf("kiezd:\n%s\nprosody:\n%s", d.stderr, logText)
		}
	})
	sess, err := login(t, d.bound.C2S[0], false, "kim@127.0.0.1", "password")
	if err != nil {
		t.Fatal(err)
	}
	kim := servertest.NewClient(t, sess)
	kim.Send(&stanza.Stanza{Kind: stanza.Presence})
	pat := p.connect("pat", "pat-password")
	pat.Sync()

	// One message from the first, answered by the other.
	first, second := kim, pat
	firstJID, secondJID := jid.MustParse("kim@127.0.0.1"), jid.MustParse("pat@localhost")
	if prosodyFirst {
		first, second, firstJID, secondJID = pat, kim, secondJID, firstJID
	}
	msg := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: secondJID, ID: "m1"}
	msg.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "hello"))
	first.Send(msg)
	got := second.Expect(servertest.Body("hello"))
	if !got.From.Bare().Equal(firstJID) {
		t.Fatalf("from %s", got.From)
	}
	reply := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: got.From, ID: "m2"}
	reply.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "hello back"))
	second.Send(reply)
	first.Expect(servertest.Body("hello back"))

	// Which streams kiezd opened and accepted. kiezd verifies Prosody's
	// dialback key on a stream that authenticates nothing; Prosody
	// verifies kiezd's on its own outgoing stream, which it
	// authenticates too: with kiezd first, both streams exist anyway.
	logs := d.stderr.String()
	out, in := strings.Contains(logs, "s2s: outgoing stream established"), strings.Contains(logs, "s2s: incoming stream authenticated")
	switch {
	case !bidi && (!out || !in):
		t.Errorf("without bidi: outgoing stream %v, incoming stream %v; want both", out, in)
	case bidi && prosodyFirst && (out || !in):
		t.Errorf("bidi, Prosody first: outgoing stream %v, incoming stream %v; want only Prosody's", out, in)
	case bidi && !prosodyFirst && !strings.Contains(logs, "bidi=true"):
		t.Errorf("kiezd's stream is not bidirectional")
	}
}

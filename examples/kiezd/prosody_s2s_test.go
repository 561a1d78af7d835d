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
func TestProsodyFederation(t *testing.T) {
	p := newProsody(t, `"roster"; "saslauth"; "tls"; "dialback"; "disco"`)
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
	file, _ := testConfig(t, "\n[muc]\nenabled = false\n\n[s2s]\nlisten = [\"127.0.0.1:5269\"]\n\n[s2s.hosts]\nlocalhost = \""+s2sAddr+"\"\n")
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

	msg := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: jid.MustParse("pat@localhost"), ID: "k1"}
	msg.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "hello prosody"))
	kim.Send(msg)
	got := pat.Expect(servertest.Body("hello prosody"))
	if got.From.Bare().String() != "kim@127.0.0.1" {
		t.Fatalf("from %s", got.From)
	}
	reply := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: got.From, ID: "p1"}
	reply.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "hello kiezd"))
	pat.Send(reply)
	kim.Expect(servertest.Body("hello kiezd"))
}

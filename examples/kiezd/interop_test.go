package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// TestSlixmppThroughKiezd runs the subscription interop script against the
// kiezd binary's own serve command with its default modules: Debian's
// slixmpp (alice) asks a mellium client (bob) for a subscription, both
// approve, and they chat once the subscription is mutual.
func TestSlixmppThroughKiezd(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import slixmpp").Run(); err != nil {
		if os.Getenv("KIEZ_REQUIRE_INTEROP") != "" {
			t.Fatalf("python3-slixmpp is required: %v", err)
		}
		t.Skip("python3-slixmpp not installed (apt-get install python3-slixmpp)")
	}
	file, _ := testConfig(t, "")
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", u); code != 0 {
			t.Fatal(stderr)
		}
	}
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited with %d:\n%s", d.code, d.stderr)
	}
	sess, err := login(t, d.bound.C2S[0], false, "bob@localhost", "password")
	if err != nil {
		t.Fatal(err)
	}
	bob := servertest.NewClient(t, sess)
	alice := jid.MustParse("alice@localhost")
	bob.Send(&stanza.Stanza{Kind: stanza.Presence})

	host, port, _ := net.SplitHostPort(d.bound.C2S[0].String())
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "../../testdata/interop/slixmpp_subscribe.py", alice.String(), host, port, "bob@localhost")
	cmd.Env = append(os.Environ(), "KIEZ_TEST_PASSWORD=password")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	presence := func(typ string) *stanza.Stanza {
		return &stanza.Stanza{Kind: stanza.Presence, Type: typ, To: alice}
	}
	bob.Expect(func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Presence && st.Type == "subscribe" && st.From.Equal(alice)
	})
	bob.Send(presence("subscribed"))
	bob.Send(presence("subscribe"))
	hello := bob.Expect(servertest.Body("subscribed both ways"))
	reply := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: hello.From}
	reply.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "hello from go"))
	bob.Send(reply)
	bob.Expect(servertest.Body("bye from slixmpp"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("slixmpp client: %v\n%s", err, out.String())
	}
}

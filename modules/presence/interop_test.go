package presence_test

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
	"github.com/kiez-im/kiez/storage"
)

// TestSlixmppSubscription: Debian's slixmpp asks a mellium client for a
// subscription; the Go side approves and asks back, slixmpp approves by
// itself; both rosters end in "both", then they chat.
func TestSlixmppSubscription(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import slixmpp").Run(); err != nil {
		if os.Getenv("KIEZ_REQUIRE_INTEROP") != "" {
			t.Fatalf("python3-slixmpp is required: %v", err)
		}
		t.Skip("python3-slixmpp not installed (apt-get install python3-slixmpp)")
	}
	e := start(t)
	b := e.online(t, e.bob)

	host, port, _ := net.SplitHostPort(e.srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "../../testdata/interop/slixmpp_subscribe.py", e.alice.String(), host, port, e.bob.String())
	cmd.Env = append(os.Environ(), "KIEZ_TEST_PASSWORD=pw")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b.Expect(isPres("subscribe", e.alice))
	b.Send(pres("subscribed", e.alice))
	b.Send(pres("subscribe", e.alice))
	b.Expect(isPush(e.alice, storage.SubBoth, false))
	hello := b.Expect(servertest.Body("subscribed both ways"))
	b.Send(chat(hello.From, "hello from go"))
	b.Expect(servertest.Body("bye from slixmpp"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("slixmpp client: %v\n%s", err, out.String())
	}
	e.wantSub(t, e.alice, e.bob, storage.SubBoth, false)
	e.wantSub(t, e.bob, e.alice, storage.SubBoth, false)
}

func chat(to jid.JID, body string) *stanza.Stanza {
	st := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: to}
	st.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, body))
	return st
}

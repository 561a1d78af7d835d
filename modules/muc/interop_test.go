package muc_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/kiez-im/kiez/modules/muc"
)

// TestSlixmppMUC: two sessions of Debian's slixmpp, with its xep_0045
// plugin, create and configure a room, join it, chat, leave and join
// again reading the history (with delay and stanza-id), change an
// affiliation and read the member list, and destroy the room with an
// alternate venue (testdata/slixmpp_muc.py tells the steps).
func TestSlixmppMUC(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import slixmpp.plugins.xep_0045").Run(); err != nil {
		if os.Getenv("KIEZ_REQUIRE_INTEROP") != "" {
			t.Fatalf("python3-slixmpp is required: %v", err)
		}
		t.Skip("python3-slixmpp not installed (apt-get install python3-slixmpp)")
	}
	e := start(t, muc.Options{})
	host, port, _ := net.SplitHostPort(e.srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/slixmpp_muc.py", e.alice.String(), e.bob.String(), host, port,
		roomJID("interop").String(), roomJID("elsewhere").String())
	cmd.Env = append(os.Environ(), "KIEZ_TEST_PASSWORD=pw")
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("slixmpp clients (exit: %v) wrote:\n%s", err, out.String())
	}
}

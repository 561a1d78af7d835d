package server_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

// requireSlixmpp finds Debian's python3 with slixmpp, skipping the test
// when it is missing unless KIEZ_REQUIRE_INTEROP is set (as CI sets it).
func requireSlixmpp(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import slixmpp").Run(); err != nil {
		if os.Getenv("KIEZ_REQUIRE_INTEROP") != "" {
			t.Fatalf("python3-slixmpp is required: %v", err)
		}
		t.Skip("python3-slixmpp not installed (apt-get install python3-slixmpp)")
	}
	return py
}

// TestSlixmppInterop: a slixmpp client logs in through STARTTLS and SCRAM
// and exchanges messages with a mellium client through the server.
func TestSlixmppInterop(t *testing.T) {
	py := requireSlixmpp(t)
	srv := servertest.Start(t, server.Config{})
	alice := srv.AddUser(t, "alice", "interop pw")
	bob := srv.AddUser(t, "bob", "pw")
	b := srv.Connect(t, bob, "pw")
	b.Send(presence())
	b.Sync()

	host, port, _ := net.SplitHostPort(srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "../testdata/interop/slixmpp_chat.py", alice.String(), "-", host, port, bob.String())
	cmd.Env = append(os.Environ(), "KIEZ_TEST_PASSWORD=interop pw")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hello := b.Expect(servertest.Body("hello from slixmpp"))
	if !hello.From.Bare().Equal(alice) || hello.From.Resourcepart() == "" {
		t.Fatalf("message from %s, want a full JID of %s", hello.From, alice)
	}
	b.Send(message(hello.From, "go1", "hello from go"))
	bye := b.Expect(servertest.Body("bye from slixmpp"))
	if !bye.From.Equal(hello.From) {
		t.Fatalf("bye from %s, want %s", bye.From, hello.From)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("slixmpp client: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "GOT "+b.LocalAddr().String()) {
		t.Fatalf("slixmpp did not see our message from %s:\n%s", b.LocalAddr(), out.String())
	}
}

package register_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/kiez-im/kiez/modules/register"
	"github.com/kiez-im/kiez/server/servertest"
)

// slixmpp runs testdata/interop/slixmpp_register.py in mode and returns
// its output, failing the test if it fails.
func slixmpp(t *testing.T, srv *servertest.Server, mode, user, password, newPassword string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "../../testdata/interop/slixmpp_register.py", mode, user+"@localhost", host, port)
	cmd.Env = append(os.Environ(), "KIEZ_TEST_PASSWORD="+password, "KIEZ_TEST_NEW_PASSWORD="+newPassword)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("slixmpp %s: %v\n%s", mode, err, out.String())
	}
	return out.String()
}

// TestSlixmppRegister: Debian's slixmpp registers an account in-band with
// its xep_0077 plugin (fields first, then the set, then SASL on the same
// stream), changes its password, and in a second run with the new
// password deletes the account.
func TestSlixmppRegister(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import slixmpp.plugins.xep_0077").Run(); err != nil {
		if os.Getenv("KIEZ_REQUIRE_INTEROP") != "" {
			t.Fatalf("python3-slixmpp is required: %v", err)
		}
		t.Skip("python3-slixmpp not installed (apt-get install python3-slixmpp)")
	}
	srv := start(t, register.Options{Policy: register.PolicyOpen}, register.Deps{})
	slixmpp(t, srv, "register", "zoe", "first password", "second password")
	if err := login(srv, "zoe", "first password"); err == nil {
		t.Error("login with the password slixmpp changed")
	}
	if err := login(srv, "zoe", "second password"); err != nil {
		t.Fatalf("login with the password slixmpp set: %v", err)
	}
	slixmpp(t, srv, "remove", "zoe", "second password", "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		users, err := srv.Users(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(users) == 1 { // alice
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("accounts %q after slixmpp removed zoe", users)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

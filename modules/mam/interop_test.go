package mam_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

// TestSlixmpp: Debian's slixmpp, with its own XEP-0313, XEP-0059,
// XEP-0359 and XEP-0050 plugins, reads the form and metadata, pages
// through an archive a Go client filled, matches a live stanza-id with the
// archive, and deletes the archive with the ad-hoc command.
func TestSlixmpp(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import slixmpp").Run(); err != nil {
		if os.Getenv("KIEZ_REQUIRE_INTEROP") != "" {
			t.Fatalf("python3-slixmpp is required: %v", err)
		}
		t.Skip("python3-slixmpp not installed (apt-get install python3-slixmpp)")
	}
	e := start(t, backends[1].open, mam.Options{}, func(m *mam.Module) server.Module {
		a, err := adhoc.New(adhoc.Options{}, adhoc.Deps{Commands: []adhoc.Command{m.DeleteArchiveCommand()}})
		if err != nil {
			t.Fatal(err)
		}
		return a
	})
	alice := e.srv.AddUser(t, "alice", "pw")
	bob := e.user(t, "bob")
	const n = 45
	for i := range n {
		bob.Send(chat(alice, fmt.Sprint("m", i), fmt.Sprint(i)))
	}
	bob.Sync()

	host, port, _ := net.SplitHostPort(e.srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/slixmpp_mam.py", alice.String(), host, port, bob.LocalAddr().Bare().String(), fmt.Sprint(n))
	cmd.Env = append(os.Environ(), "KIEZ_TEST_PASSWORD=pw")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	live := bob.Expect(servertest.Body("live"))
	bob.Send(chat(live.From, "r", "live reply"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("slixmpp client: %v\n%s", err, out.String())
	}
	t.Logf("slixmpp:\n%s", out.String())
}

package push_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/push"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage/memory"
)

// TestSlixmppAppServer: a second process, Debian's slixmpp logged in as
// an account, is the XEP-0357 app server. Alice registers it, goes
// offline, and a message from Bob makes the server publish a
// notification to it; she comes back, registers another node, loses her
// connection with her session hibernated, and the next message is
// published too. Neither notification carries the sender or the body.
func TestSlixmppAppServer(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import slixmpp").Run(); err != nil {
		if os.Getenv("KIEZ_REQUIRE_INTEROP") != "" {
			t.Fatalf("python3-slixmpp is required: %v", err)
		}
		t.Skip("python3-slixmpp not installed (apt-get install python3-slixmpp)")
	}
	store := memory.New()
	m, err := push.New(push.Options{MinInterval: -1}, push.Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	p := &probe{ended: make(chan jid.JID, 16)}
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{m, p}})
	e := &env{srv: srv, store: store, push: m, probe: p}
	e.alice = srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	srv.AddUser(t, "app", "pw")
	e.bob = srv.Connect(t, jid.MustParse("bob@localhost/pc"), "pw")

	host, port, _ := net.SplitHostPort(srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "../../testdata/interop/slixmpp_push_app.py", "app@localhost/push", host, port, "2")
	cmd.Env = append(os.Environ(), "KIEZ_TEST_PASSWORD=pw")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
		close(lines)
	}()
	next := func(prefix string) string {
		t.Helper()
		for l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("the app server ended without %s", prefix)
		return ""
	}
	check := func(note, node string) {
		t.Helper()
		for _, want := range []string{`node="` + node + `"`, push.NSSummary, "message-count", "s3cr3t"} {
			if !strings.Contains(note, want) {
				t.Errorf("notification lacks %q: %s", want, note)
			}
		}
		for _, bad := range []string{"bob", "wherefore", "last-message"} {
			if strings.Contains(note, bad) {
				t.Errorf("notification carries %q: %s", bad, note)
			}
		}
	}
	next("READY")

	// Offline.
	r, _ := e.rawAlice(t)
	r.Send(`</stream:stream>`)
	<-e.probe.ended
	e.bob.Send(message(e.alice, "wherefore art thou"))
	check(next("NOTIFY"), "n1")

	// Hibernated, on another node.
	_, conn := e.rawLogin(t,
		`<iq type='set' id='dis'><disable xmlns='urn:xmpp:push:0' jid='app@localhost/push' node='n1'/></iq>`,
		strings.Replace(enableXML, "node='n1'", "node='n2'", 1))
	conn.Close()
	await(t, "alice's session to hibernate", func() bool {
		s := e.probe.host.Sessions(e.alice)
		return len(s) == 1 && s[0].Hibernated()
	})
	e.bob.Send(message(e.alice, "wherefore art thou, again"))
	check(next("NOTIFY"), "n2")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("slixmpp app server: %v", err)
	}
}

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain lets the test binary act as kiezd itself (for tests that must
// kill the server process).
func TestMain(m *testing.M) {
	if os.Getenv("KIEZD_TEST_CHILD") == "1" {
		main()
		return
	}
	code := m.Run()
	if err := stopPostgres(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// child is a kiezd serve process the test started.
type child struct {
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer // its standard output and error
}

// startChild starts the test binary as kiezd serve with the configuration
// file, and waits until it accepts connections on addr.
func startChild(t *testing.T, file, addr string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-config", file, "serve")
	cmd.Env = append(os.Environ(), "KIEZD_TEST_CHILD=1")
	return startProcess(t, cmd, addr)
}

// startProcess starts cmd, a kiezd serve, killed when the test or
// benchmark ends, and waits until it accepts connections on addr.
func startProcess(t testing.TB, cmd *exec.Cmd, addr string) *child {
	t.Helper()
	logs := new(syncBuffer)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, addr: addr, logs: logs}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("kiezd did not start:\n%s", logs.String())
	return nil
}

// freePort returns a loopback address with a port that was free a moment
// ago, for a kiezd process to listen on.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var bodyRE = regexp.MustCompile(`<body>(c[0-9]+)</body>`)

// TestKillDuringArchivedLoad kills kiezd with SIGKILL while a sender with
// stream management streams archived messages to an online recipient, then
// restarts it and reads the recipient's archive: every message the server
// acknowledged (<a h/>) and every message the recipient received must be
// there.
func TestKillDuringArchivedLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	dir := t.TempDir()
	addr := freePort(t)
	file := filepath.Join(dir, "kiezd.toml")
	conf := fmt.Sprintf("domains = [\"localhost\"]\ndata_dir = %q\nscram_iterations = 4096\n\n[listen]\nc2s = [%q]\ndirect_tls = []\nhttps = []\n\n[s2s]\nlisten = []\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	createDB(t, filepath.Join(dir, "data"))
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", u); code != 0 {
			t.Fatal(stderr)
		}
	}

	srv := startChild(t, file, addr)
	bob, err := rawLogin(addr, "bob", "localhost", "password", "phone")
	if err != nil {
		t.Fatal(err)
	}
	bob.send(`<presence/>`)
	var mu sync.Mutex
	received := map[string]bool{}
	go func() {
		for {
			e, err := bob.next()
			if err != nil {
				return
			}
			if m := bodyRE.FindStringSubmatch(e.Inner); e.XMLName.Local == "message" && m != nil {
				mu.Lock()
				received[m[1]] = true
				mu.Unlock()
			}
		}
	}()

	alice, err := rawLogin(addr, "alice", "localhost", "password", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	alice.send(`<enable xmlns='urn:xmpp:sm:3'/>`)
	if _, err := alice.expect("enabled"); err != nil {
		t.Fatalf("stream management: %v", err)
	}
	alice.send(`<presence/>`) // handled stanza 1
	var acked atomic.Int64    // highest h the server acknowledged
	var inbound atomic.Int64
	go func() {
		for {
			e, err := alice.next()
			if err != nil {
				return
			}
			switch e.XMLName.Local {
			case "a":
				if h, err := strconv.ParseInt(e.attr("h"), 10, 64); err == nil && h > acked.Load() {
					acked.Store(h)
				}
			case "r":
				alice.send(`<a xmlns='urn:xmpp:sm:3' h='%d'/>`, inbound.Load())
			case "message", "presence", "iq":
				inbound.Add(1)
			}
		}
	}()

	// Stream for a while, asking for acks; kill the server mid-stream.
	kill := time.After(1500 * time.Millisecond)
	sent := 0
load:
	for sent < 50000 {
		select {
		case <-kill:
			break load
		default:
		}
		if err := alice.send(`<message type='chat' to='bob@localhost' id='c%d'><body>c%d</body></message>`, sent, sent); err != nil {
			break
		}
		sent++
		if sent%10 == 0 {
			alice.send(`<r xmlns='urn:xmpp:sm:3'/>`)
		}
	}
	if err := srv.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Wait()
	alice.close()
	bob.close()
	time.Sleep(50 * time.Millisecond)  // let the readers see the end
	ackedMsgs := int(acked.Load()) - 1 // h counts the presence first
	mu.Lock()
	got := len(received)
	mu.Unlock()
	t.Logf("sent %d, acknowledged %d, received %d before SIGKILL", sent, ackedMsgs, got)
	if ackedMsgs < 1 || got < 1 {
		t.Fatalf("the load did not get going: acknowledged %d, received %d", ackedMsgs, got)
	}

	startChild(t, file, addr)
	archived := readArchive(t, addr, "bob")
	for i := 0; i < ackedMsgs; i++ {
		if id := "c" + strconv.Itoa(i); !archived[id] {
			t.Errorf("acknowledged message %s missing from the archive after SIGKILL", id)
		}
	}
	mu.Lock()
	for id := range received {
		if !archived[id] {
			t.Errorf("delivered message %s missing from the archive after SIGKILL", id)
		}
	}
	mu.Unlock()
	t.Logf("archive holds %d messages after restart", len(archived))
}

// readArchive pages through user's whole archive (XEP-0313) and returns
// the bodies found.
func readArchive(t *testing.T, addr, user string) map[string]bool {
	t.Helper()
	c, err := rawLogin(addr, user, "localhost", "password", "reader")
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	c.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	lastRE := regexp.MustCompile(`<last>([^<]+)</last>`)
	found := map[string]bool{}
	after := ""
	for page := 0; page < 1000; page++ {
		set := "<max>250</max>"
		if after != "" {
			set += "<after>" + after + "</after>"
		}
		id := "q" + strconv.Itoa(page)
		c.send(`<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>%s</set></query></iq>`, id, set)
		for {
			e, err := c.next()
			if err != nil {
				t.Fatalf("reading the archive: %v", err)
			}
			if e.XMLName.Local == "message" {
				if m := bodyRE.FindStringSubmatch(e.Inner); m != nil {
					found[m[1]] = true
				}
				continue
			}
			if e.XMLName.Local != "iq" || e.attr("id") != id {
				continue
			}
			if e.attr("type") != "result" {
				t.Fatalf("archive query: %s", e.Inner)
			}
			if regexp.MustCompile(`complete=["']true["']`).MatchString(e.Inner) {
				return found
			}
			m := lastRE.FindStringSubmatch(e.Inner)
			if m == nil {
				return found
			}
			after = m[1]
			break
		}
	}
	t.Fatal("archive paging did not end")
	return nil
}

package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

// moduleNames builds cfg's modules on a memory store and names them.
func moduleNames(t *testing.T, cfg *config) []string {
	t.Helper()
	mods, err := cfg.modules(memory.New(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, m.Name())
	}
	return names
}

// Push is on by default; external services and the SOCKS5 proxy are off
// until configured, and then built with the table's options (the TURN
// secret read from its file, relative to the configuration file).
func TestMobileConfig(t *testing.T) {
	cfg, err := parseConfig("kiezd.toml", []byte(`domains = ["example.org"]`))
	if err != nil {
		t.Fatal(err)
	}
	if got := moduleNames(t, cfg); !slices.Contains(got, "push") || slices.Contains(got, "extdisco") || slices.Contains(got, "proxy65") {
		t.Errorf("default modules %v: want push without extdisco and proxy65", got)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "turn.secret"), []byte("north-wind\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "kiezd.toml")
	cfg, err = parseConfig(file, []byte(`domains = ["example.org"]
[push]
enabled = false
[external_services]
turn_secret_file = "turn.secret"
credential_ttl = "12h"
[[external_services.server]]
type = "turn"
host = "turn.example.org"
port = 3478
transport = "udp"
[proxy65]
listen = "127.0.0.1:0"
public_host = "proxy.example.org"
max_streams = 4
rate = "1MiB"
`))
	if err != nil {
		t.Fatal(err)
	}
	got := moduleNames(t, cfg)
	if slices.Contains(got, "push") || !slices.Contains(got, "extdisco") || !slices.Contains(got, "proxy65") {
		t.Errorf("configured modules %v: want extdisco and proxy65 without push", got)
	}
	if o := cfg.extServicesOptions(func(string, ...any) { t.Error("unexpected error") }); o.Secret != "north-wind" || len(o.Services) != 1 || o.Services[0].Port != 3478 {
		t.Errorf("external services options %+v", o)
	}
	if o := cfg.proxy65Options(func(string, ...any) {}); o.Listen != "127.0.0.1:0" || o.PublicHost != "proxy.example.org" || o.MaxStreams != 4 || o.Rate != 1<<20 {
		t.Errorf("proxy65 options %+v", o)
	}
}

func TestMobileConfigErrors(t *testing.T) {
	for _, tc := range []struct{ text, msg string }{
		{"[external_services]\nturn_secret = \"a\"\nturn_secret_file = \"b\"\n", "set turn_secret or turn_secret_file, not both"},
		{"[external_services]\nturn_secret_file = \"missing.secret\"\n", "external_services.turn_secret_file"},
		{"[[external_services.server]]\ntype = \"relay\"\nhost = \"h\"\n", `entry 1: type "relay"`},
		{"[[external_services.server]]\ntype = \"turn\"\n", "entry 1: no host"},
		{"[external_services]\ncredential_ttl = \"31d\"\n", "external_services.credential_ttl"},
		{"[proxy65]\nlisten = \"5000\"\n", "proxy65.listen"},
		{"[push]\nmax_registrations = 1000\n", "push.max_registrations"},
		{"[push]\nbogus = 1\n", "bogus"},
	} {
		cfg, err := parseConfig(filepath.Join(t.TempDir(), "kiezd.toml"), []byte("domains = [\"example.org\"]\n"+tc.text))
		if err == nil {
			_, err = cfg.modules(memory.New(), nil, nil, nil)
		}
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: error %v, want %q", tc.text, err, tc.msg)
		}
	}
}

// kiezd serves the three: a client registers for push, gets the TURN
// server with credentials, and finds the SOCKS5 proxy, which listens
// where it says.
func TestMobileServe(t *testing.T) {
	file, _ := testConfig(t, `
[external_services]
turn_secret = "north-wind"

[[external_services.server]]
type = "turn"
host = "turn.example.org"
port = 3478
transport = "udp"

[proxy65]
listen = "127.0.0.1:0"
`)
	if code, _, stderr := kiezd(t, auditPassword+"\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited:\n%s", d.stderr)
	}
	sess, err := login(t, d.bound.C2S[0], false, "alice@localhost/phone", auditPassword)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logout(sess) })
	c := servertest.NewClient(t, sess)
	ask := func(id, typ, to, payload string) string {
		t.Helper()
		if err := c.SendRaw(`<iq type='` + typ + `' to='` + to + `' id='` + id + `'>` + payload + `</iq>`); err != nil {
			t.Fatal(err)
		}
		return string(stanza.Marshal(c.Expect(servertest.ByID(id))))
	}
	if got := ask("p1", "set", "alice@localhost", `<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n1'/>`); !strings.Contains(got, `type="result"`) {
		t.Errorf("push enable: %s", got)
	}
	if got := ask("x1", "get", "localhost", `<services xmlns='urn:xmpp:extdisco:2'/>`); !strings.Contains(got, `host="turn.example.org"`) || !strings.Contains(got, `password="`) {
		t.Errorf("external services: %s", got)
	}
	if got := ask("d1", "get", "localhost", `<query xmlns='http://jabber.org/protocol/disco#items'/>`); !strings.Contains(got, `jid="proxy.localhost"`) {
		t.Errorf("disco#items lack the proxy: %s", got)
	}
	got := ask("s1", "get", "proxy.localhost", `<query xmlns='http://jabber.org/protocol/bytestreams'/>`)
	_, rest, _ := strings.Cut(got, `port="`)
	port, _, _ := strings.Cut(rest, `"`)
	if !strings.Contains(got, `host="127.0.0.1"`) || port == "" || port == "0" {
		t.Fatalf("streamhost: %s", got)
	}
	conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatalf("the proxy does not listen where it says: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second)) // a guard against a hang only
	conn.Write([]byte{5, 1, 0})
	var b [2]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil || b != [2]byte{5, 0} {
		t.Errorf("SOCKS5 greeting answered %v, %v", b, err)
	}
}

// kiezd check probes the SOCKS5 proxy's listener with the others and
// counts its port among those to open.
func TestCheckProxy65(t *testing.T) {
	file, _ := testConfig(t, "")
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // stands in for the proxy
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg.Proxy65.Listen = ln.Addr().String()
	r := runChecks(context.Background(), cfg, checkDeps{Resolver: fakeResolver{}}.withDefaults())
	if !r.has("Listeners", levelOK, "proxy65.listen "+cfg.Proxy65.Listen+" answers") {
		t.Errorf("no proxy65 listener check:\n%s", r)
	}
	_, port, _ := net.SplitHostPort(cfg.Proxy65.Listen)
	if !r.has("Listeners", levelNote, "reachability") || !strings.Contains(r.String(), port) {
		t.Errorf("the proxy's port is not among those to open:\n%s", r)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// prosodyTools returns the paths of prosody, prosodyctl and
// prosody-migrator (Debian's prosody package). It skips the test when
// one is missing, or fails it if KIEZ_REQUIRE_INTEROP is set (as CI sets
// it).
func prosodyTools(t *testing.T) (prosody, ctl, migrator string) {
	t.Helper()
	var paths []string
	for _, name := range []string{"prosody", "prosodyctl", "prosody-migrator"} {
		p, err := exec.LookPath(name)
		if err != nil {
			if os.Getenv("KIEZ_REQUIRE_INTEROP") != "" {
				t.Fatalf("%s is required: %v", name, err)
			}
			t.Skipf("%s not installed (apt-get install prosody)", name)
		}
		paths = append(paths, p)
	}
	return paths[0], paths[1], paths[2]
}

// prosodyConfig is a Prosody configuration for the virtual host
// localhost with its data under dir, internal (file) storage, hashed
// passwords, modules (Lua list items), a STARTTLS c2s listener on
// 127.0.0.1:port and no other listener. run_as_root keeps prosodyctl
// from switching to the prosody user, which could not read the test's
// directory, when the tests run as root.
func prosodyConfig(dir string, port int, modules string) string {
	return fmt.Sprintf(`run_as_root = true
pidfile = %[1]q
data_path = %[2]q
log = { { levels = { min = "info" }, to = "file", filename = %[3]q } }
storage = "internal"
authentication = "internal_hashed"
modules_enabled = { %[7]s }
default_archive_policy = true
interfaces = { "127.0.0.1" }
c2s_ports = { %[4]d }
c2s_direct_tls_ports = { }
s2s_ports = { }
s2s_direct_tls_ports = { }
legacy_ssl_ports = { }
ssl = { certificate = %[5]q, key = %[6]q }
VirtualHost "localhost"
`, filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data"), filepath.Join(dir, "prosody.log"), port,
		filepath.Join(dir, "localhost.crt"), filepath.Join(dir, "localhost.key"), modules)
}

// migratorConfig is the prosody-migrator configuration the README shows:
// read Prosody's internal store, write XEP-0227 files. offline is not
// listed: Prosody 0.12's XEP-0227 driver has no handler for it (nor for
// blocklist) and the migrator stops at a store the output cannot open.
func migratorConfig(dataDir string) string {
	return fmt.Sprintf(`input {
	type = "internal";
	path = %q;
	hosts = {
		["localhost"] = { "accounts", "roster", "vcard", "private", "pep-pubsub", "archive-archive" };
	};
}
output {
	type = "xep0227";
}
`, dataDir)
}

// startProsody runs prosody in the foreground with the configuration
// file cfg, waits until it accepts connections on addr and stops it when
// the test ends; the returned function stops it earlier.
func startProsody(t *testing.T, prosody, cfg, addr, logFile string) (stop func()) {
	t.Helper()
	cmd := exec.Command(prosody, "-F", "--config", cfg)
	out := new(syncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed when prosody has exited
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("prosody did not stop on SIGTERM")
		}
	}
	t.Cleanup(stop)
	// Wait for the listener: prosody has no readiness signal. Bounded, so
	// that a prosody that never listens fails the test instead of
	// hanging it.
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return stop
		}
		select {
		case <-exited:
			logText, _ := os.ReadFile(logFile)
			t.Fatalf("prosody exited: %v\n%s\n%s", waitErr, out, logText)
		case <-time.After(50 * time.Millisecond):
		}
		if i == 600 {
			logText, _ := os.ReadFile(logFile)
			t.Fatalf("prosody does not listen on %s:\n%s\n%s", addr, out, logText)
		}
	}
}

// loginWith connects with mellium's client over STARTTLS, accepting any
// certificate for localhost, authenticates with the first of mechs the
// server offers and binds a resource.
func loginWith(t *testing.T, addr, user, password string, mechs ...sasl.Mechanism) (*xmpp.Session, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{ServerName: "localhost", InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	sess, err := xmpp.NewClientSession(ctx, jid.MustParse(user), conn,
		xmpp.StartTLS(cfg), xmpp.SASL("", password, mechs...), xmpp.BindResource())
	if err != nil {
		conn.Close()
		return nil, err
	}
	return sess, nil
}

// iqXML sends an iq carrying payload and returns the answer, failing the
// test unless it is a result.
func iqXML(t *testing.T, c *servertest.Client, id, typ, payload string) string {
	t.Helper()
	res := rawIQ(t, c, id, typ, payload)
	var b bytes.Buffer
	if err := res.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// prosodyEnv is a Prosody set up in a test's directory.
type prosodyEnv struct {
	t                      *testing.T
	prosody, ctl, migrator string
	dir, dataDir, cfg      string
	addr                   string // its c2s listener
}

// newProsody writes a configuration for Prosody with modules (Lua list
// items) into a new directory, and a certificate for localhost.
func newProsody(t *testing.T, modules string) *prosodyEnv {
	t.Helper()
	p := &prosodyEnv{t: t, dir: t.TempDir()}
	p.prosody, p.ctl, p.migrator = prosodyTools(t)
	p.dataDir = filepath.Join(p.dir, "data")
	if err := os.Mkdir(p.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writePair(t, filepath.Join(p.dir, "localhost.crt"), filepath.Join(p.dir, "localhost.key"), "localhost")
	p.addr = freePort(t)
	_, portText, _ := net.SplitHostPort(p.addr)
	port, _ := strconv.Atoi(portText)
	p.cfg = filepath.Join(p.dir, "prosody.cfg.lua")
	if err := os.WriteFile(p.cfg, []byte(prosodyConfig(p.dir, port, modules)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs a Prosody tool to completion, failing the test if it fails.
func (p *prosodyEnv) run(name string, args ...string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// register creates an account with prosodyctl.
func (p *prosodyEnv) register(user, password string) {
	p.t.Helper()
	p.run(p.ctl, "--config", p.cfg, "register", user, "localhost", password)
}

// start starts Prosody; the returned function stops it.
func (p *prosodyEnv) start() (stop func()) {
	p.t.Helper()
	return startProsody(p.t, p.prosody, p.cfg, p.addr, filepath.Join(p.dir, "prosody.log"))
}

// connect logs in to Prosody with SCRAM-SHA-1 and sends presence.
func (p *prosodyEnv) connect(user, password string) *servertest.Client {
	p.t.Helper()
	sess, err := loginWith(p.t, p.addr, user+"@localhost", password, sasl.ScramSha1)
	if err != nil {
		p.t.Fatalf("login to prosody as %s: %v", user, err)
	}
	c := servertest.NewClient(p.t, sess)
	c.SendRaw(`<presence/>`)
	return c
}

// migrate runs prosody-migrator with migratorConfig and returns the
// directory it wrote the users' XEP-0227 files into, checking that there
// is one for each of users.
//
// prosody-migrator writes a file per account, named user@host.xml, into
// the data directory compiled into it (/var/lib/prosody on Debian),
// whatever the output store's path says: run a copy of it that writes
// into the test's directory instead. As root it also switches to the
// prosody user unless given --root.
func (p *prosodyEnv) migrate(users ...string) string {
	t := p.t
	t.Helper()
	exportDir := filepath.Join(p.dir, "export")
	if err := os.Mkdir(exportDir, 0o700); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(p.migrator)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^CFG_DATADIR=.*$`)
	if !re.Match(script) {
		t.Fatalf("%s sets no CFG_DATADIR: cannot point its output at the test's directory", p.migrator)
	}
	script = re.ReplaceAll(script, []byte("CFG_DATADIR="+strconv.Quote(exportDir)+";"))
	myMigrator := filepath.Join(p.dir, "prosody-migrator")
	if err := os.WriteFile(myMigrator, script, 0o700); err != nil {
		t.Fatal(err)
	}
	migCfg := filepath.Join(p.dir, "migrator.cfg.lua")
	if err := os.WriteFile(migCfg, []byte(migratorConfig(p.dataDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", migCfg, "input", "output"}
	if os.Geteuid() == 0 {
		args = append([]string{"--root"}, args...)
	}
	p.run(myMigrator, args...)
	for _, u := range users {
		f := filepath.Join(exportDir, u+"@localhost.xml")
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("prosody-migrator wrote no file for %s: %v", u, err)
		}
		t.Logf("%s:\n%s", filepath.Base(f), text)
	}
	return exportDir
}

// importProsody starts a fresh kiezd (top put at the top of its
// configuration, before any table) and imports exportDir into it while it
// runs, failing the test unless every account is imported whole. It
// returns the configuration file, the daemon and the import's report.
func importProsody(t *testing.T, exportDir, top string) (file string, d *daemon, report string) {
	t.Helper()
	file, _ = testConfig(t, "")
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, append([]byte(top+"\n"), text...), 0o600); err != nil {
		t.Fatal(err)
	}
	d = startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited with %d:\n%s", d.code, d.stderr)
	}
	code, out, stderr := kiezd(t, "", "-config", file, "import", exportDir)
	if code != 0 {
		t.Fatalf("import: exit %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("import:\n%s", out)
	if strings.Contains(out, "unknown element") || strings.Contains(out, "not imported") {
		t.Errorf("the import left something out:\n%s", out)
	}
	return file, d, out
}

// TestMigrateFromProsody moves accounts from a real Prosody to kiezd as
// the README's "Moving from Prosody" says: users and their data are
// created in Prosody (accounts with prosodyctl, the rest by clients
// through a running Prosody; one account as old Prosody configurations
// kept it, with its password in plain text), prosody-migrator writes the
// XEP-0227 files, kiezd import reads them, and the users log in to kiezd
// with their old passwords and find their roster, vCard, private XML, PEP
// items and archive.
func TestMigrateFromProsody(t *testing.T) {
	p := newProsody(t, `"roster", "saslauth", "tls", "disco", "private", "vcard", "pep", "offline", "mam", "blocklist", "ping"`)
	passwords := map[string]string{"alice": "alice's old secret", "bob": "bob-password", "dave": "dave-password"}
	for _, u := range []string{"alice", "bob", "dave"} {
		p.register(u, passwords[u])
	}
	// erin's account as Prosody's internal_plain (the default before
	// 0.10) stored it.
	if err := os.WriteFile(filepath.Join(p.dataDir, "localhost", "accounts", "erin.dat"), []byte("return {\n\t[\"password\"] = \"erin-password\";\n};\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	stopProsody := p.start()
	connect := func(user string) *servertest.Client {
		t.Helper()
		return p.connect(user, passwords[user])
	}
	a := connect("alice")
	rawIQ(t, a, "r1", "set", `<query xmlns='jabber:iq:roster'><item jid='carol@example.org' name='Carol &amp; co'><group>Friends</group><group>Work</group></item></query>`)
	rawIQ(t, a, "v1", "set", `<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>alice</NICKNAME></vCard>`)
	rawIQ(t, a, "p1", "set", `<query xmlns='jabber:iq:private'><notes xmlns='urn:example:notes'><note>buy milk</note></notes></query>`)
	rawIQ(t, a, "e1", "set", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:example:mood'><item id='current'><mood xmlns='urn:example:mood'>happy</mood></item></publish></pubsub>`)
	a.SendRaw(`<presence to='bob@localhost' type='subscribe'/>`)
	a.Sync()
	b := connect("bob")
	b.SendRaw(`<presence to='alice@localhost' type='subscribed'/>`)
	b.Sync()
	a.SendRaw(`<message to='bob@localhost' type='chat' id='m1'><body>hello bob</body></message>`)
	b.Expect(servertest.Body("hello bob"))
	b.SendRaw(`<message to='alice@localhost' type='chat' id='m2'><body>hello alice</body></message>`)
	a.Expect(servertest.Body("hello alice"))
	dave := connect("dave")
	dave.SendRaw(`<presence to='alice@localhost' type='subscribe'/>`)
	dave.Sync()
	a.Sync()
	logout(a.Session)
	<-a.Done()
	dave.SendRaw(`<message to='alice@localhost' type='chat' id='m3'><body>while you were away</body></message>`)
	dave.Sync()
	logout(b.Session)
	logout(dave.Session)
	stopProsody()
	exportDir := p.migrate("alice", "bob", "dave", "erin")

	// Into a fresh kiezd, while it runs.
	file, d, out := importProsody(t, exportDir, "")
	for _, want := range []string{
		"alice@localhost: imported (credentials: SHA-1; ",
		"bob@localhost: imported (credentials: SHA-1; ",
		"erin@localhost: imported (credentials: password; ",
		"\n3 of the accounts have SCRAM-SHA-1 keys only",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the import's report lacks %q", want)
		}
	}

	kaddr := d.bound.C2S[0].String()
	// alice logs in with her old password: SCRAM-SHA-1 with Prosody's keys.
	sess, err := loginWith(t, kaddr, "alice@localhost", passwords["alice"], sasl.ScramSha1)
	if err != nil {
		t.Fatalf("alice's login to kiezd with SCRAM-SHA-1: %v", err)
	}
	ka := servertest.NewClient(t, sess)
	roster := iqXML(t, ka, "q1", "get", `<query xmlns='jabber:iq:roster'/>`)
	for _, re := range []string{
		// Prosody keeps groups as a set: in no particular order.
		`jid="carol@example.org"[^>]*name="Carol &amp; co"[^>]*subscription="none"[^>]*>(<group>Friends</group><group>Work</group>|<group>Work</group><group>Friends</group>)</item>`,
		`jid="bob@localhost"[^>]*subscription="to"`,
	} {
		if !regexp.MustCompile(re).MatchString(roster) {
			t.Errorf("roster lacks %s:\n%s", re, roster)
		}
	}
	if vc := iqXML(t, ka, "q2", "get", `<vCard xmlns='vcard-temp'/>`); !strings.Contains(vc, "Alice Liddell</FN>") {
		t.Errorf("vCard: %s", vc)
	}
	if pr := iqXML(t, ka, "q3", "get", `<query xmlns='jabber:iq:private'><notes xmlns='urn:example:notes'/></query>`); !strings.Contains(pr, "buy milk</note>") {
		t.Errorf("private XML: %s", pr)
	}
	if pep := iqXML(t, ka, "q4", "get", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:example:mood'/></pubsub>`); !strings.Contains(pep, `id="current"`) || !strings.Contains(pep, ">happy</mood>") {
		t.Errorf("PEP items: %s", pep)
	}
	// The archive: both messages alice exchanged with bob, and the one
	// dave sent while she was away (Prosody archived it; its offline copy
	// is not in Prosody's export).
	ka.SendRaw(`<iq type='set' id='q5'><query xmlns='urn:xmpp:mam:2' queryid='mam1'/></iq>`)
	var got []string
	for {
		st := ka.Expect(func(st *stanza.Stanza) bool {
			return st.ID == "q5" || (st.Kind == stanza.Message && st.Type == "")
		})
		if st.ID == "q5" {
			if st.Type != stanza.Result {
				t.Fatalf("archive query: %s", st.Type)
			}
			break
		}
		var b bytes.Buffer
		st.WriteTo(&b)
		got = append(got, b.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{"hello bob</body>", "hello alice</body>", "while you were away</body>"} {
		if !strings.Contains(all, want) {
			t.Errorf("archive lacks %s:\n%s", want, all)
		}
	}
	logout(sess)

	// dave's subscription request is still pending (an export shows it).
	code, exp, stderr := kiezd(t, "", "-config", file, "export", "alice@localhost")
	if code != 0 {
		t.Fatalf("export: %d %s", code, stderr)
	}
	if !regexp.MustCompile(`<presence [^>]*from="dave@localhost"[^>]*type="subscribe"`).MatchString(exp) {
		t.Errorf("dave's subscription request was not carried:\n%s", exp)
	}

	// Clients choosing SCRAM-SHA-256 cannot log in to alice's account
	// until she logged in once in a way that lets kiezd derive those keys:
	// PLAIN over TLS does, and adds them.
	if sess, err := loginWith(t, kaddr, "alice@localhost", passwords["alice"], sasl.ScramSha256); err == nil {
		logout(sess)
		t.Errorf("SCRAM-SHA-256 worked before any keys for it were derived")
	}
	sess, err = loginWith(t, kaddr, "alice@localhost", passwords["alice"], sasl.Plain)
	if err != nil {
		t.Fatalf("alice's login to kiezd with PLAIN: %v", err)
	}
	logout(sess)
	sess, err = loginWith(t, kaddr, "alice@localhost", passwords["alice"], sasl.ScramSha256)
	if err != nil {
		t.Fatalf("SCRAM-SHA-256 after a PLAIN login: %v", err)
	}
	logout(sess)

	// erin's plain-text password became keys for every hash.
	sess, err = loginWith(t, kaddr, "erin@localhost", "erin-password", sasl.ScramSha256)
	if err != nil {
		t.Fatalf("erin's login to kiezd with SCRAM-SHA-256: %v", err)
	}
	logout(sess)
}

// TestMigrateFromProsodyDebianDefaults moves an account from a Prosody
// with the modules Debian's prosody.cfg.lua enables, which keep profiles
// and bookmarks in PEP (vcard4, vcard_legacy, bookmarks) and archive
// nothing (mod_mam is off): the vCard set through vcard-temp arrives as
// PEP nodes (vCard4, and the PHOTO as the avatar, which kiezd's
// vcard-temp shows as PHOTO again), bookmarks as XEP-0402 items. kiezd
// offers SCRAM-SHA-1 only (scram_hashes), as the README advises, so a
// client that takes the strongest mechanism offered logs in.
func TestMigrateFromProsodyDebianDefaults(t *testing.T) {
	p := newProsody(t, `"disco", "roster", "saslauth", "tls", "blocklist", "bookmarks", "carbons", "pep", "private", "vcard4", "vcard_legacy", "ping"`)
	p.register("alice", "alice-password")
	stop := p.start()
	a := p.connect("alice", "alice-password")
	const photo = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
	rawIQ(t, a, "v1", "set", `<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>alice</NICKNAME><PHOTO><TYPE>image/png</TYPE><BINVAL>`+photo+`</BINVAL></PHOTO></vCard>`)
	rawIQ(t, a, "b1", "set", `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='tea@conference.example.org' name='Tea party' autojoin='true'><nick>alice</nick></conference></storage></query>`)
	logout(a.Session)
	<-a.Done()
	stop()
	exportDir := p.migrate("alice")

	_, d, out := importProsody(t, exportDir, `scram_hashes = ["SHA-1"]`)
	if !strings.Contains(out, "alice@localhost: imported (credentials: SHA-1; ") || strings.Contains(out, "SCRAM-SHA-1 keys only") {
		t.Errorf("the import's report: %s", out)
	}
	sess, err := loginWith(t, d.bound.C2S[0].String(), "alice@localhost", "alice-password",
		scram.ClientMechanism(scram.MechSHA512Plus, scram.TLSExporter), sasl.ScramSha256Plus, sasl.ScramSha1Plus,
		scram.ClientMechanism(scram.MechSHA512, ""), sasl.ScramSha256, sasl.ScramSha1)
	if err != nil {
		t.Fatalf("alice's login to kiezd: %v", err)
	}
	defer logout(sess)
	ka := servertest.NewClient(t, sess)
	for _, tc := range []struct{ node, want string }{
		{"urn:xmpp:vcard4", "Alice Liddell"},
		{"urn:xmpp:avatar:data", photo},
		{"urn:xmpp:avatar:metadata", `type="image/png"`},
		{"urn:xmpp:bookmarks:1", `id="tea@conference.example.org"`},
	} {
		items := iqXML(t, ka, "n-"+tc.node, "get", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='`+tc.node+`'/></pubsub>`)
		if !strings.Contains(items, tc.want) {
			t.Errorf("PEP node %s lacks %s:\n%s", tc.node, tc.want, items)
		}
	}
	if vc := iqXML(t, ka, "v2", "get", `<vCard xmlns='vcard-temp'/>`); !strings.Contains(vc, photo) {
		t.Errorf("vcard-temp shows no PHOTO from the avatar: %s", vc)
	}
	if bm := iqXML(t, ka, "b2", "get", `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>`); !strings.Contains(bm, "tea@conference.example.org") {
		t.Errorf("private XML bookmarks: %s", bm)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// TestExportImport: an account exported with kiezd export, deleted and
// imported with kiezd import, has all its data back (a second export is
// the same document) and logs in with its old password; live through
// the control socket, and on the database while no kiezd runs.
func TestExportImport(t *testing.T) {
	for _, live := range []bool{true, false} {
		name := "offline"
		if live {
			name = "live"
		}
		t.Run(name, func(t *testing.T) { testExportImport(t, live) })
	}
}

// rawIQ sends an iq carrying payload (XML text) and fails the test unless
// it is answered with a result.
func rawIQ(t *testing.T, c *servertest.Client, id, typ, payload string) *stanza.Stanza {
	t.Helper()
	if err := c.SendRaw(`<iq type='` + typ + `' id='` + id + `'>` + payload + `</iq>`); err != nil {
		t.Fatal(err)
	}
	res := c.Expect(servertest.ByID(id))
	if res.Type != stanza.Result {
		t.Fatalf("iq %s: %s", id, res.Type)
	}
	return res
}

// fillAccount gives alice data in every module: roster items in every
// subscription state, a vCard, private XML, a PEP item, a blocklist, sent
// and received archived messages and an offline message.
func fillAccount(t *testing.T, d *daemon) {
	t.Helper()
	connect := func(user string) *servertest.Client {
		sess, err := login(t, d.bound.C2S[0], false, user+"@localhost", "password")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { logout(sess) })
		c := servertest.NewClient(t, sess)
		c.SendRaw(`<presence/>`)
		return c
	}
	a := connect("alice")
	rawIQ(t, a, "r1", "set", `<query xmlns='jabber:iq:roster'><item jid='carol@example.org' name='Carol &amp; co'><group>Friends</group><group>Work</group></item></query>`)
	rawIQ(t, a, "v1", "set", `<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>alice</NICKNAME></vCard>`)
	rawIQ(t, a, "p1", "set", `<query xmlns='jabber:iq:private'><notes xmlns='urn:example:notes'><note>buy milk</note></notes></query>`)
	// Large enough for the export to take several chunks through the
	// control socket.
	for i := range 3 {
		rawIQ(t, a, "p2", "set", `<query xmlns='jabber:iq:private'><big xmlns='urn:example:big`+string(rune('0'+i))+`'>`+strings.Repeat("0123456789", 5000)+`</big></query>`)
	}
	rawIQ(t, a, "e1", "set", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:example:mood'><item id='current'><mood xmlns='urn:example:mood'>happy</mood></item></publish></pubsub>`)
	rawIQ(t, a, "b1", "set", `<block xmlns='urn:xmpp:blocking'><item jid='spam@example.net'/></block>`)
	a.SendRaw(`<presence to='bob@localhost' type='subscribe'/>`)
	a.SendRaw(`<message to='bob@localhost' type='chat' id='m1'><body>hello bob</body></message>`)
	a.Sync()

	b := connect("bob")
	b.SendRaw(`<presence to='alice@localhost' type='subscribed'/>`)
	b.SendRaw(`<message to='alice@localhost' type='chat' id='m2'><body>hello alice</body></message>`)
	b.Sync()
	a.Expect(servertest.Body("hello alice"))
	a.Sync()

	dave := connect("dave")
	dave.SendRaw(`<presence to='alice@localhost' type='subscribe'/>`)
	dave.Sync()
	a.Sync()
	a.SendRaw(`<presence type='unavailable'/>`)
	a.Sync()
	dave.SendRaw(`<message to='alice@localhost' type='chat' id='m3'><body>while you were away</body></message>`)
	dave.Sync()
}

func testExportImport(t *testing.T, live bool) {
	file, dir := testConfig(t, "")
	for _, u := range []string{"alice", "bob", "dave"} {
		if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", u+"@localhost"); code != 0 {
			t.Fatal(stderr)
		}
	}
	d := startServe(t, nil, "-config", file)
	fillAccount(t, d)
	if !live {
		if code := d.stop(t); code != 0 {
			t.Fatalf("serve exited with %d:\n%s", code, d.stderr)
		}
	}

	code, before, stderr := kiezd(t, "", "-config", file, "export", "alice@localhost")
	if code != 0 {
		t.Fatalf("export: %d %s", code, stderr)
	}
	for _, want := range []string{
		`<?xml version="1.0" encoding="UTF-8"?>`,
		`<server-data xmlns="urn:xmpp:pie:0"><host jid="localhost"><user name="alice">`,
		`<scram-credentials xmlns="urn:xmpp:pie:0#scram" mechanism="SCRAM-SHA-256">`,
		`jid="carol@example.org" name="Carol &amp; co" subscription="none"`,
		`jid="bob@localhost" subscription="to"`,
		`<presence xmlns="jabber:client" from="dave@localhost" to="alice@localhost" type="subscribe">`,
		`<FN xmlns="vcard-temp">Alice Liddell</FN>`,
		`<note xmlns="urn:example:notes">buy milk</note>`,
		`<item xmlns="http://jabber.org/protocol/pubsub" id="current"><mood xmlns="urn:example:mood">happy</mood>`,
		`<item xmlns="urn:xmpp:blocking" jid="spam@example.net">`,
		`<archive xmlns="urn:xmpp:pie:0#mam">`,
		`hello bob</body>`, `hello alice</body>`,
		`<offline-messages xmlns="urn:xmpp:pie:0">`, `while you were away</body>`,
	} {
		if !strings.Contains(before, want) {
			t.Errorf("export lacks %s", want)
		}
	}
	if t.Failed() {
		t.Fatalf("export:\n%s", before)
	}

	if code, _, stderr := kiezd(t, "", "-config", file, "deluser", "alice@localhost"); code != 0 {
		t.Fatalf("deluser: %s", stderr)
	}
	doc := filepath.Join(dir, "alice.xml")
	if err := os.WriteFile(doc, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := kiezd(t, "", "-config", file, "import", doc)
	if code != 0 || !strings.HasPrefix(out, "alice@localhost: imported (credentials: SHA-1, SHA-256, SHA-512; ") {
		t.Fatalf("import: %d %q %s", code, out, stderr)
	}
	code, after, stderr := kiezd(t, "", "-config", file, "export", "alice@localhost")
	if code != 0 || after != before {
		t.Fatalf("export after the import (%d, %s) differs:\n%s\nfrom the one before:\n%s", code, stderr, after, before)
	}

	// What the import refuses: the account exists now; a host not
	// served; malformed XML (from standard input).
	for _, tc := range []struct{ stdin, want string }{
		{before, "alice@localhost: not imported: importing alice@localhost: the account exists"},
		{`<server-data xmlns='urn:xmpp:pie:0'><host jid='elsewhere.example'/></server-data>`, `host "elsewhere.example" is not served here`},
		// Refused at the start of a long document: the answer still
		// comes, although the server stops reading.
		{`<server-data xmlns='urn:xmpp:pie:0'><host jid='elsewhere.example'><!--` + strings.Repeat("x", 4<<20) + `--></host></server-data>`, `host "elsewhere.example" is not served here`},
		{`<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='x'>`, "malformed XML"},
	} {
		code, out, stderr := kiezd(t, tc.stdin, "-config", file, "import")
		if code != 1 || !strings.Contains(out+stderr, tc.want) {
			t.Errorf("import of %.40q: exit %d, %q %q; want 1 and %q", tc.stdin, code, out, stderr, tc.want)
		}
	}
	// Every account of a domain, without credentials.
	code, out, _ = kiezd(t, "", "-config", file, "export", "-omit-credentials", "-domain", "localhost")
	if code != 0 || strings.Contains(out, "scram") || !strings.Contains(out, `<user name="bob">`) || !strings.Contains(out, `<user name="dave">`) {
		t.Errorf("export of the domain: %d\n%s", code, out)
	}
	if code, _, stderr := kiezd(t, "", "-config", file, "export"); code != 2 || !strings.Contains(stderr, "which accounts?") {
		t.Errorf("export without accounts: %d %s", code, stderr)
	}

	// The imported account logs in with its old password and gets the
	// message kept for it.
	if !live {
		d = startServe(t, nil, "-config", file)
	}
	sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password")
	if err != nil {
		t.Fatalf("login after the import: %v", err)
	}
	defer logout(sess)
	a := servertest.NewClient(t, sess)
	a.SendRaw(`<presence/>`)
	a.Expect(servertest.Body("while you were away"))
}

package server_test

import (
	"regexp"
	"strings"
	"testing"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// prosodyAlice is an account as Prosody 0.12's prosody-migrator exports
// it: SCRAM-SHA-1 credentials only (10000 iterations, a UUID as salt),
// which prosodyctl made for the password "pass word"; with an account
// property as its XEP-0227 writer keeps those it has no element for (in
// an attribute of its own namespace), which the import ignores.
const prosodyAlice = `<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>` +
	`<user xmlns:ns1='http://prosody.im/protocol/extended-xep0227' ns1:created='1700000000' name='alice'>` +
	`<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><server-key>c9VkJ0hWscKYZw3XKMiMHYHz0RM=</server-key>` +
	`<stored-key>zc3uij0psLlaxcPvNBAMjec6CGM=</stored-key><iter-count>10000</iter-count>` +
	`<salt>NTE1Mzg2ZDYtNzQxNy00NzVlLTgyZmQtZTdmZTMyMmRkYWJm</salt></scram-credentials></user></host></server-data>`

// TestPlainLoginAddsKeys: an account imported with SCRAM-SHA-1 keys only
// logs in with SCRAM-SHA-1 and PLAIN but not with the SCRAM mechanisms
// whose keys it lacks, until a PLAIN login (the server then sees the
// password) adds them; its SHA-1 keys stay as they were. A failed PLAIN
// login adds nothing.
func TestPlainLoginAddsKeys(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	r, err := srv.ImportUsers(t.Context(), strings.NewReader(prosodyAlice), server.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Failed(); err != nil || len(r.Users) != 1 || strings.Join(r.Users[0].Credentials, ",") != "SHA-1" {
		t.Fatalf("import: %v %+v", err, r.Users)
	}
	alice := jid.MustParse("alice@localhost")
	login := func(password string, mech sasl.Mechanism) error {
		t.Helper()
		sess, err := srv.Login(t.Context(), alice, password, mech)
		if err == nil {
			sess.Close()
			sess.Conn().Close()
		}
		return err
	}
	mechs := func() []string {
		t.Helper()
		var got []string
		for _, m := range regexp.MustCompile(`mechanism="(SCRAM-SHA-\d+)"`).FindAllStringSubmatch(export(t, srv, server.ExportOptions{}, alice), -1) {
			got = append(got, m[1])
		}
		return got
	}
	sha1 := func() string {
		t.Helper()
		return regexp.MustCompile(`mechanism="SCRAM-SHA-1">.*?</scram-credentials>`).FindString(export(t, srv, server.ExportOptions{}, alice))
	}
	before := sha1()
	if err := login("pass word", sasl.ScramSha1); err != nil {
		t.Fatalf("SCRAM-SHA-1 with Prosody's keys: %v", err)
	}
	for _, m := range []sasl.Mechanism{sasl.ScramSha256, scram.ClientMechanism(scram.MechSHA512, "")} {
		if err := login("pass word", m); err == nil {
			t.Fatalf("%s worked without keys for it", m.Name)
		}
	}
	if err := login("wrong password", sasl.Plain); err == nil {
		t.Fatal("PLAIN with a wrong password worked")
	}
	if got := mechs(); strings.Join(got, ",") != "SCRAM-SHA-1" {
		t.Fatalf("after a failed PLAIN login the account has keys for %v", got)
	}
	if err := login("pass word", sasl.Plain); err != nil {
		t.Fatalf("PLAIN: %v", err)
	}
	if got := mechs(); strings.Join(got, ",") != "SCRAM-SHA-1,SCRAM-SHA-256,SCRAM-SHA-512" {
		t.Fatalf("after a PLAIN login the account has keys for %v", got)
	}
	if after := sha1(); after != before || before == "" {
		t.Fatalf("SHA-1 keys changed:\n%s\nwere:\n%s", after, before)
	}
	for _, m := range []sasl.Mechanism{sasl.ScramSha1, sasl.ScramSha256, scram.ClientMechanism(scram.MechSHA512, "")} {
		if err := login("pass word", m); err != nil {
			t.Fatalf("%s after the PLAIN login: %v", m.Name, err)
		}
	}
}

// TestSCRAMHashes: Config.SCRAMHashes limits the SCRAM mechanisms
// offered (with their -PLUS variants; PLAIN stays); a mechanism not
// offered is refused; passwords set still get keys for every hash. A
// bad list is an error of New.
func TestSCRAMHashes(t *testing.T) {
	srv := servertest.Start(t, server.Config{SCRAMHashes: []storage.Hash{storage.SHA1}})
	_, features := srv.DialRaw(t)
	for _, want := range []string{"<mechanism>SCRAM-SHA-1-PLUS</mechanism>", "<mechanism>SCRAM-SHA-1</mechanism>", "<mechanism>PLAIN</mechanism>"} {
		if !strings.Contains(features, want) {
			t.Errorf("features lack %s: %s", want, features)
		}
	}
	if strings.Contains(features, "SCRAM-SHA-256") || strings.Contains(features, "SCRAM-SHA-512") {
		t.Errorf("features offer more than SHA-1: %s", features)
	}
	alice := srv.AddUser(t, "alice", "correct horse")
	for _, m := range []sasl.Mechanism{sasl.ScramSha1, sasl.ScramSha1Plus, sasl.Plain} {
		sess, err := srv.Login(t.Context(), alice, "correct horse", m)
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		sess.Close()
		sess.Conn().Close()
	}
	raw, _ := srv.DialRaw(t)
	raw.Send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj1hbGljZSxyPTEyMzQ1Njc4OTA=</auth>`)
	raw.Expect("<invalid-mechanism/>")
	doc := export(t, srv, server.ExportOptions{}, alice)
	if !strings.Contains(doc, `mechanism="SCRAM-SHA-256"`) || !strings.Contains(doc, `mechanism="SCRAM-SHA-512"`) {
		t.Errorf("a password set got keys for some hashes only:\n%s", doc)
	}

	for _, tc := range []struct {
		hashes []storage.Hash
		want   string
	}{
		{[]storage.Hash{}, "SCRAMHashes is empty"},
		{[]storage.Hash{"MD5"}, `unknown hash "MD5"`},
		{[]storage.Hash{storage.SHA1, storage.SHA1}, "SHA-1 listed twice"},
	} {
		_, err := server.New(t.Context(), server.Config{Domains: []string{"localhost"}, Accounts: memory.New(), SCRAMHashes: tc.hashes})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New with SCRAMHashes %q: %v, want %q", tc.hashes, err, tc.want)
		}
	}
}

package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The FAST key is made at the first start, mode 0600, and read back the
// same afterwards; a damaged file is an error that says what to do.
func TestFASTKeyFile(t *testing.T) {
	cfg := &config{DataDir: t.TempDir()}
	key, err := cfg.fastKey()
	if err != nil || len(key) != fastKeyLen {
		t.Fatalf("first start: %d bytes, %v", len(key), err)
	}
	fi, err := os.Stat(cfg.fastKeyPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("fast.key: %v %v", fi.Mode(), err)
	}
	again, err := cfg.fastKey()
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("second start: another key (%v)", err)
	}
	if err := os.WriteFile(cfg.fastKeyPath(), []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.fastKey(); err == nil || !strings.Contains(err.Error(), "is damaged") {
		t.Fatalf("damaged key: %v", err)
	}
}

// A FAST token (XEP-0484) asked for at a password login logs in after a
// restart, since serve keeps its key in fast.key; the database does not
// hold the token; with fast.key deleted, the next start makes a new key
// and the token is refused.
func TestFASTTokenAcrossRestarts(t *testing.T) {
	file, dir := testConfig(t, "")
	d := startServe(t, nil, "-config", file)
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	token := fastToken(t, d)
	fast := func(d *daemon) string { return fastLogin(t, d, token) }
	if got := fast(d); got != "success" {
		t.Fatalf("FAST login: %s", got)
	}
	db, err := os.ReadFile(filepath.Join(dir, "data", "kiez.db"))
	if err != nil || bytes.Contains(db, []byte(token)) {
		t.Fatalf("the database holds the token (%v)", err)
	}
	d.stop(t)

	d = startServe(t, nil, "-config", file)
	if got := fast(d); got != "success" {
		t.Fatalf("FAST login after a restart: %s", got)
	}
	d.stop(t)
	if err := os.Remove(filepath.Join(dir, "data", fastKeyName)); err != nil {
		t.Fatal(err)
	}
	d = startServe(t, nil, "-config", file)
	if got := fast(d); got != "failure" {
		t.Fatalf("FAST login with a new key: %s", got)
	}
}

const fastUA = `<user-agent id='3f0c2a52-7a8e-4d8c-9a53-2a4f64a0e5b1'/>`

// fastToken logs alice@localhost in with her password ("password") and
// a request for a FAST token, and returns the token.
func fastToken(t *testing.T, d *daemon) string {
	t.Helper()
	b64 := base64.StdEncoding
	e, err := rawSASL2(d.bound.C2S[0].String(), "localhost", `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>`+
		b64.EncodeToString([]byte("\x00alice\x00password"))+`</initial-response>`+fastUA+
		`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>`)
	m := regexp.MustCompile(`token='([^']+)'`).FindStringSubmatch(e.Inner)
	if err != nil || e.XMLName.Local != "success" || m == nil {
		t.Fatalf("password login: %v <%s>%s", err, e.XMLName.Local, e.Inner)
	}
	return m[1]
}

// fastLogin logs alice@localhost in with token, and returns the SASL2
// outcome: success or failure.
func fastLogin(t *testing.T, d *daemon, token string) string {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("Initiator"))
	e, err := rawSASL2(d.bound.C2S[0].String(), "localhost", `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>`+
		base64.StdEncoding.EncodeToString(append([]byte("alice\x00"), mac.Sum(nil)...))+`</initial-response>`+fastUA+
		`<fast xmlns='urn:xmpp:fast:0'/></authenticate>`)
	if err != nil {
		t.Fatal(err)
	}
	return e.XMLName.Local
}

// Only serve makes fast.key: the admin commands, offline, neither need
// nor make it (as root, they would make it root's), and revoke-tokens
// works without it; serve then makes it.
func TestAdminCommandsNoFASTKey(t *testing.T) {
	file, dir := testConfig(t, "")
	d := startServe(t, nil, "-config", file) // makes the database
	d.stop(t)
	key := filepath.Join(dir, "data", fastKeyName)
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"adduser", "alice@localhost"}, {"users"}, {"revoke-tokens", "alice@localhost"}, {"invite"}} {
		if code, _, stderr := kiezd(t, "password\n", append([]string{"-config", file}, args...)...); code != 0 {
			t.Fatalf("%s: exit %d: %s", args, code, stderr)
		}
		if _, err := os.Stat(key); err == nil {
			t.Fatalf("%s made %s", args, fastKeyName)
		}
	}
	d = startServe(t, nil, "-config", file)
	if _, err := os.Stat(key); err != nil {
		t.Fatalf("serve did not make %s: %v", fastKeyName, err)
	}
	// revoke-tokens live (through the control socket) and offline.
	token := fastToken(t, d)
	if code, _, stderr := kiezd(t, "", "-config", file, "revoke-tokens", "alice@localhost"); code != 0 {
		t.Fatalf("revoke-tokens while serving: %s", stderr)
	}
	if got := fastLogin(t, d, token); got != "failure" {
		t.Fatalf("FAST login after revoke-tokens while serving: %s", got)
	}
	token = fastToken(t, d)
	if got := fastLogin(t, d, token); got != "success" {
		t.Fatalf("FAST login: %s", got)
	}
	d.stop(t)
	if code, _, stderr := kiezd(t, "", "-config", file, "revoke-tokens", "alice@localhost"); code != 0 {
		t.Fatalf("revoke-tokens offline: %s", stderr)
	}
	d = startServe(t, nil, "-config", file)
	defer d.stop(t)
	if got := fastLogin(t, d, token); got != "failure" {
		t.Fatalf("FAST login after revoke-tokens offline: %s", got)
	}
}

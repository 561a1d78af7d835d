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
	const ua = `<user-agent id='3f0c2a52-7a8e-4d8c-9a53-2a4f64a0e5b1'/>`
	b64 := base64.StdEncoding
	e, err := rawSASL2(d.bound.C2S[0].String(), "localhost", `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>`+
		b64.EncodeToString([]byte("\x00alice\x00password"))+`</initial-response>`+ua+
		`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>`)
	m := regexp.MustCompile(`token='([^']+)'`).FindStringSubmatch(e.Inner)
	if err != nil || e.XMLName.Local != "success" || m == nil {
		t.Fatalf("password login: %v <%s>%s", err, e.XMLName.Local, e.Inner)
	}
	token := m[1]
	fast := func(d *daemon) string {
		t.Helper()
		mac := hmac.New(sha256.New, []byte(token))
		mac.Write([]byte("Initiator"))
		e, err := rawSASL2(d.bound.C2S[0].String(), "localhost", `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>`+
			b64.EncodeToString(append([]byte("alice\x00"), mac.Sum(nil)...))+`</initial-response>`+ua+
			`<fast xmlns='urn:xmpp:fast:0'/></authenticate>`)
		if err != nil {
			t.Fatal(err)
		}
		return e.XMLName.Local
	}
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

package main

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
)

// TestComponentsConfigErrors: mistakes in [[components.component]] are
// reported at their lines, without the secrets.
func TestComponentsConfigErrors(t *testing.T) {
	text := `domains = ["localhost"]

[components]
listen = ["127.0.0.1:5347"]

[[components.component]]
domain = "bridge.localhost"
secret = "first secret"

[[components.component]]
domain = "localhost"
secret = "second secret"

[[components.component]]
domain = "conference.localhost"
secret_env = "KIEZ_TEST_NO_SUCH_VARIABLE"

[[components.component]]
domain = "bot.localhost"

[[components.component]]
domain = "bridge.localhost"
secret = "third secret"
secret_file = "missing.secret"

[[components.component]]
domain = "upload.localhost"
secret = "fourth secret"
`
	dir := t.TempDir()
	file := filepath.Join(dir, "kiezd.toml")
	_, err := parseConfig(file, []byte(text))
	var errs configErrors
	if !errors.As(err, &errs) {
		t.Fatalf("parseConfig: %v", err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
		for _, s := range []string{"first secret", "second secret", "third secret", "fourth secret"} {
			if strings.Contains(e.Error(), s) {
				t.Errorf("error shows a secret: %v", e)
			}
		}
	}
	want := []string{
		`config ` + file + `:11: components.component.domain: "localhost" is a served domain (domains)`,
		`config ` + file + `:15: components.component.domain: "conference.localhost" is the address of the muc service`,
		`config ` + file + `:16: components.component.secret_env: the environment variable KIEZ_TEST_NO_SUCH_VARIABLE is not set`,
		`config ` + file + `:18: components.component: give the secret in exactly one of secret, secret_file and secret_env`,
		`config ` + file + `:22: components.component.domain: "bridge.localhost" is listed twice`,
		`config ` + file + `:24: components.component: give the secret in exactly one of secret, secret_file and secret_env`,
		`config ` + file + `:27: components.component.domain: "upload.localhost" is the address of the upload service`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestComponentsWarning: a components address other machines reach is
// pointed out, once components are configured.
func TestComponentsWarning(t *testing.T) {
	cfg := defaultConfig()
	cfg.Components.Listen = []string{":5347"}
	if w := cfg.componentWarnings(); len(w) != 0 {
		t.Fatalf("warnings without components: %q", w)
	}
	cfg.Components.Component = []componentConfig{{Domain: "bridge.localhost", Secret: "s"}}
	if w := cfg.componentWarnings(); len(w) != 1 || !strings.Contains(w[0], `components.listen ":5347"`) {
		t.Fatalf("warnings: %q", w)
	}
}

// TestComponents: kiezd serves a component configured with its secret in
// a file and one in the environment; the first exchanges messages with
// a local user through kiezd's listeners.
func TestComponents(t *testing.T) {
	t.Setenv("KIEZ_TEST_BOT_SECRET", "bot secret")
	file, dir := testConfig(t, `
[components]
listen = ["127.0.0.1:0"]

[[components.component]]
domain = "bridge.localhost"
name = "Bridge"
secret_file = "bridge.secret"

[[components.component]]
domain = "bot.localhost"
secret_env = "KIEZ_TEST_BOT_SECRET"
`)
	if err := os.WriteFile(filepath.Join(dir, "bridge.secret"), []byte("bridge secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatalf("adduser: %s", stderr)
	}
	var stderr syncBuffer
	d := startServe(t, &stderr, "-config", file)
	if d.ended || len(d.bound.Components) != 1 {
		t.Fatalf("kiezd serve: %+v\n%s", d.bound, stderr.String())
	}
	addr := d.bound.Components[0].String()
	bot := dialComponent(t, addr, "bot.localhost", "bot secret")
	bot.Close()
	comp := dialComponent(t, addr, "bridge.localhost", "bridge secret")

	sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password")
	if err != nil {
		t.Fatal(err)
	}
	defer logout(sess)
	msg := &stanza.Stanza{Kind: stanza.Message, Type: "chat", ID: "m1", To: jid.MustParse("tom@bridge.localhost")}
	msg.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "hello tom"))
	if err := sess.Send(t.Context(), msg.TokenReader()); err != nil {
		t.Fatal(err)
	}
	if got := readUntil(t, comp, "</message>"); !strings.Contains(got, "hello tom") || !strings.Contains(got, `from="alice@localhost/`) {
		t.Fatalf("component got %q", got)
	}
	for _, secret := range []string{"bridge secret", "bot secret"} {
		if strings.Contains(stderr.String(), secret) {
			t.Fatalf("the log shows a secret:\n%s", stderr.String())
		}
	}
	if !strings.Contains(stderr.String(), "external components") {
		t.Fatalf("the log does not name the components listener:\n%s", stderr.String())
	}
}

// dialComponent attaches a component with the XEP-0114 handshake.
func dialComponent(t *testing.T, addr, domain, secret string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='`+domain+`'>`)
	m := regexp.MustCompile(`id='([^']+)'`).FindStringSubmatch(readUntil(t, c, ">"))
	if m == nil {
		t.Fatal("no stream id")
	}
	sum := sha1.Sum([]byte(m[1] + secret))
	io.WriteString(c, "<handshake>"+hex.EncodeToString(sum[:])+"</handshake>")
	readUntil(t, c, "<handshake/>")
	return c
}

// readUntil reads from c until what was read contains want.
func readUntil(t *testing.T, c net.Conn, want string) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(b.String(), want) {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			t.Fatalf("waiting for %q: %v; got %q", want, err, b.String())
		}
	}
	return b.String()
}

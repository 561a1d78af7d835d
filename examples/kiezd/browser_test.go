package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// converseVersion is the Converse.js the browser test loads from the npm
// registry.
const converseVersion = "14.0.0"

// conversePage logs in as alice, discovering the WebSocket through
// host-meta, says hello to bob once connected and answers "ping N" with
// "pong N".
const conversePage = `<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/dist/converse.min.css">
<script type="module" src="/dist/converse.min.js"></script>
</head><body><script type="module">
converse.plugins.add('kiez-test', {
  initialize() {
    const api = this._converse.api;
    const { $msg } = converse.env;
    api.listen.on('connected', () => {
      api.send($msg({to: 'bob@localhost', type: 'chat', id: 'hello'}).c('body').t('hello from converse'));
    });
    api.listen.on('message', (data) => {
      const body = data.stanza.querySelector('body');
      if (body && body.textContent.startsWith('ping ')) {
        api.send($msg({to: data.stanza.getAttribute('from'), type: 'chat'}).c('body').t('pong ' + body.textContent.slice(5)));
      }
    });
  }
});
converse.initialize({
  auto_login: true, jid: 'alice@localhost', password: 'password',
  discover_connection_methods: true, whitelisted_plugins: ['kiez-test'],
  view_mode: 'fullscreen', allow_non_roster_messaging: true, loglevel: 'debug'
});
</script></body></html>`

// converseDist returns a directory holding Converse.js's dist files:
// $KIEZ_CONVERSE_DIST if set, else the package from the npm registry,
// fetched once with npm into the user's cache directory.
func converseDist(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("KIEZ_CONVERSE_DIST"); d != "" {
		return d
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "kiez-test", "converse.js-"+converseVersion)
	dist := filepath.Join(dir, "package", "dist")
	if _, err := os.Stat(filepath.Join(dist, "converse.min.js")); err == nil {
		return dist
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm not found: install it, or set KIEZ_CONVERSE_DIST to Converse.js's dist directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("npm", "pack", "--silent", "converse.js@"+converseVersion)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm pack converse.js@%s: %v\n%s", converseVersion, err, out)
	}
	f, err := os.Open(filepath.Join(dir, "converse.js-"+converseVersion+".tgz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(h.Name)
		if h.Typeflag != tar.TypeReg || !strings.HasPrefix(name, "package/dist/") {
			continue
		}
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dist
}

// TestBrowser runs Converse.js in Debian's headless Chromium against
// kiezd on loopback: it finds the WebSocket through host-meta (the
// browser's https://localhost/ is mapped to kiezd's https port), logs in
// as alice and exchanges messages with bob, a client on the c2s
// listener. Skipped only when Chromium is missing.
func TestBrowser(t *testing.T) {
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		if os.Getenv("KIEZ_REQUIRE_INTEROP") != "" {
			t.Fatal("Chromium is required (apt-get install chromium)")
		}
		t.Skip("Chromium not found: install Debian's chromium package to run the browser test")
	}
	dist := converseDist(t)

	// The page comes from another origin, which kiezd must allow.
	mux := http.NewServeMux()
	mux.Handle("/dist/", http.StripPrefix("/dist/", http.FileServer(http.Dir(dist))))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, conversePage)
	})
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)

	file, dir := testConfig(t, fmt.Sprintf("\n[http]\nwebsocket_origins = [%q]\n", page.URL))
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", u); code != 0 {
			t.Fatal(stderr)
		}
	}
	d := startServe(t, nil, "-config", file)
	_, httpsPort, _ := net.SplitHostPort(d.bound.HTTPS[0].String())

	bobSess, err := login(t, d.bound.C2S[0], false, "bob@localhost", "password")
	if err != nil {
		t.Fatal(err)
	}
	bob := servertest.NewClient(t, bobSess)
	bob.SendRaw(`<presence/>`)

	cmd := exec.Command(chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--ignore-certificate-errors", "--user-data-dir="+filepath.Join(dir, "chromium"),
		"--host-resolver-rules=MAP localhost:443 127.0.0.1:"+httpsPort,
		"--enable-logging=stderr", page.URL+"/")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			// The page's console, without Chromium's complaints about
			// the missing desktop bus.
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "CONSOLE") {
					t.Log(l)
				}
			}
		}
	})

	hello := bob.Expect(servertest.Body("hello from converse"))
	if hello.From.Bare().String() != "alice@localhost" {
		t.Fatalf("hello from %v", hello.From)
	}
	bob.Send(&stanza.Stanza{Kind: stanza.Message, Type: "chat", To: hello.From, ID: "p1",
		Inner: stanza.Resolve(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "ping 42"), stanza.NSClient)})
	bob.Expect(servertest.Body("pong 42"))
}

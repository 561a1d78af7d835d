package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/modules/version"
	"github.com/kiez-im/kiez/storage/bbolt"
)

// buildKiezd builds kiezd into a temporary directory of the test or
// benchmark, as a user would with go build (version control information
// recorded if this is a checkout), and returns the binary's path. It
// skips the test if the go tool is missing.
func buildKiezd(t testing.TB) string {
	t.Helper()
	goTool, err := exec.LookPath(filepath.Join(runtime.GOROOT(), "bin", "go"))
	if err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			t.Skip("no go tool to build kiezd with")
		}
	}
	bin := filepath.Join(t.TempDir(), "kiezd")
	// -buildvcs=auto overrides a GOFLAGS=-buildvcs=false of the
	// environment: the binary is built as go build builds it.
	if out, err := exec.Command(goTool, "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// kiezd version, --version and -version print the version, the revision
// (or that it is unknown) and the Go version of a built binary.
func TestVersionOfBuiltBinary(t *testing.T) {
	bin := buildKiezd(t)
	var first string
	for _, arg := range []string{"version", "--version", "-version"} {
		out, err := exec.Command(bin, arg).CombinedOutput()
		if err != nil {
			t.Fatalf("kiezd %s: %v\n%s", arg, err, out)
		}
		text := string(out)
		if first == "" {
			first = text
		} else if text != first {
			t.Errorf("kiezd %s printed\n%s\nkiezd version\n%s", arg, text, first)
		}
	}
	t.Logf("kiezd version:\n%s", first)
	if !strings.Contains(first, runtime.Version()) {
		t.Errorf("no Go version %s in:\n%s", runtime.Version(), first)
	}
	line := strings.SplitN(first, "\n", 2)[0]
	rev := regexp.MustCompile(`(?m)^revision  [0-9a-f]{40}( \(with uncommitted changes\))?$`).MatchString(first)
	switch {
	case rev && !regexp.MustCompile(`^kiezd (v\S+|devel-[0-9a-f]{12}(\+dirty)?)$`).MatchString(line):
		t.Errorf("first line %q: want the module version (with the revision)", line)
	case !rev && line != "kiezd devel":
		t.Errorf("no revision, and the first line is %q, not kiezd devel:\n%s", line, first)
	}
	// A flag after the command is no version flag.
	if out, err := exec.Command(bin, "users", "--version").CombinedOutput(); err == nil {
		t.Errorf("kiezd users --version succeeded:\n%s", out)
	}

	// The binary, serving, answers XEP-0092 with the same version.
	addr := freePort(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "kiezd.toml")
	conf := "domains = [\"localhost\"]\ndata_dir = \"data\"\nscram_iterations = 4096\n" +
		"[listen]\nc2s = [\"" + addr + "\"]\ndirect_tls = []\nhttps = []\n\n[s2s]\nlisten = []\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	createDB(t, filepath.Join(dir, "data"))
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	cmd := exec.Command(bin, "-config", file, "serve")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var c *rawClient
	for deadline := time.Now().Add(15 * time.Second); c == nil; {
		var err error
		if c, err = rawLogin(addr, "alice", "localhost", "password", "v"); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("no login to the built kiezd: %v\n%s", err, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	defer c.close()
	if got := queryVersion(t, c); "kiezd "+got != line {
		t.Errorf("the built kiezd answers XEP-0092 with %q; kiezd version says %q", got, line)
	}
}

// queryVersion asks the server for its version (XEP-0092).
func queryVersion(t *testing.T, c *rawClient) string {
	t.Helper()
	c.send(`<iq type='get' to='localhost' id='ver'><query xmlns='jabber:iq:version'/></iq>`)
	for {
		e, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if e.XMLName.Local != "iq" || e.attr("id") != "ver" {
			continue
		}
		m := regexp.MustCompile(`<version>([^<]*)</version>`).FindStringSubmatch(e.Inner)
		if m == nil {
			t.Fatalf("XEP-0092 answer without a version: %s", e.Inner)
		}
		return m[1]
	}
}

// The version module answers XEP-0092 with what kiezd version prints
// first.
func TestVersionInXEP0092(t *testing.T) {
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	st, err := bbolt.Open(cfg.dbPath(), bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	files, err := cfg.openFiles()
	if err != nil {
		t.Fatal(err)
	}
	mods, err := cfg.modules(st, files, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := readBuildInfo().String()
	for _, m := range mods {
		if v, ok := m.(*version.Module); ok {
			if v.Version() != want {
				t.Errorf("XEP-0092 version %q, kiezd version %q", v.Version(), want)
			}
			return
		}
	}
	t.Error("no version module")
}

// A client asking the server for its version (XEP-0092) is told what
// kiezd version prints first.
func TestVersionAnswered(t *testing.T) {
	file, _ := testConfig(t, "")
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited with %d:\n%s", d.code, d.stderr)
	}
	c, err := rawLogin(d.bound.C2S[0].String(), "alice", "localhost", "password", "v")
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if got, want := queryVersion(t, c), readBuildInfo().String(); got != want {
		t.Errorf("XEP-0092 version %q; want %q", got, want)
	}
}

// String shortens the revision of a build without a module version.
func TestBuildInfoString(t *testing.T) {
	for _, c := range []struct {
		b    buildInfo
		want string
	}{
		{buildInfo{}, "devel"},
		{buildInfo{Version: "v0.3.0", Revision: "0123456789abcdef0123456789abcdef01234567"}, "v0.3.0"},
		{buildInfo{Revision: "0123456789abcdef0123456789abcdef01234567"}, "devel-0123456789ab"},
		{buildInfo{Revision: "0123456789abcdef0123456789abcdef01234567", Modified: true}, "devel-0123456789ab+dirty"},
	} {
		if got := c.b.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.b, got, c.want)
		}
	}
}

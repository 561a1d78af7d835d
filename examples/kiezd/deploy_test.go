package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const unitFile = "deploy/kiezd.service"

// unitKeys reads a systemd unit file's assignments, key → values in
// order (a key may repeat).
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not an assignment: %q", path, line)
		}
		keys[k] = append(keys[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// The unit's sandbox and paths agree: kiezd's data directory is the
// state directory systemd makes (where the control socket is, too), it
// is the working directory, the sandbox is in place, no capability is
// granted (kiezd's default ports need none), SIGHUP reloads. The
// arguments of ExecStart are accepted by kiezd.
func TestSystemdUnitSettings(t *testing.T) {
	k := unitKeys(t, unitFile)
	want := map[string]string{
		"StateDirectory":          "kiezd",
		"WorkingDirectory":        "/var/lib/kiezd",
		"User":                    "kiezd",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"NoNewPrivileges":         "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"Restart":                 "on-failure",
	}
	for key, v := range want {
		if got := k[key]; len(got) != 1 || got[0] != v {
			t.Errorf("%s=%q, want %q", key, got, v)
		}
	}
	if f := k["SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
		t.Errorf("SystemCallFilter=%q, want @system-service first", f)
	}
	args := strings.Fields(k["ExecStart"][0])[1:]
	var dataDir string
	for i, a := range args {
		if a == "-data-dir" && i+1 < len(args) {
			dataDir = args[i+1]
		}
	}
	if dataDir != "/var/lib/"+k["StateDirectory"][0] {
		t.Errorf("ExecStart has -data-dir %q, StateDirectory=%s", dataDir, k["StateDirectory"][0])
	}
	// The same arguments, pointing at a test configuration and data
	// directory, with check-config for serve, are a valid command line.
	file, dir := testConfig(t, "")
	for i, a := range args {
		switch a {
		case "/etc/kiezd/kiezd.toml":
			args[i] = file
		case dataDir:
			args[i] = filepath.Join(dir, "data")
		case "serve":
			args[i] = "check-config"
		}
	}
	if code, _, stderr := kiezd(t, "", args...); code != 0 {
		t.Errorf("kiezd %s: %s", strings.Join(args, " "), stderr)
	}
}

// systemd-analyze verify accepts the unit, where systemd-analyze exists:
// with ExecStart pointing at a kiezd binary (this test's, which runs as
// kiezd too), since verify checks that the program exists. Any warning
// about the unit fails the test: verify exits 0 on unknown keys and bad
// values, which it only reports.
func TestSystemdUnitVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit file is not verified")
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "ExecStart=/usr/local/bin/kiezd ") {
		t.Fatal("the unit does not start /usr/local/bin/kiezd")
	}
	unit := filepath.Join(t.TempDir(), "kiezd.service")
	err = os.WriteFile(unit, []byte(strings.ReplaceAll(string(text), "/usr/local/bin/kiezd ", bin+" ")), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	var warnings []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "kiezd.service") {
			warnings = append(warnings, line)
		}
	}
	if err != nil || len(warnings) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	if len(out) > 0 && len(warnings) == 0 {
		t.Logf("systemd-analyze verify, about other units:\n%s", out)
	}
}

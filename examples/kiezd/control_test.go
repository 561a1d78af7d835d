package main

import (
	"encoding/json"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The admin commands never create a database: only serve does.
func TestNoDatabase(t *testing.T) {
	pinBackend(t, backendBbolt) // the bbolt file itself
	file, _ := testConfig(t, "")
	for _, empty := range []bool{false, true} {
		data := filepath.Join(t.TempDir(), "data")
		if empty {
			if err := os.Mkdir(data, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		want := "kiezd: there is no database " + filepath.Join(data, "kiez.db") + " (kiezd serve creates it on its first start)\n"
		for _, c := range [][]string{{"users"}, {"adduser", "alice@localhost"}, {"passwd", "alice@localhost"}, {"deluser", "alice@localhost"}} {
			code, stdout, stderr := kiezd(t, "long enough\n", append([]string{"-config", file, "-data-dir", data}, c...)...)
			if code != 1 || stdout != "" || stderr != want {
				t.Errorf("%v without a database: exit %d, stdout %q, stderr %q; want 1, %q", c, code, stdout, stderr, want)
			}
		}
		if !empty {
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("the data directory was created: %v", err)
			}
		} else if names, _ := os.ReadDir(data); len(names) != 0 {
			t.Errorf("the empty data directory now holds %v", names)
		}
	}
}

// serve creates the control socket mode 0600 and removes it when it
// stops; a first start without accounts tells how to make one.
func TestControlSocket(t *testing.T) {
	file, dir := testConfig(t, "")
	data := filepath.Join(dir, "data")
	sock := filepath.Join(data, controlSocketName)
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited with %d:\n%s", d.code, d.stderr)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v; want a socket with 0600", fi.Mode())
	}
	hint := "or with: kiezd -config " + file + " adduser <name>@localhost"
	if !strings.Contains(d.stderr.String(), "there are no accounts yet") || !strings.Contains(d.stderr.String(), hint) {
		t.Errorf("no %q in the log:\n%s", hint, d.stderr)
	}

	// A request that is no JSON is answered with an error, and the
	// server goes on.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("adduser alice@localhost\n"))
	var resp adminResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil || resp.Error != "bad request on the control socket" {
		t.Errorf("bad request: %v, %+v", err, resp)
	}
	c.Close()
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatalf("adduser while serving: %s", stderr)
	}
	sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password")
	if err != nil {
		t.Fatalf("login with the account created while serving: %v", err)
	}
	logout(sess)

	if code := d.stop(t); code != 0 {
		t.Errorf("serve exited with %d:\n%s", code, d.stderr)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("the control socket is still there after the stop: %v", err)
	}
	names, _ := os.ReadDir(data)
	for _, n := range names {
		if strings.HasPrefix(n.Name(), ".ctl") {
			t.Errorf("left behind: %s", n.Name())
		}
	}

	// With an account, the next start gives no hint.
	d = startServe(t, nil, "-config", file)
	d.stop(t)
	if strings.Contains(d.stderr.String(), "no accounts yet") {
		t.Errorf("a hint although there is an account:\n%s", d.stderr)
	}
}

// staleSocket leaves a socket file nobody listens on at path, as a
// crashed server does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := net.Dial("unix", path); err == nil {
		t.Fatal("the stale socket accepts connections")
	}
}

// A socket file left by a crashed server confuses neither the commands
// (they use the database, and remove the file) nor serve (it replaces
// the file).
func TestStaleControlSocket(t *testing.T) {
	pinBackend(t, backendBbolt) // the bbolt file itself
	file, dir := testConfig(t, "")
	sock := filepath.Join(dir, "data", controlSocketName)
	staleSocket(t, sock)
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatalf("adduser with a stale socket: %s", stderr)
	}
	if code, stdout, stderr := kiezd(t, "", "-config", file, "users"); code != 0 || !strings.HasPrefix(stdout, "alice@localhost ") {
		t.Errorf("users with a stale socket: exit %d, %q, %q", code, stdout, stderr)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("the stale socket is still there: %v", err)
	}

	staleSocket(t, sock)
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve with a stale socket exited with %d:\n%s", d.code, d.stderr)
	}
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "bob@localhost"); code != 0 {
		t.Fatalf("adduser after serve replaced a stale socket: %s", stderr)
	}
	sess, err := login(t, d.bound.C2S[0], false, "bob@localhost", "password")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	logout(sess)
	d.stop(t)
	if !verify(t, filepath.Join(dir, "data", "kiez.db"), "bob@localhost", "password") {
		t.Error("bob is not in the database")
	}

	// A file that is no socket is left alone: the commands use the
	// database, and serve refuses to start.
	if err := os.WriteFile(sock, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := kiezd(t, "", "-config", file, "users"); code != 0 || !strings.HasPrefix(stdout, "alice@localhost ") {
		t.Errorf("users with a file in the socket's place: exit %d, %q, %q", code, stdout, stderr)
	}
	var stderr syncBuffer
	d = startServe(t, &stderr, "-config", file)
	want := "kiezd: cannot create the control socket " + sock + ": a file that is no socket is in the way\n"
	if !d.ended || d.code != 1 || !strings.HasSuffix(stderr.String(), want) {
		t.Errorf("serve with a file in the socket's place: ended %v, exit %d, stderr %q; want %q", d.ended, d.code, stderr.String(), want)
	}
	if data, err := os.ReadFile(sock); err != nil || string(data) != "mine" {
		t.Errorf("the file in the socket's place: %q, %v", data, err)
	}
	// serve released everything: the database opens.
	if code, _, stderr := kiezd(t, "", "-config", file, "users"); code != 0 {
		t.Errorf("users after serve failed: %s", stderr)
	}
}

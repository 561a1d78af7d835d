package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage/bbolt"
)

// rosterOf returns the inner XML of user's roster, fetched by a client.
func rosterOf(t *testing.T, d *daemon, user string) string {
	t.Helper()
	c, err := rawLogin(d.bound.C2S[0].String(), user, "localhost", "password", "roster")
	if err != nil {
		t.Fatalf("login as %s: %v", user, err)
	}
	defer c.close()
	c.send(`<iq type='get' id='ro'><query xmlns='jabber:iq:roster'/></iq>`)
	for {
		e, err := c.next()
		if err != nil {
			t.Fatalf("roster of %s: %v", user, err)
		}
		if e.XMLName.Local == "iq" && e.attr("id") == "ro" {
			return e.Inner
		}
	}
}

// TestBackupRestore: kiezd backup of a running server, with messages a
// client just sent (acknowledged, some still in the archive log), is
// restored into a new data directory, and a server started on it has
// the accounts, the roster and every archived message. restore and
// compact refuse to run while kiezd serves; backup refuses to replace a
// file without --force.
func TestBackupRestore(t *testing.T) {
	pinBackend(t, backendBbolt) // the bbolt file itself
	file, dir := testConfig(t, "")
	for _, u := range []string{"alice", "bob"} {
		if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", u+"@localhost"); code != 0 {
			t.Fatal(stderr)
		}
	}
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited with %d:\n%s", d.code, d.stderr)
	}
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
	a, b := connect("alice"), connect("bob")
	rawIQ(t, a, "r1", "set", `<query xmlns='jabber:iq:roster'><item jid='carol@example.org' name='BackupCarol'/></query>`)
	const n = 20
	for i := range n {
		a.SendRaw(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='m%d'><body>c%d</body></message>`, i, i))
	}
	// Each message is archived before it is delivered: once bob has the
	// last, alice's archive has acknowledged all of them.
	b.Expect(servertest.Body(fmt.Sprintf("c%d", n-1)))

	backups := t.TempDir()
	backup := filepath.Join(backups, "kiez-backup.db")
	code, stdout, stderr := kiezd(t, "", "-config", file, "backup", backup)
	if code != 0 || !strings.HasPrefix(stdout, "wrote "+backup) {
		t.Fatalf("backup while serving: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, %v", fi, err)
	}
	if err := bbolt.Verify(backup); err != nil {
		t.Errorf("the backup: %v", err)
	}
	if names, _ := os.ReadDir(backups); len(names) != 1 {
		t.Errorf("the backup directory holds %v, want the backup alone", names)
	}
	// No replacing by accident; --force replaces.
	code, _, stderr = kiezd(t, "", "-config", file, "backup", backup)
	if code != 1 || !strings.Contains(stderr, "exists: give another name, or --force to replace it") {
		t.Errorf("backup to an existing file: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := kiezd(t, "", "-config", file, "backup", "--force", backup); code != 0 {
		t.Errorf("backup --force: %s", stderr)
	}
	// restore and compact would replace the file a server holds.
	for _, c := range [][]string{{"restore", backup}, {"compact"}} {
		code, _, stderr := kiezd(t, "", append([]string{"-config", file}, c...)...)
		if code != 1 || !strings.Contains(stderr, "kiezd is running (its control socket answers): stop it first") {
			t.Errorf("%s while serving: exit %d, stderr %q", c[0], code, stderr)
		}
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, d.stderr)
	}

	// Restored into a new data directory, served again.
	fresh := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr = kiezd(t, "", "-config", file, "-data-dir", fresh, "restore", backup)
	if code != 0 || !strings.Contains(stdout, "restored "+filepath.Join(fresh, "kiez.db")) || strings.Contains(stdout, "before-restore") {
		t.Fatalf("restore: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	d = startServe(t, nil, "-config", file, "-data-dir", fresh)
	if d.ended {
		t.Fatalf("serve on the restored database exited with %d:\n%s", d.code, d.stderr)
	}
	if r := rosterOf(t, d, "alice"); !strings.Contains(r, "BackupCarol") {
		t.Errorf("alice's restored roster: %s", r)
	}
	archived := readArchive(t, d.bound.C2S[0].String(), "alice")
	for i := range n {
		if !archived[fmt.Sprintf("c%d", i)] {
			t.Errorf("message c%d is not in alice's restored archive (has %d)", i, len(archived))
		}
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, d.stderr)
	}

	// A backup to standard output, with no kiezd running, restored over
	// a database: the old one is kept.
	code, stdout, stderr = kiezd(t, "", "-config", file, "backup", "-")
	if code != 0 || len(stdout) < 4096 {
		t.Fatalf("backup - with no server: exit %d, %d bytes, stderr %q", code, len(stdout), stderr)
	}
	second := filepath.Join(backups, "stdout.db")
	if err := os.WriteFile(second, []byte(stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := bbolt.Verify(second); err != nil {
		t.Errorf("the backup on standard output: %v", err)
	}
	code, stdout, stderr = kiezd(t, "", "-config", file, "restore", second)
	if code != 0 || !strings.Contains(stdout, "the previous database is kept as "+filepath.Join(dir, "data", "kiez.db.before-restore-")) {
		t.Fatalf("restore over a database: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "data", "kiez.db.before-restore-*"))
	if len(kept) != 1 {
		t.Fatalf("kept databases: %v", kept)
	}
	if err := bbolt.Verify(kept[0]); err != nil {
		t.Errorf("the kept database: %v", err)
	}
	if code, stdout, stderr := kiezd(t, "", "-config", file, "users"); code != 0 || !strings.Contains(stdout, "alice@localhost") || !strings.Contains(stdout, "bob@localhost") {
		t.Errorf("users after restore: exit %d, %q, %q", code, stdout, stderr)
	}
}

// restore refuses what is not a kiezd database and leaves the data
// directory alone.
func TestRestoreRefusesOtherFiles(t *testing.T) {
	pinBackend(t, backendBbolt) // the bbolt file itself
	file, dir := testConfig(t, "")
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, bytes.Repeat([]byte("junk"), 4096), 0o600)
	for _, c := range []struct{ file, want string }{
		{junk, "is not a usable kiezd database"},
		{filepath.Join(dir, "missing.db"), "restore: there is no file"},
	} {
		code, _, stderr := kiezd(t, "", "-config", file, "restore", c.file)
		if code != 1 || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "kiezd: ") {
			t.Errorf("restore %s: exit %d, stderr %q; want %q", filepath.Base(c.file), code, stderr, c.want)
		}
	}
	names, _ := os.ReadDir(filepath.Join(dir, "data"))
	for _, n := range names {
		if n.Name() != "kiez.db" {
			t.Errorf("left in the data directory: %s", n.Name())
		}
	}
}

// backup fails cleanly: without a database it says so and leaves no
// file, not even a temporary one; a directory is no file name.
func TestBackupErrors(t *testing.T) {
	pinBackend(t, backendBbolt) // the bbolt file itself
	file, _ := testConfig(t, "")
	out := t.TempDir()
	empty := filepath.Join(t.TempDir(), "data")
	code, _, stderr := kiezd(t, "", "-config", file, "-data-dir", empty, "backup", filepath.Join(out, "b.db"))
	if code != 1 || !strings.Contains(stderr, "there is no database") {
		t.Errorf("backup without a database: exit %d, %q", code, stderr)
	}
	if names, _ := os.ReadDir(out); len(names) != 0 {
		t.Errorf("left behind: %v", names)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("backup created %s: %v", empty, err)
	}
	code, _, stderr = kiezd(t, "", "-config", file, "backup", out)
	if code != 1 || !strings.Contains(stderr, "is a directory: give a file name") {
		t.Errorf("backup to a directory: exit %d, %q", code, stderr)
	}
	code, _, stderr = kiezd(t, "", "-config", file, "backup", filepath.Join(out, "missing", "b.db"))
	if code != 1 || !strings.Contains(stderr, "backup: cannot write in "+filepath.Join(out, "missing")) {
		t.Errorf("backup into a missing directory: exit %d, %q", code, stderr)
	}
	if code, _, stderr := kiezd(t, "", "-config", file, "backup"); code != 2 || !strings.Contains(stderr, "wrong number of arguments") {
		t.Errorf("backup without FILE: exit %d, %q", code, stderr)
	}
}

// kiezd compact shrinks a database after deletions, and kiezd serves it.
func TestCompactCommand(t *testing.T) {
	pinBackend(t, backendBbolt) // the bbolt file itself
	file, dir := testConfig(t, "")
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	db := filepath.Join(dir, "data", "kiez.db")
	st, err := bbolt.Open(db, bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("CompactedAway "), 2000)
	for i := range 100 {
		if err := st.Put(t.Context(), fmt.Sprintf("gone%d@localhost", i), "blob", big); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if err := st.DeleteUserData(t.Context(), fmt.Sprintf("gone%d@localhost", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(db)
	code, stdout, stderr := kiezd(t, "", "-config", file, "compact")
	if code != 0 || !strings.HasPrefix(stdout, "compacted "+db+": ") {
		t.Fatalf("compact: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	t.Logf("%s", stdout)
	after, _ := os.Stat(db)
	if after.Size() >= before.Size() {
		t.Errorf("compact: %d bytes before, %d after", before.Size(), after.Size())
	}
	if raw, _ := os.ReadFile(db); bytes.Contains(raw, []byte("CompactedAway")) {
		t.Error("deleted data is still in the compacted file")
	}
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve on the compacted database exited with %d:\n%s", d.code, d.stderr)
	}
	sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password")
	if err != nil {
		t.Fatalf("login after compact: %v", err)
	}
	logout(sess)

	// Without a database, compact says so and creates none.
	empty := filepath.Join(t.TempDir(), "data")
	code, _, stderr = kiezd(t, "", "-config", file, "-data-dir", empty, "compact")
	if code != 1 || !strings.Contains(stderr, "there is no database") {
		t.Errorf("compact without a database: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("compact created %s: %v", empty, err)
	}
}

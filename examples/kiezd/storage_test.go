package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A password in the DSN is refused, at its line, and the error shows
// neither the password nor the rest of the DSN; in either form.
func TestStorageDSNPasswordRefused(t *testing.T) {
	for _, dsn := range []string{
		"postgres://kiez:s3cr3t-pw@db.example.org/kiez",
		"postgresql://kiez@db.example.org/kiez?password=s3cr3t-pw",
		"host=db.example.org user=kiez password=s3cr3t-pw dbname=kiez",
	} {
		file := filepath.Join(t.TempDir(), "kiezd.toml")
		text := "[storage]\nbackend = \"postgres\"\ndsn = \"" + dsn + "\"\n"
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := kiezd(t, "", "-config", file, "check-config")
		if code != 1 || !strings.Contains(stderr, "kiezd.toml:3: storage.dsn: holds a password") {
			t.Errorf("%s: exit %d, stderr %q; want the refusal at line 3", dsn, code, stderr)
		}
		if strings.Contains(stderr, "s3cr3t") || strings.Contains(stderr, "db.example.org") {
			t.Errorf("the error shows the DSN: %q", stderr)
		}
	}
	for _, dsn := range []string{"postgres://kiez@db.example.org/kiez", "host=/run/postgresql dbname=kiez user=kiez", "postgres:///kiez?host=/run/postgresql"} {
		if dsnHasPassword(dsn) {
			t.Errorf("dsnHasPassword(%q) = true", dsn)
		}
	}
}

// The database password comes from the file or the variable named, and
// errors about it never contain it.
func TestStoragePassword(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("file-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.Storage = storageConfig{Backend: backendPostgres, DSN: "host=/nonexistent dbname=kiez", PasswordFile: pwFile}
	if pw, err := cfg.dbPassword(); err != nil || pw != "file-pw" {
		t.Errorf("password_file: got %q, %v", pw, err)
	}
	t.Setenv("KIEZ_TEST_DB_PW", "env-pw")
	cfg.Storage.PasswordFile, cfg.Storage.PasswordEnv = "", "KIEZ_TEST_DB_PW"
	if pw, err := cfg.dbPassword(); err != nil || pw != "env-pw" {
		t.Errorf("password_env: got %q, %v", pw, err)
	}
	cfg.Storage.PasswordEnv = "KIEZ_TEST_DB_PW_UNSET"
	if _, err := cfg.dbPassword(); err == nil || !strings.Contains(err.Error(), "KIEZ_TEST_DB_PW_UNSET is not set") {
		t.Errorf("unset variable: got %v", err)
	}
	// A server that is not there: the error names the database, not
	// the password, even where the driver's message holds it (here the
	// user name, which pgconn puts into its errors, is the password).
	cfg.Storage.PasswordEnv = "KIEZ_TEST_DB_PW"
	cfg.Storage.DSN = "host=/nonexistent dbname=kiez user=env-pw"
	_, err := openStore(t.Context(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot open the PostgreSQL database") || !strings.Contains(err.Error(), "user=********") || strings.Contains(err.Error(), "env-pw") {
		t.Errorf("got %v; want the password (the user name) redacted", err)
	}
	if got := redact("a s3cret b s3cret", "s3cret"); got != "a ******** b ********" {
		t.Errorf("redact: %q", got)
	}
	if got := redact("a b", ""); got != "a b" {
		t.Errorf("redact without a password: %q", got)
	}
}

// kiezd check on PostgreSQL: connected, with the schema's version once
// serve has created it, a note before; a server that is not there is an
// error naming the database, with what to check.
func TestCheckPostgres(t *testing.T) {
	pinBackend(t, backendPostgres)
	file, _ := testConfig(t, "")
	deps := publicDeps(fakeResolver{})
	if r := checkFindings(t, file, deps); !r.has("Database", levelOK, "connected to the PostgreSQL database") || !r.has("Database", levelNote, "no Kiez tables yet") {
		t.Errorf("empty database:\n%s", r)
	}
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited:\n%s", d.stderr)
	}
	d.stop(t)
	if !strings.Contains(d.stderr.String(), `msg="migrating schema to `) {
		t.Errorf("serve did not log the migration of the empty database:\n%s", d.stderr)
	}
	if r := checkFindings(t, file, deps); !r.has("Database", levelOK, "the Kiez schema is at version ") || r.count(levelError) > 0 && r.has("Database", levelError, "") {
		t.Errorf("after serve:\n%s", r)
	}
	gone := strings.Replace(string(must(os.ReadFile(file))), "host=", "host=/nonexistent", 1)
	if err := os.WriteFile(file, []byte(gone), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := checkFindings(t, file, deps); !r.has("Database", levelError, "cannot connect to the PostgreSQL database") {
		t.Errorf("no server:\n%s", r)
	}
}

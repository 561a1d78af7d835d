package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportFiles: kiezd import takes several documents, as files or as
// a directory of *.xml files (prosody-migrator writes one per account);
// a document that cannot be imported is named and the others are
// imported all the same, with exit status 1.
func TestImportFiles(t *testing.T) {
	file, dir := testConfig(t, "")
	export := filepath.Join(dir, "export")
	if err := os.Mkdir(export, 0o700); err != nil {
		t.Fatal(err)
	}
	doc := func(user string) string {
		return `<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='` + user + `' password='` + user + `-password'/></host></server-data>`
	}
	for name, text := range map[string]string{
		"alice@localhost.xml":     doc("alice"),
		"bob@localhost.xml":       doc("bob"),
		"carol@elsewhere.xml":     `<server-data xmlns='urn:xmpp:pie:0'><host jid='elsewhere.example'><user name='carol'/></host></server-data>`,
		"dave@localhost.xml":      doc("dave"),
		"notes.txt":               "not a document",
		"localhost.xml.lock.tmpx": "not a document either",
	} {
		if err := os.WriteFile(filepath.Join(export, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	code, out, stderr := kiezd(t, "", "-config", file, "import", export)
	if code != 1 {
		t.Fatalf("import: exit %d, want 1\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{"alice@localhost: imported", "bob@localhost: imported", "dave@localhost: imported"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{`carol@elsewhere.xml: import: line 1: host "elsewhere.example" is not served here`, "1 of 4 files were not imported in full"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("errors lack %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(out+stderr, "notes.txt") {
		t.Errorf("a file not named *.xml was read:\n%s\n%s", out, stderr)
	}

	// Files named one by one; the accounts exist now.
	code, out, stderr = kiezd(t, "", "-config", file, "import", filepath.Join(export, "alice@localhost.xml"), filepath.Join(export, "bob@localhost.xml"))
	if code != 1 || !strings.Contains(out, "alice@localhost: not imported") || !strings.Contains(out, "bob@localhost: not imported") ||
		!strings.Contains(stderr, "2 of 2 files were not imported in full") {
		t.Errorf("import of existing accounts: exit %d\n%s\n%s", code, out, stderr)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{empty}, 1, "no *.xml files in the directory"},
		{[]string{"-", export}, 2, "standard input (-) cannot be read together with files"},
		{[]string{filepath.Join(dir, "missing.xml")}, 1, "no such file or directory"},
	} {
		code, _, stderr := kiezd(t, "", append([]string{"-config", file, "import"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("import %v: exit %d %q; want %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A file with several mistakes gives all of them in one run, each at its
// key's line, in the order of the file: type errors, unknown keys and
// what validation finds.
func TestConfigAllErrorsAtOnce(t *testing.T) {
	text := `domains = "example.org"
scram_iterations = 10

[listen]
c2s = ["5222"]
direct_tls = [5223]

[limits]
ping_after = "4 minutes"
queue = 4

[log]
level = "loud"

[modules]
roster = "yes"
archive_default = "sometimes"

[modules.contact]
fax-addresses = ["tel:1"]

[[tls.certificates]]
cert = "a.pem"
key = "a.key"

[[tls.certificates]]
cert = "b.pem"
`
	dir := t.TempDir()
	file := filepath.Join(dir, "kiezd.toml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`kiezd: config ` + file + `:1: domains: must be a list, e.g. ["example.org"], not the text "example.org"`,
		`kiezd: config ` + file + `:2: scram_iterations: 10 is too few; the minimum is 4096`,
		`kiezd: config ` + file + `:5: listen.c2s: "5222" is not an address such as ":5222" or "127.0.0.1:5222"`,
		`kiezd: config ` + file + `:6: listen.direct_tls: must be a list of strings in quotes, e.g. [":5223"]; item 1 is the number 5223`,
		`kiezd: config ` + file + `:9: limits.ping_after: "4 minutes" is not a duration such as "60s", "4m" or "30d"`,
		`kiezd: config ` + file + `:10: unknown key "limits.queue"`,
		`kiezd: config ` + file + `:13: log.level: "loud" is not one of debug, info, warn, error`,
		`kiezd: config ` + file + `:16: modules.roster: must be true or false, not the text "yes"`,
		`kiezd: config ` + file + `:17: modules.archive_default: "sometimes" is not always, roster or never`,
		`kiezd: config ` + file + `:20: modules.contact.fax-addresses: unknown address type "fax-addresses"`,
		`kiezd: config ` + file + `:26: tls.certificates: each entry needs both cert and key`,
	}
	code, stdout, stderr := kiezd(t, "", "-config", file, "check-config")
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if code != 1 || stdout != "" || len(lines) != len(want) {
		t.Fatalf("exit %d, %d lines, want %d:\n%s%s", code, len(lines), len(want), stdout, stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, lines[i], w)
		}
	}
}

// Keys of kinds kiezd's configuration does not use yet still decode,
// through the toml package.
func TestDecodeOtherKinds(t *testing.T) {
	var v struct {
		F float64 `toml:"f"`
		U []int   `toml:"u"`
		N uint16  `toml:"n"`
	}
	data := []byte("f = 1.5\nu = [1, 2]\nn = 70000\n")
	d := &decoder{file: "x.toml", data: data}
	d.table(reflect.ValueOf(&v).Elem(), map[string]any{"f": 1.5, "u": []any{int64(1), int64(2)}, "n": int64(70000)}, place{})
	if v.F != 1.5 || len(v.U) != 2 || v.U[1] != 2 {
		t.Errorf("decoded %+v", v)
	}
	if len(d.errs) != 1 || d.errs[0].Line != 3 || !strings.HasPrefix(d.errs[0].Msg, "n: ") {
		t.Errorf("errors %v, want one for n at line 3", d.errs)
	}
}

// Each validation message is at its key's own line, never at the table's
// header: every key here sits below its header.
func TestValidationLines(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		line       int
		msg        string
	}{
		{"filter allow", "[filter]\n\nallow = [\"nonsense\"]\n", 3, `filter.allow: "nonsense" is neither an address nor a prefix`},
		{"data_dir", "\ndata_dir = \"\"\n", 2, "data_dir: must not be empty"},
		{"direct_tls address", "[listen]\n\ndirect_tls = [\"x\"]\n", 3, `listen.direct_tls: "x" is not an address`},
		{"acme without listeners", "domains = [\"a.example\"]\n[tls.acme]\nenabled = true\nlisten = \"\"\nhttp_listen = \"\"\n", 4, "tls.acme: listen and http_listen are both empty"},
		{"acme bad listen", "domains = [\"a.example\"]\n[tls.acme]\nenabled = true\n\nhttp_listen = \"80\"\n", 5, `tls.acme: "80" is not an address`},
		{"acme directory", "domains = [\"a.example\"]\n[tls.acme]\nenabled = true\n\ndirectory_url = \"\"\n", 5, "tls.acme.directory_url: must not be empty"},
		{"remove unused after", "[accounts]\n\nremove_unused_after = \"7d\"\n", 3, "accounts.remove_unused_after: \"7d\" is shorter than"},
		{"offline retention", "[modules]\n\noffline_retention = \"4000d\"\n", 3, "modules.offline_retention:"},
		{"registration policy", "[registration]\n\npolicy = \"maybe\"\n", 3, `registration.policy: "maybe" is not`},
		{"removal grace", "[registration]\n\nremoval_grace = \"100d\"\n", 3, "registration.removal_grace: \"100d\" is longer than 90 days"},
		{"invite validity", "[registration]\n\ninvite_validity = \"100d\"\n", 3, "registration.invite_validity:"},
		{"upload retention", "[modules]\n\nupload_retention = \"4000d\"\n", 3, "modules.upload_retention:"},
		{"upload daily quota", "[modules]\n\nupload_daily_quota = \"1TiB\"\n", 3, "modules.upload_daily_quota:"},
		{"upload max file size", "[modules]\n\nupload_max_file_size = \"2GiB\"\nupload_daily_quota = \"1GiB\"\nupload_quota = \"1TiB\"\n", 3, "modules.upload_max_file_size:"},
		{"pep item size", "[modules]\n\npep_max_item_size = \"1GiB\"\n", 3, "modules.pep_max_item_size:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "kiezd.toml")
			if err := os.WriteFile(file, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(file)
			var ces configErrors
			var ce *configError
			switch {
			case errors.As(err, &ces):
				t.Fatalf("%d errors, want one:\n%v", len(ces), err)
			case !errors.As(err, &ce):
				t.Fatalf("got %v, want a configError", err)
			}
			if ce.Line != tc.line || !strings.HasPrefix(ce.Msg, tc.msg) {
				t.Errorf("got %q (line %d), want line %d and %q...", ce.Msg, ce.Line, tc.line, tc.msg)
			}
		})
	}
}

// An inline array of tables decodes as [[tls.certificates]] entries do;
// an empty one is none.
func TestInlineCertificates(t *testing.T) {
	for _, tc := range []struct {
		text string
		n    int
	}{
		{"[tls]\ncertificates = [{cert = \"a.pem\", key = \"a.key\"}, {cert = \"b.pem\", key = \"b.key\"}]\n", 2},
		{"[tls]\ncertificates = []\n", 0},
	} {
		cfg, err := parseConfig("kiezd.toml", []byte(tc.text))
		if err != nil {
			t.Fatalf("%q: %v", tc.text, err)
		}
		if len(cfg.TLS.Certificates) != tc.n || tc.n == 2 && cfg.TLS.Certificates[1].Key != "b.key" {
			t.Errorf("%q: got %+v", tc.text, cfg.TLS.Certificates)
		}
	}
	_, err := parseConfig("kiezd.toml", []byte("[tls]\ncertificates = [\"a.pem\"]\n"))
	if err == nil || !strings.Contains(err.Error(), "kiezd.toml:2: tls.certificates: must be one or more tables") {
		t.Errorf("a list of strings: %v", err)
	}
}

package main

import (
	"errors"
	"github.com/kiez-im/kiez/storage/memory"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestParseValidConfig(t *testing.T) {
	cfg, err := loadConfig("testdata/valid.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	want.file = "testdata/valid.toml"
	want.Domains = []string{"example.org", "example.net"}
	want.DataDir = filepath.Join("testdata", "var")
	want.SCRAMIterations = 4096
	want.Listen = listenConfig{C2S: []string{"127.0.0.1:5222", "[::1]:5222"}, DirectTLS: []string{},
		HTTPS: []string{"[::]:5281"}, HTTP: []string{"127.0.0.1:5280"}}
	want.HTTP = httpConfig{ExternalURL: "https://upload.example.org/", ReadHeaderTimeout: duration(5 * time.Second),
		RequestTimeout: duration(30 * time.Minute), IdleTimeout: duration(time.Minute), MaxConcurrentRequests: 64,
		WebSocket: true, WebSocketOrigins: []string{"https://chat.example.org", "*"}}
	want.TLS.Certificates = []certConfig{
		{Cert: filepath.Join("testdata", "certs", "example.org.crt"), Key: "/etc/kiezd/example.org.key"},
		{Cert: filepath.Join("testdata", "certs", "example.net.crt"), Key: filepath.Join("testdata", "certs", "example.net.key")},
	}
	want.Log = logConfig{Level: "debug", Format: "json"}
	want.Limits.MaxStanzaSize = 1 << 20
	want.Limits.MaxPreAuthSize = 4096
	want.Limits.PreAuthTimeout = duration(30 * time.Second)
	want.Limits.PingAfter = duration(2 * time.Minute)
	want.Limits.PingTimeout = duration(45 * time.Second)
	want.Limits.QueueSize = 64
	want.Limits.AuthAttempts = 5
	want.Modules.Time = false
	want.Modules.VersionShowOS = true
	want.Modules.OfflineRetention = duration(7 * 24 * time.Hour)
	want.Modules.ArchiveDefault = "roster"
	want.Modules.ArchiveRetention = duration(90 * 24 * time.Hour)
	want.Modules.Carbons = false
	want.Modules.Contact = map[string][]string{"abuse-addresses": {"mailto:abuse@example.org"}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", cfg, want)
	}
	lim := cfg.limits()
	if lim.MaxStanzaSize != 1<<20 || lim.PingTimeout != 45*time.Second || lim.MaxDepth != 32 || lim.WriteTimeout != 30*time.Second {
		t.Errorf("limits() = %+v", lim)
	}
	mods, err := cfg.modules(memory.New(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, m.Name())
	}
	const wantMods = "blocking,presence,roster,strangers,mam,offline,adhoc,vcard,private,ping,version,caps,pep,muc,push,contact"
	if got := strings.Join(names, ","); got != wantMods {
		t.Errorf("modules = %s, want %s", got, wantMods)
	}
}

// The example file sets every key to its default: what it documents is
// what kiezd does without it.
func TestExampleConfigIsTheDefault(t *testing.T) {
	cfg, err := loadConfig("kiezd.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	want.file = "kiezd.example.toml"
	want.DataDir = "data"
	want.Modules.Contact = map[string][]string{}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("kiezd.example.toml parses as\n%+v\nbut the defaults are\n%+v", cfg, want)
	}
}

func TestNoConfigFileUsesDefaults(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, defaultConfig()) {
		t.Errorf("got %+v, want the defaults", cfg)
	}
	if cfg.dbPath() != filepath.Join("data", "kiez.db") || displayPath(cfg.dbPath()) != "./data/kiez.db" {
		t.Errorf("database at %s (shown as %s)", cfg.dbPath(), displayPath(cfg.dbPath()))
	}
	if _, err := loadConfig("missing.toml"); err == nil || err.Error() != "config missing.toml: no such file or directory" {
		t.Errorf("explicit missing file: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		text       string // used when file is ""
		line       int
		msg        string // substring of the message
	}{
		{name: "unknown key", file: "testdata/unknown-key.toml", line: 6, msg: `unknown key "listen.direct-tls"`},
		{name: "bad duration", file: "testdata/bad-duration.toml", line: 4, msg: `"4 minutes" is not a duration`},
		{name: "bad domain", file: "testdata/bad-domain.toml", line: 3, msg: `"alice@example.org" is not a valid domain`},
		{name: "syntax", file: "testdata/syntax.toml", line: 2, msg: "expected '.' or ']' to end table name"},
		{name: "unknown table", text: "domains = [\"a.example\"]\n\n[database]\nkind = \"sql\"\n", line: 3, msg: `unknown key "database"`},
		{name: "unknown key in array of tables", text: "[[tls.certificates]]\ncert = \"a\"\nkey = \"b\"\n\n[[tls.certificates]]\ncert = \"c\"\nkey = \"d\"\ndomain = \"x\"\n", line: 8, msg: `unknown key "tls.certificates.domain"`},
		{name: "dotted unknown key", text: "domains = [\"a.example\"]\nlimits.queue = 4\n", line: 2, msg: `unknown key "limits.queue"`},
		{name: "integer duration", text: "[limits]\nping_timeout = 60\n", line: 2, msg: "durations are strings"},
		{name: "bad days", text: "[modules]\noffline_retention = \"1.5d\"\n", line: 2, msg: `"1.5d" is not a duration`},
		{name: "archive default", text: "[modules]\n\narchive_default = \"sometimes\"\n", line: 3, msg: `modules.archive_default: "sometimes" is not always, roster or never`},
		{name: "archive retention", text: "[modules]\narchive_retention = \"4000d\"\n", line: 2, msg: `modules.archive_retention: "96000h0m0s" is longer than 10 years`},
		{name: "offline limit", text: "[modules]\noffline_limit = 1_000_000\n", line: 2, msg: "modules.offline_limit: 1000000 is more than"},
		{name: "negative duration", text: "[limits]\n\nping_timeout = \"-1s\"\n", line: 3, msg: "must be positive"},
		{name: "zero size", text: "[limits]\nmax_stanza_size = 0\n", line: 2, msg: "must be positive"},
		{name: "bad size", text: "[limits]\nmax_stanza_size = \"big\"\n", line: 2, msg: "is not a size"},
		{name: "zero count", text: "[limits]\nqueue_size = 0\n", line: 2, msg: "must be a positive integer"},
		{name: "wrong type", text: "domains = [\"a.example\"]\nscram_iterations = \"many\"\n", line: 2, msg: `scram_iterations: must be a whole number, e.g. 10000, not the text "many"`},
		{name: "domains not a list", text: "domains = \"example.org\"\n", line: 1, msg: `domains: must be a list, e.g. ["example.org"], not the text "example.org"`},
		{name: "list of numbers", text: "[listen]\nc2s = [5222]\n", line: 2, msg: `listen.c2s: must be a list of strings in quotes, e.g. [":5222"]; item 1 is the number 5222`},
		{name: "bool as text", text: "[modules]\nroster = \"yes\"\n", line: 2, msg: `modules.roster: must be true or false, not the text "yes"`},
		{name: "table as value", text: "limits = 3\n", line: 1, msg: "limits: must be a table"},
		{name: "certificates as one table", text: "[tls.certificates]\ncert = \"a\"\n", line: 1, msg: "must be one or more tables, each starting with a line [[tls.certificates]]"},
		{name: "second certificate without key", text: "[[tls.certificates]]\ncert = \"a\"\nkey = \"b\"\n\n[[tls.certificates]]\ncert = \"c\"\n", line: 5, msg: "needs both cert and key"},
		{name: "no domains", text: "# none\ndomains = []\n", line: 2, msg: "at least one domain"},
		{name: "duplicate domain", text: "domains = [\"a.example\", \"A.example\"]\n", line: 1, msg: "listed twice"},
		{name: "many iterations", text: "\nscram_iterations = 20_000_000\n", line: 2, msg: "more than clients accept"},
		{name: "few iterations", text: "scram_iterations = 10\n", line: 1, msg: "minimum is 4096"},
		{name: "bad address", text: "[listen]\nc2s = [\"5222\"]\n", line: 2, msg: `"5222" is not an address`},
		{name: "no listener", text: "[listen]\nc2s = []\ndirect_tls = []\n", line: 2, msg: "no c2s or direct_tls address"},
		{name: "cert without key", text: "\n[[tls.certificates]]\ncert = \"a.pem\"\n", line: 2, msg: "needs both cert and key"},
		{name: "acme for localhost", text: "[tls.acme]\nenabled = true\n", line: 2, msg: `"localhost" cannot get a certificate`},
		{name: "acme and files", text: "domains = [\"a.example\"]\n[[tls.certificates]]\ncert = \"a\"\nkey = \"b\"\n[tls.acme]\nenabled = true\n", line: 6, msg: "use one or the other"},
		{name: "log level", text: "[log]\nlevel = \"loud\"\n", line: 2, msg: `"loud" is not one of`},
		{name: "log format", text: "[log]\nlevel = \"warn\"\nformat = \"xml\"\n", line: 3, msg: `"xml" is neither`},
		{name: "contact type", text: "[modules]\nping = false\n\n[modules.contact]\nfax-addresses = [\"tel:1\"]\n", line: 5, msg: `unknown address type "fax-addresses"`},
		{name: "https address", text: "[listen]\nc2s = [\":5222\"]\nhttps = [\"5281\"]\n", line: 3, msg: `listen.https: "5281" is not an address`},
		{name: "http address", text: "[listen]\nhttp = [\"localhost\"]\n", line: 2, msg: `listen.http: "localhost" is not an address`},
		{name: "same port", text: "[listen]\nc2s = [\":5222\"]\nhttps = [\"127.0.0.1:5222\"]\n", line: 3, msg: `listen.https: "127.0.0.1:5222" takes the port of ":5222" in listen.c2s`},
		{name: "same address", text: "[listen]\nhttps = [\"127.0.0.1:5280\"]\nhttp = [\"127.0.0.1:5280\"]\n", line: 3, msg: `listen.http: "127.0.0.1:5280" takes the port of "127.0.0.1:5280" in listen.https`},
		{name: "http without url", text: "[listen]\nhttps = []\nhttp = [\"127.0.0.1:5280\"]\n", line: 3, msg: "listen.http: set http.external_url too"},
		{name: "external url host", text: "[http]\nexternal_url = \"upload.example.org\"\n", line: 2, msg: `http.external_url: "upload.example.org" is not an https URL`},
		{name: "external url query", text: "[http]\n\nexternal_url = \"https://upload.example.org/?key=1\"\n", line: 3, msg: "is not an https URL"},
		{name: "external url scheme", text: "[http]\nexternal_url = \"http://example.org/\"\n", line: 2, msg: "is not an https URL"},
		{name: "websocket origin path", text: "[http]\nwebsocket_origins = [\"https://chat.example.org/app\"]\n", line: 2, msg: `http.websocket_origins: "https://chat.example.org/app" is not an origin`},
		{name: "websocket origin bare host", text: "[http]\n\nwebsocket_origins = [\"chat.example.org\"]\n", line: 3, msg: "is not an origin"},
		{name: "http timeout", text: "[http]\nidle_timeout = 120\n", line: 2, msg: "durations are strings"},
		{name: "http cap", text: "[http]\nread_header_timeout = \"5s\"\nmax_concurrent_requests = 0\n", line: 3, msg: "must be a positive integer"},
		{name: "http unknown", text: "[http]\nbody_timeout = \"1m\"\n", line: 2, msg: `unknown key "http.body_timeout"`},
		{name: "contact inline", text: "[modules]\ncontact = { admin-addresses = [\"not a uri\"] }\n", line: 2, msg: "malformed URI"},
		{name: "s2s address", text: "[s2s]\nlisten = [\"5269\"]\n", line: 2, msg: `s2s.listen: "5269" is not an address`},
		{name: "s2s deny", text: "[s2s]\n\ndeny = [\"bad domain\"]\n", line: 3, msg: `s2s.deny: "bad domain" is not a valid domain`},
		{name: "s2s dialback", text: "[s2s]\ndialback = \"no\"\n", line: 2, msg: `s2s.dialback: must be true or false`},
		{name: "storage backend", text: "[storage]\nbackend = \"mysql\"\n", line: 2, msg: `storage.backend: "mysql" is neither "bbolt" nor "postgres"`},
		{name: "storage no dsn", text: "[storage]\nbackend = \"postgres\"\n", line: 2, msg: `storage.dsn: backend "postgres" needs the database`},
		{name: "storage dsn for bbolt", text: "[storage]\n\ndsn = \"postgres://kiez@localhost/kiez\"\n", line: 3, msg: `storage.dsn: set, but backend is "bbolt"`},
		{name: "storage two passwords", text: "[storage]\nbackend = \"postgres\"\ndsn = \"host=/run/postgresql dbname=kiez\"\npassword_env = \"PW\"\npassword_file = \"pw\"\n", line: 5, msg: `storage.password_file: give the password in one of`},
		{name: "storage max_conns", text: "[storage]\nbackend = \"postgres\"\ndsn = \"host=/run/postgresql dbname=kiez\"\nmax_conns = -1\n", line: 4, msg: `storage.max_conns: -1 is not between 0`},
		{name: "storage bad dsn", text: "[storage]\nbackend = \"postgres\"\ndsn = \"postgres://kiez@[::1/kiez\"\n", line: 3, msg: `storage.dsn: not a PostgreSQL connection string`},
		{name: "s2s host", text: "[s2s.hosts]\n\"a.example\" = \"10.0.0.1:5269\"\n\"b.example\" = \"b.example\"\n", line: 3, msg: `s2s.hosts: "b.example" for b.example is not a "host:port"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.file
			if file == "" {
				file = filepath.Join(t.TempDir(), "kiezd.toml")
				if err := os.WriteFile(file, []byte(tc.text), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := loadConfig(file)
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a configError", err)
			}
			if ce.File != file || ce.Line != tc.line || !strings.Contains(ce.Msg, tc.msg) {
				t.Errorf("got %q (line %d), want line %d and %q", err, ce.Line, tc.line, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "config "+file+":") {
				t.Errorf("error %q does not start with config %s:", err, file)
			}
		})
	}
}

func TestKeyLine(t *testing.T) {
	doc := `# comment with key = 1
domains = ["x"] # key = 2
[tls]
  [[tls.certificates]]
  cert = "a#b"
"quoted key" = 1
[modules]
contact = { admin-addresses = [], other = 1 }
a.b.c = 2
`
	for _, tc := range []struct {
		key  string
		line int
	}{
		{"domains", 2},
		{"key", 0},
		{"tls", 3},
		{"tls.certificates", 4},
		{"tls.certificates.cert", 5},
		{"tls.certificates.quoted key", 6},
		{"modules.contact", 8},
		{"modules.contact.other", 8},
		{"modules.a.b", 9},
		{"missing", 0},
	} {
		if got := keyLine([]byte(doc), toml.Key(strings.Split(tc.key, "."))); got != tc.line {
			t.Errorf("keyLine(%s) = %d, want %d", tc.key, got, tc.line)
		}
	}
}

// FuzzParseConfig checks that no input makes the parser panic, and that
// every error it returns is a configError.
func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.toml")
	files = append(files, "kiezd.example.toml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseConfig("fuzz.toml", data)
		var ce *configError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("error %v (%T) is not a configError", err, err)
		}
		if err == nil && len(cfg.Domains) == 0 {
			t.Fatal("accepted a configuration without domains")
		}
	})
}

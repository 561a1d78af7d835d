package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/modules/muc"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// The [muc] table reaches the module: every key is converted, 0 history
// and 0 rate mean none and no limit, and enabled = false leaves the
// module (and its sub-domain) out.
func TestMUCConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kiezd.toml")
	text := `[muc]
subdomain = "rooms"
name = "Our rooms"
creation = "admins"
admins = ["boss@localhost"]
orphans = "destroy"
max_rooms_per_user = 3
max_occupants = 50
max_nick_length = 20
max_history = 40
default_history = 0
message_rate = 0.5
message_burst = 4
max_avatar_size = "16KiB"
`
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	opts := cfg.mucOptions(func(format string, args ...any) { errs = append(errs, format) })
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if opts.Subdomain != "rooms" || opts.Name != "Our rooms" || opts.Creation != muc.CreateAdmins || len(opts.Admins) != 1 ||
		opts.Admins[0].String() != "boss@localhost" || opts.Orphans != muc.DestroyOrphans || opts.MaxRoomsPerUser != 3 ||
		opts.MaxOccupants != 50 || opts.MaxNickLength != 20 || opts.MaxHistory != 40 || opts.DefaultHistory != -1 ||
		opts.MessageRate != 0.5 || opts.MessageBurst != 4 || opts.MaxAvatarSize != 16<<10 {
		t.Errorf("options %+v", opts)
	}
	hosts, err := cfg.serviceHosts()
	if err != nil || !slices.Contains(hosts, "rooms.localhost") {
		t.Errorf("service hosts %v, %v; want rooms.localhost", hosts, err)
	}
	cfg.MUC.MessageRate = 0
	if o := cfg.mucOptions(func(string, ...any) {}); o.MessageRate >= 0 {
		t.Errorf("message_rate 0 gives rate %v, want no limit", o.MessageRate)
	}

	cfg = defaultConfig()
	cfg.MUC.Enabled = false
	mods, err := cfg.modules(memory.New(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if _, ok := m.(server.ServiceProvider); ok && m.Name() == "muc" {
			t.Error("muc is built with enabled = false")
		}
	}
}

// Mistakes in [muc] are reported at their key's line.
func TestMUCConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		line       int
		msg        string
	}{
		{"creation", "[muc]\n\ncreation = \"everyone\"\n", 3, `muc.creation: "everyone" is not "local", "anyone" or "admins"`},
		{"admins only, none", "[muc]\nadmins = []\ncreation = \"admins\"\n", 3, `muc.creation: "admins" lets only muc.admins create rooms`},
		{"admin address", "[muc]\n\nadmins = [\"localhost\"]\n", 3, `muc.admins: "localhost" is not an account address`},
		{"orphans", "[muc]\n\n\norphans = \"keep\"\n", 4, `muc.orphans: "keep" is not "admin" or "destroy"`},
		{"subdomain", "[muc]\nsubdomain = \"Chat Rooms\"\n", 2, `muc.subdomain: "Chat Rooms" is not one DNS label`},
		{"subdomain of upload", "[muc]\n\nsubdomain = \"upload\"\n", 3, `muc.subdomain: "upload" is file upload's`},
		{"subdomain a domain", "domains = [\"example.org\", \"conference.example.org\"]\n[muc]\nsubdomain = \"conference\"\n", 3, "muc.subdomain: conference.example.org is one of domains"},
		{"name", "[muc]\nname = \"\"\n", 2, "muc.name: must not be empty"},
		{"default history", "[muc]\nmax_history = 10\ndefault_history = 11\n", 3, "muc.default_history: 11 is more than muc.max_history (10)"},
		{"negative history", "[muc]\n\ndefault_history = -1\n", 3, "muc.default_history: -1 is negative"},
		{"history type", "[muc]\ndefault_history = \"20\"\n", 2, "muc.default_history: must be a whole number"},
		{"zero occupants", "[muc]\nmax_occupants = 0\n", 2, "must be a positive integer"},
		{"rate", "[muc]\n\nmessage_rate = -1\n", 3, "the rate must be 0 (no limit) or a positive number"},
		{"rate type", "[muc]\nmessage_rate = \"fast\"\n", 2, "rates are numbers per second"},
		{"avatar size", "[muc]\nmax_avatar_size = \"1MiB\"\n", 2, "muc.max_avatar_size: 1048576 bytes do not fit"},
		{"enabled", "[muc]\nenabled = \"yes\"\n", 2, "muc.enabled: must be true or false"},
		{"unknown key", "[muc]\nmax_rooms = 3\n", 2, `unknown key "muc.max_rooms"`},
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
			if ce.Line != tc.line || !strings.Contains(ce.Msg, tc.msg) {
				t.Errorf("got %q (line %d), want line %d and %q", ce.Msg, ce.Line, tc.line, tc.msg)
			}
		})
	}
}

// The self-signed certificate kiezd generates for a domain covers every
// service sub-domain the default modules serve: upload.localhost and
// conference.localhost.
func TestSelfSignedCoversServices(t *testing.T) {
	cfg := defaultConfig()
	hosts, err := cfg.serviceHosts()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(hosts, "conference.localhost") || !slices.Contains(hosts, "upload.localhost") {
		t.Fatalf("service hosts %v, want upload.localhost and conference.localhost", hosts)
	}
	files, err := selfSignedFiles(t.TempDir(), cfg.Domains, testNow, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadKeyPair(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range append(hosts, "localhost") {
		if err := c.Leaf.VerifyHostname(h); err != nil {
			t.Errorf("the self-signed certificate does not cover %s: %v", h, err)
		}
	}
}

// [muc] archive_retention reaches the module, between a day and ten
// years.
func TestMUCArchiveRetention(t *testing.T) {
	for _, tc := range []struct {
		text string
		line int
		msg  string
	}{
		{"[muc]\narchive_retention = \"12h\"\n", 2, `muc.archive_retention: "12h0m0s" is shorter than a day`},
		{"[muc]\n\narchive_retention = \"4000d\"\n", 3, "muc.archive_retention: \"4000d\" is longer than 10 years"},
		{"[muc]\narchive_retention = 7\n", 2, "durations are strings"},
	} {
		file := filepath.Join(t.TempDir(), "kiezd.toml")
		if err := os.WriteFile(file, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadConfig(file)
		var ce *configError
		if !errors.As(err, &ce) || ce.Line != tc.line || !strings.Contains(ce.Msg, tc.msg) {
			t.Errorf("%q: got %v, want line %d and %q", tc.text, err, tc.line, tc.msg)
		}
	}
	file := filepath.Join(t.TempDir(), "kiezd.toml")
	if err := os.WriteFile(file, []byte("[muc]\narchive_retention = \"7d\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.mucOptions(func(string, ...any) {}); o.ArchiveRetention != 7*24*time.Hour {
		t.Errorf("archive retention %v, want 7 days", o.ArchiveRetention)
	}
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/filter/ipfilter"
	"github.com/kiez-im/kiez/modules/contact"
	"github.com/kiez-im/kiez/modules/invite"
	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/modules/offline"
	"github.com/kiez-im/kiez/modules/pep"
	"github.com/kiez-im/kiez/modules/register"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/modules/stock"
	"github.com/kiez-im/kiez/modules/upload"
	"github.com/kiez-im/kiez/modules/version"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage/blob"
	"github.com/kiez-im/kiez/storage/memory"
)

// maxIterations is the most SCRAM iterations clients are expected to
// accept (mellium's and Kiez's clients refuse more than ten million).
const maxIterations = 10_000_000

// defaultConfigFile is read when -config is not given and the file exists.
const defaultConfigFile = "kiezd.toml"

// config is the kiezd configuration file. Every key, its default and its
// meaning are in kiezd.example.toml.
type config struct {
	Domains         []string       `toml:"domains"`
	DataDir         string         `toml:"data_dir"`
	SCRAMIterations int            `toml:"scram_iterations"`
	SCRAMHashes     []string       `toml:"scram_hashes"`
	Listen          listenConfig   `toml:"listen"`
	S2S             s2sConfig      `toml:"s2s"` // see s2s.go
	HTTP            httpConfig     `toml:"http"`
	TLS             tlsConfig      `toml:"tls"`
	Log             logConfig      `toml:"log"`
	Limits          limitsConfig   `toml:"limits"`
	Accounts        accountsConfig `toml:"accounts"`
	Modules         modulesConfig  `toml:"modules"`
	MUC             mucConfig      `toml:"muc"`
	Filter          filterConfig   `toml:"filter"`
	Registration    regConfig      `toml:"registration"`
	Metrics         metricsConfig  `toml:"metrics"`
	Storage         storageConfig  `toml:"storage"` // see storage.go

	// Components is the [components] table; see components.go.
	Components componentsConfig `toml:"components"`

	// Push notifications, calls' external services and the file
	// transfer proxy; see mobile.go.
	Push             pushConfig        `toml:"push"`
	ExternalServices extServicesConfig `toml:"external_services"`
	Proxy65          proxy65Config     `toml:"proxy65"`

	// file is the path the configuration was read from, "" for the
	// built-in defaults.
	file string
	// flags are the -config and -data-dir flags kiezd was run with, for
	// the commands it suggests.
	flags []string
}

type listenConfig struct {
	C2S       []string `toml:"c2s"`
	DirectTLS []string `toml:"direct_tls"`
	HTTPS     []string `toml:"https"`
	HTTP      []string `toml:"http"`
}

// regConfig is the [registration] table: in-band registration (XEP-0077)
// and invitations (XEP-0401).
type regConfig struct {
	Policy         string      `toml:"policy"`
	Reserved       []string    `toml:"reserved"`
	AllowRemove    bool        `toml:"allow_remove"`
	RemovalGrace   offDuration `toml:"removal_grace"`
	UserInvites    bool        `toml:"user_invites"`
	InviteValidity duration    `toml:"invite_validity"`
}

// filterConfig is the [filter] table: the IP filter in front of every
// listener (package filter/ipfilter).
type filterConfig struct {
	Allow              []string `toml:"allow"`
	ConnRate           count    `toml:"conn_rate"`
	ConnWindow         duration `toml:"conn_window"`
	MaxUnauthenticated count    `toml:"max_unauthenticated"`
	AuthFailures       count    `toml:"auth_failures"`
	AuthWindow         duration `toml:"auth_window"`
	BanFor             duration `toml:"ban_for"`
	RegistrationRate   count    `toml:"registration_rate"`
	RegistrationWindow duration `toml:"registration_window"`
}

// filterOptions returns the IP filter's options; an address in allow
// without a prefix length means that one address.
func (c *config) filterOptions() (ipfilter.Options, error) {
	f := c.Filter
	opts := ipfilter.Options{
		ConnRate: int(f.ConnRate), ConnWindow: time.Duration(f.ConnWindow),
		MaxUnauthenticated: int(f.MaxUnauthenticated),
		AuthFailures:       int(f.AuthFailures), AuthWindow: time.Duration(f.AuthWindow), BanFor: time.Duration(f.BanFor),
		RegistrationRate: int(f.RegistrationRate), RegistrationWindow: time.Duration(f.RegistrationWindow),
	}
	for _, a := range f.Allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			addr, aerr := netip.ParseAddr(a)
			if aerr != nil {
				return opts, fmt.Errorf("filter.allow: %q is neither an address nor a prefix such as 192.0.2.0/24", a)
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		opts.Allow = append(opts.Allow, p.Masked())
	}
	return opts, nil
}

// httpConfig is the [http] table: how the https and http listeners serve
// the modules' HTTP routes.
type httpConfig struct {
	ExternalURL           string   `toml:"external_url"`
	ReadHeaderTimeout     duration `toml:"read_header_timeout"`
	RequestTimeout        duration `toml:"request_timeout"`
	IdleTimeout           duration `toml:"idle_timeout"`
	MaxConcurrentRequests count    `toml:"max_concurrent_requests"`
	// WebSocket serves XMPP over WebSocket (RFC 7395) at /xmpp-websocket
	// on the https listeners, and its XEP-0156 discovery at
	// /.well-known/host-meta and host-meta.json.
	WebSocket bool `toml:"websocket"`
	// WebSocketOrigins are the origins of web clients on other sites
	// allowed to open WebSocket streams ("*" for any).
	WebSocketOrigins []string `toml:"websocket_origins"`
}

type tlsConfig struct {
	Certificates []certConfig `toml:"certificates"`
	ACME         acmeConfig   `toml:"acme"`
}

type certConfig struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

type acmeConfig struct {
	Enabled      bool   `toml:"enabled"`
	Email        string `toml:"email"`
	CacheDir     string `toml:"cache_dir"`
	DirectoryURL string `toml:"directory_url"`
	Listen       string `toml:"listen"`
	HTTPListen   string `toml:"http_listen"`
}

type logConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

type limitsConfig struct {
	MaxStanzaSize  byteSize `toml:"max_stanza_size"`
	MaxPreAuthSize byteSize `toml:"max_pre_auth_size"`
	MaxDepth       count    `toml:"max_depth"`
	PreAuthTimeout duration `toml:"pre_auth_timeout"`
	PingAfter      duration `toml:"ping_after"`
	PingTimeout    duration `toml:"ping_timeout"`
	WriteTimeout   duration `toml:"write_timeout"`
	ResumeTimeout  duration `toml:"resume_timeout"`
	QueueSize      count    `toml:"queue_size"`
	AuthAttempts   count    `toml:"auth_attempts"`
	ReadRate       byteSize `toml:"read_rate"`
	ReadRateAuth   byteSize `toml:"read_rate_authenticated"`
}

type accountsConfig struct {
	RemoveUnused      bool     `toml:"remove_unused"`
	RemoveUnusedAfter duration `toml:"remove_unused_after"`
}

type modulesConfig struct {
	Roster        bool                `toml:"roster"`
	MaxRoster     count               `toml:"max_roster_items"`
	VCard         bool                `toml:"vcard"`
	Private       bool                `toml:"private"`
	Blocking      bool                `toml:"blocking"`
	Ping          bool                `toml:"ping"`
	Time          bool                `toml:"time"`
	Version       bool                `toml:"version"`
	VersionShowOS bool                `toml:"version_show_os"`
	Contact       map[string][]string `toml:"contact"`

	Offline          bool     `toml:"offline"`
	OfflineLimit     count    `toml:"offline_limit"`
	OfflineRetention duration `toml:"offline_retention"`
	Archive          bool     `toml:"archive"`
	ArchiveDefault   string   `toml:"archive_default"`
	ArchiveRetention duration `toml:"archive_retention"`
	Carbons          bool     `toml:"carbons"`

	PEP            bool     `toml:"pep"`
	PEPMaxItemSize byteSize `toml:"pep_max_item_size"`
	PEPMaxItems    count    `toml:"pep_max_items"`
	PEPMaxNodes    count    `toml:"pep_max_nodes"`
	PEPMaxBytes    byteSize `toml:"pep_max_bytes"`

	Upload            bool     `toml:"upload"`
	UploadMaxFileSize diskSize `toml:"upload_max_file_size"`
	UploadQuota       diskSize `toml:"upload_quota"`
	UploadDailyQuota  diskSize `toml:"upload_daily_quota"`
	UploadRetention   duration `toml:"upload_retention"`
}

// defaultConfig returns the built-in configuration: localhost, served on
// the standard ports, with data under ./data. It allocates afresh each time
// because decoding reuses slices.
func defaultConfig() *config {
	return &config{
		Domains:         []string{"localhost"},
		DataDir:         "./data",
		SCRAMIterations: scram.DefaultIterations,
		SCRAMHashes:     []string{"SHA-1", "SHA-256", "SHA-512"},
		Listen: listenConfig{
			C2S:       []string{":5222"},
			DirectTLS: []string{":5223"},
			HTTPS:     []string{":5281"},
			HTTP:      []string{},
		},
		S2S: defaultS2S(),
		HTTP: httpConfig{
			ReadHeaderTimeout:     duration(10 * time.Second),
			RequestTimeout:        duration(time.Hour),
			IdleTimeout:           duration(120 * time.Second),
			MaxConcurrentRequests: 256,
			WebSocket:             true,
			WebSocketOrigins:      []string{},
		},
		TLS: tlsConfig{ACME: acmeConfig{
			DirectoryURL: "https://acme-v02.api.letsencrypt.org/directory",
			Listen:       ":443",
		}},
		Log:     logConfig{Level: "info", Format: "text"},
		Storage: storageConfig{Backend: backendBbolt},
		Metrics: metricsConfig{Listen: []string{}},
		Limits: limitsConfig{
			MaxStanzaSize:  256 << 10,
			MaxPreAuthSize: 10 << 10,
			MaxDepth:       32,
			PreAuthTimeout: duration(60 * time.Second),
			PingAfter:      duration(4 * time.Minute),
			PingTimeout:    duration(time.Minute),
			WriteTimeout:   duration(30 * time.Second),
			ResumeTimeout:  duration(5 * time.Minute),
			QueueSize:      4096,
			AuthAttempts:   10,
			ReadRate:       10 << 10,
			ReadRateAuth:   256 << 10,
		},
		Accounts: accountsConfig{RemoveUnusedAfter: duration(365 * 24 * time.Hour)},
		Registration: regConfig{
			Policy: string(register.DefaultPolicy), Reserved: append([]string{}, register.DefaultReserved...),
			AllowRemove: true, UserInvites: true, InviteValidity: duration(invite.DefaultValidity),
		},
		Filter: filterConfig{
			Allow:    []string{},
			ConnRate: ipfilter.DefaultConnRate, ConnWindow: duration(ipfilter.DefaultConnWindow),
			MaxUnauthenticated: ipfilter.DefaultMaxUnauthenticated,
			AuthFailures:       ipfilter.DefaultAuthFailures, AuthWindow: duration(ipfilter.DefaultAuthWindow), BanFor: duration(ipfilter.DefaultBanFor),
			RegistrationRate: ipfilter.DefaultRegistrationRate, RegistrationWindow: duration(ipfilter.DefaultRegistrationWindow),
		},
		Modules: modulesConfig{
			Roster: true, MaxRoster: 1000, VCard: true, Private: true, Blocking: true, Ping: true, Time: true, Version: true,
			Offline: true, OfflineLimit: 1000, OfflineRetention: duration(30 * 24 * time.Hour),
			Archive: true, ArchiveDefault: mam.Always, ArchiveRetention: duration(30 * 24 * time.Hour),
			Carbons: true,
			PEP:     true, PEPMaxItemSize: pep.DefaultMaxItemSize, PEPMaxItems: pep.DefaultMaxItems,
			PEPMaxNodes: pep.DefaultMaxNodes, PEPMaxBytes: pep.DefaultMaxBytes,
			Upload: true, UploadMaxFileSize: upload.DefaultMaxFileSize, UploadQuota: upload.DefaultQuota,
			UploadDailyQuota: upload.DefaultDailyQuota, UploadRetention: duration(upload.DefaultRetention),
		},
		MUC:        defaultMUC(),
		Components: defaultComponents(),

		// See mobile.go.
		Push: defaultPush(), ExternalServices: defaultExtServices(), Proxy65: defaultProxy65(),
	}
}

// configError is an error in the configuration file, at a line if known.
type configError struct {
	File string
	Line int // 0 if unknown
	Msg  string

	// at are the keys whose line the error is at, the first found in
	// the file; without, the key the message starts with. entry, if at
	// is in [[tls.certificates]], is the entry's index plus one.
	at    []toml.Key
	entry int
}

func (e *configError) Error() string {
	name := e.File
	if name == "" {
		name = "(built-in defaults)"
	}
	if e.Line > 0 {
		return fmt.Sprintf("config %s:%d: %s", name, e.Line, e.Msg)
	}
	return fmt.Sprintf("config %s: %s", name, e.Msg)
}

// loadConfig reads the configuration. With path "" it reads ./kiezd.toml
// if that exists and otherwise uses the built-in defaults; an explicit path
// must exist. Relative paths inside the file are taken relative to the
// file's directory.
func loadConfig(path string) (*config, error) {
	explicit := path != ""
	if !explicit {
		path = defaultConfigFile
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		cfg := defaultConfig()
		return cfg, cfg.validate()
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &configError{File: path, Msg: err.Error()}
	}
	return parseConfig(path, data)
}

// parseConfig decodes data, read from file, over the defaults, rejects
// unknown keys and validates the result. It reports every mistake it
// finds, each at its key's line (configErrors).
func parseConfig(file string, data []byte) (*config, error) {
	cfg := defaultConfig()
	cfg.file = file
	errs, err := decodeConfig(file, data, cfg)
	if err != nil {
		return nil, err // a syntax error: nothing after it was read
	}
	dir := filepath.Dir(file)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	cfg.DataDir = rel(cfg.DataDir)
	for i := range cfg.TLS.Certificates {
		cfg.TLS.Certificates[i].Cert = rel(cfg.TLS.Certificates[i].Cert)
		cfg.TLS.Certificates[i].Key = rel(cfg.TLS.Certificates[i].Key)
	}
	cfg.TLS.ACME.CacheDir = rel(cfg.TLS.ACME.CacheDir)
	cfg.ExternalServices.TURNSecretFile = rel(cfg.ExternalServices.TURNSecretFile)
	cfg.Storage.PasswordFile = rel(cfg.Storage.PasswordFile)
	for i := range cfg.Components.Component {
		cfg.Components.Component[i].SecretFile = rel(cfg.Components.Component[i].SecretFile)
	}
	// The keys that did not decode kept their defaults: validating the
	// rest finds the other mistakes. Those of the failed keys' lines
	// would only repeat them.
	failed := make(map[int]bool)
	for _, e := range errs {
		failed[e.Line] = true
	}
	if err := cfg.validate(); err != nil {
		var all configErrors
		var ce *configError
		if !errors.As(err, &all) && errors.As(err, &ce) {
			all = configErrors{ce}
		}
		for _, ce := range all {
			if ce.Line == 0 {
				ce.Line = ce.line(data)
			}
			if ce.Line == 0 || !failed[ce.Line] {
				errs = append(errs, ce)
			}
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// line finds the error's line in data: that of the first of its keys
// in the file, or of the key its message starts with.
func (e *configError) line(data []byte) int {
	for _, k := range e.at {
		var n int
		if e.entry > 0 && len(k) >= 2 {
			n = entryLine(data, k[:2], e.entry-1, k[2:])
		} else {
			n = keyLine(data, k)
		}
		if n > 0 {
			return n
		}
	}
	return keyLine(data, e.key())
}

// key returns the dotted key a validation message starts with, to find
// its line.
func (e *configError) key() toml.Key {
	k, _, ok := strings.Cut(e.Msg, ":")
	if !ok || strings.ContainsAny(k, " \"") {
		return nil
	}
	return toml.Key(strings.Split(k, "."))
}

// tomlLine matches the line number in the toml package's plain type errors,
// "toml: line 3 (last key "x"): ...".
var tomlLine = regexp.MustCompile(`^toml: line (\d+)(?: \(last key "[^"]*"\))?: `)

// tomlError turns a toml package error into a configError with the line.
func tomlError(file string, data []byte, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			msg = pe.LastKey + ": " + msg
		}
		line := pe.Position.Line
		if p := pe.Position; p.Len > 0 && p.Start >= 0 && p.Start < len(data) {
			// The lexer counts an error at a newline as on the next
			// line; the offset is exact.
			line = bytes.Count(data[:p.Start], []byte("\n")) + 1
		}
		return &configError{File: file, Line: line, Msg: msg}
	}
	msg := err.Error()
	if m := tomlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		rest := msg[len(m[0]):]
		if i := strings.Index(m[0], `"`); i >= 0 {
			k := strings.TrimSuffix(m[0][i+1:], `"): `)
			rest = k + ": " + rest
		}
		return &configError{File: file, Line: line, Msg: rest}
	}
	return &configError{File: file, Msg: strings.TrimPrefix(msg, "toml: ")}
}

// validate checks what decoding cannot: that the domains are valid and
// distinct, that there is something to listen on, and that the TLS
// settings agree. It returns every mistake it finds (configErrors).
func (c *config) validate() error {
	var errs configErrors
	// bad reports a mistake at the key its message starts with; badAt at
	// the first of keys found in the file.
	badAt := func(keys []string, format string, args ...any) {
		e := &configError{File: c.file, Msg: fmt.Sprintf(format, args...)}
		for _, k := range keys {
			e.at = append(e.at, toml.Key(strings.Split(k, ".")))
		}
		errs = append(errs, e)
	}
	bad := func(format string, args ...any) { badAt(nil, format, args...) }
	if len(c.Domains) == 0 {
		bad("domains: at least one domain is required")
	}
	if _, err := c.filterOptions(); err != nil {
		bad("%v", err)
	}
	seen := make(map[string]bool)
	for i, d := range c.Domains {
		norm, err := checkDomain(d)
		if err != nil {
			bad("domains: %v", err)
			continue
		}
		if seen[norm] {
			bad("domains: %q is listed twice", d)
		}
		seen[norm] = true
		c.Domains[i] = norm
	}
	if c.DataDir == "" {
		bad("data_dir: must not be empty")
	}
	if c.SCRAMIterations < scram.MinIterations {
		bad("scram_iterations: %d is too few; the minimum is %d", c.SCRAMIterations, scram.MinIterations)
	}
	if c.SCRAMIterations > maxIterations {
		bad("scram_iterations: %d is more than clients accept (%d)", c.SCRAMIterations, maxIterations)
	}
	if len(c.SCRAMHashes) == 0 {
		bad(`scram_hashes: at least one of "SHA-1", "SHA-256" and "SHA-512"`)
	}
	seenHash := make(map[string]bool)
	for _, h := range c.SCRAMHashes {
		switch {
		case h != "SHA-1" && h != "SHA-256" && h != "SHA-512":
			bad(`scram_hashes: %q is not one of "SHA-1", "SHA-256" and "SHA-512"`, h)
		case seenHash[h]:
			bad("scram_hashes: %q is listed twice", h)
		}
		seenHash[h] = true
	}
	if len(c.Listen.C2S)+len(c.Listen.DirectTLS) == 0 {
		badAt([]string{"listen.c2s", "listen.direct_tls"}, "listen: no c2s or direct_tls address: clients could not connect")
	}
	addrsOK := true
	for _, l := range []struct {
		key   string
		addrs []string
	}{{"listen.c2s", c.Listen.C2S}, {"listen.direct_tls", c.Listen.DirectTLS}, {"listen.https", c.Listen.HTTPS}, {"listen.http", c.Listen.HTTP}, {"metrics.listen", c.Metrics.Listen}} {
		for _, a := range l.addrs {
			if err := checkAddr(a); err != nil {
				bad("%s: %v", l.key, err)
				addrsOK = false
			}
		}
	}
	if err := c.checkHTTP(); err != nil {
		bad("%s", err)
	}
	c.s2sErrors(bad, func(k toml.Key, format string, args ...any) {
		bad(format, args...)
		errs[len(errs)-1].at = []toml.Key{k}
	})
	for i, cc := range c.TLS.Certificates {
		if cc.Cert == "" || cc.Key == "" {
			bad("tls.certificates: each entry needs both cert and key")
			errs[len(errs)-1].at, errs[len(errs)-1].entry = []toml.Key{{"tls", "certificates"}}, i+1
		}
	}
	if a := c.TLS.ACME; a.Enabled {
		if len(c.TLS.Certificates) > 0 {
			badAt([]string{"tls.acme.enabled"}, "tls.acme: enabled together with tls.certificates; use one or the other")
		}
		for _, d := range c.Domains {
			if !strings.Contains(d, ".") || net.ParseIP(d) != nil {
				badAt([]string{"domains", "tls.acme.enabled"}, "tls.acme: %q cannot get a certificate from a public CA; ACME needs public DNS names", d)
			}
		}
		if a.Listen == "" && a.HTTPListen == "" {
			badAt([]string{"tls.acme.listen", "tls.acme.http_listen", "tls.acme.enabled"}, "tls.acme: listen and http_listen are both empty: the CA could not verify the domains")
		}
		for _, l := range []struct{ key, addr string }{{"tls.acme.listen", a.Listen}, {"tls.acme.http_listen", a.HTTPListen}} {
			if l.addr == "" {
				continue
			}
			if err := checkAddr(l.addr); err != nil {
				badAt([]string{l.key, "tls.acme"}, "tls.acme: %v", err)
				addrsOK = false
			}
		}
		if a.DirectoryURL == "" {
			bad("tls.acme.directory_url: must not be empty")
		}
	}
	if addrsOK {
		if err := c.checkDuplicateAddrs(); err != nil {
			bad("%s", err)
		}
	}
	if after := time.Duration(c.Accounts.RemoveUnusedAfter); after < minUnusedAfter {
		bad("accounts.remove_unused_after: %q is shorter than %s", formatDuration(after), formatDuration(minUnusedAfter))
	}
	c.storageErrors(badAt)
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level: %v", err)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format: %q is neither \"text\" nor \"json\"", c.Log.Format)
	}
	c.componentErrors(bad, func(entry int, key, format string, args ...any) {
		badAt(nil, format, args...)
		for _, k := range componentKey(key) {
			errs[len(errs)-1].at = append(errs[len(errs)-1].at, k)
		}
		errs[len(errs)-1].entry = entry
	})
	// Build the modules once on a throw-away store to validate their
	// options.
	if _, err := c.modules(memory.New(), nil, nil, nil); err != nil {
		var ces configErrors
		var ce *configError
		switch {
		case errors.As(err, &ces):
			errs = append(errs, ces...)
		case errors.As(err, &ce):
			errs = append(errs, ce)
		default:
			bad("modules: %v", err)
		}
	}
	return errs.err()
}

// checkDomain validates a domain as an XMPP domainpart and returns it
// normalised.
func checkDomain(d string) (string, error) {
	j, err := jid.Parse(d)
	if err != nil || d == "" || j.Localpart() != "" || j.Resourcepart() != "" || strings.ContainsAny(d, "@/ ") {
		return "", fmt.Errorf("%q is not a valid domain", d)
	}
	return j.Domainpart(), nil
}

// checkAddr validates a listen address such as ":5222" or "[::1]:5222".
func checkAddr(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not an address such as \":5222\" or \"127.0.0.1:5222\"", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has an invalid port", a)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
}

// limits converts the [limits] table to server.Limits.
func (c *config) limits() server.Limits {
	l := c.Limits
	return server.Limits{
		MaxStanzaSize:         int(l.MaxStanzaSize),
		MaxPreAuthSize:        int(l.MaxPreAuthSize),
		MaxDepth:              int(l.MaxDepth),
		PreAuthTimeout:        time.Duration(l.PreAuthTimeout),
		PingAfter:             time.Duration(l.PingAfter),
		PingTimeout:           time.Duration(l.PingTimeout),
		WriteTimeout:          time.Duration(l.WriteTimeout),
		ResumeTimeout:         time.Duration(l.ResumeTimeout),
		QueueSize:             int(l.QueueSize),
		AuthAttempts:          int(l.AuthAttempts),
		ReadRate:              int(l.ReadRate),
		ReadRateAuthenticated: int(l.ReadRateAuth),
	}
}

// moduleStore is the storage kiezd's modules keep their data in: the
// bbolt database when serving, any store when only validating.
type moduleStore = stock.Store

// modules builds the stock modules (package stock) that the [modules]
// table switches on, with its options. Without files (when only
// validating) the upload module's options are checked but it is left
// out; so are registration and invitations without accounts (the server,
// once built) or a rate limit.
func (c *config) modules(store moduleStore, files blob.Store, accounts func() register.Accounts, rateLimit func(netip.Addr) bool) ([]server.Module, error) {
	m := c.Modules
	var errs configErrors
	bad := func(format string, args ...any) {
		errs = append(errs, &configError{File: c.file, Msg: fmt.Sprintf(format, args...)})
	}
	if m.ArchiveDefault != mam.Always && m.ArchiveDefault != mam.Roster && m.ArchiveDefault != mam.Never {
		bad("modules.archive_default: %q is not always, roster or never", m.ArchiveDefault)
	}
	if time.Duration(m.ArchiveRetention) > mam.MaxRetention {
		bad("modules.archive_retention: %q is longer than 10 years", time.Duration(m.ArchiveRetention))
	}
	if time.Duration(m.OfflineRetention) > offline.MaxRetention {
		bad("modules.offline_retention: %q is longer than 10 years", time.Duration(m.OfflineRetention))
	}
	if int(m.OfflineLimit) > offline.MaxLimit {
		bad("modules.offline_limit: %d is more than %d", m.OfflineLimit, offline.MaxLimit)
	}
	if c.Registration.Policy != string(register.PolicyClosed) && c.Registration.Policy != string(register.PolicyInvite) && c.Registration.Policy != string(register.PolicyOpen) {
		bad("registration.policy: %q is not \"closed\", \"invite\" or \"open\"", c.Registration.Policy)
	}
	if time.Duration(c.Registration.RemovalGrace) > maxRemovalGrace {
		bad("registration.removal_grace: %q is longer than 90 days", formatDuration(time.Duration(c.Registration.RemovalGrace)))
	}
	if time.Duration(c.Registration.InviteValidity) > invite.MaxValidity {
		bad("registration.invite_validity: %q is longer than 90 days", time.Duration(c.Registration.InviteValidity))
	}
	if time.Duration(m.UploadRetention) > upload.MaxRetention {
		bad("modules.upload_retention: %q is longer than 10 years", time.Duration(m.UploadRetention))
	}
	switch {
	case m.UploadDailyQuota > m.UploadQuota:
		bad("modules.upload_daily_quota: %d bytes are more than modules.upload_quota (%d bytes)", m.UploadDailyQuota, m.UploadQuota)
	case m.UploadMaxFileSize > m.UploadDailyQuota:
		bad("modules.upload_max_file_size: %d bytes are more than modules.upload_daily_quota (%d bytes): no file that large could be uploaded", m.UploadMaxFileSize, m.UploadDailyQuota)
	}
	if int(m.PEPMaxItemSize) > int(c.Limits.MaxStanzaSize) {
		bad("modules.pep_max_item_size: %d bytes do not fit in a stanza of limits.max_stanza_size (%d bytes)", m.PEPMaxItemSize, c.Limits.MaxStanzaSize)
	}
	// Each kind of contact address on its own, so that each error is at
	// its line.
	for kind, addrs := range m.Contact {
		if _, err := contact.New(contact.Options{Addresses: map[string][]string{kind: addrs}}, contact.Deps{}); err != nil {
			bad("modules.contact.%s: %s", kind, strings.TrimPrefix(err.Error(), "contact: "))
		}
	}
	mucOpts := c.mucOptions(bad)
	pushOpts, extOpts, proxyOpts := c.pushOptions(bad), c.extServicesOptions(bad), c.proxy65Options(bad)
	if err := errs.err(); err != nil {
		return nil, err
	}
	var without []string
	for name, on := range map[string]bool{
		stock.Roster: m.Roster, stock.Blocking: m.Blocking, stock.VCard: m.VCard, stock.Private: m.Private,
		stock.Offline: m.Offline, stock.Archive: m.Archive, stock.Carbons: m.Carbons,
		stock.PEP: m.PEP, stock.Caps: m.PEP, stock.Upload: m.Upload,
		stock.Ping: m.Ping, stock.Time: m.Time, stock.Version: m.Version,
		stock.MUC: c.MUC.Enabled,

		stock.Push: c.Push.Enabled, // see mobile.go
	} {
		if !on {
			without = append(without, name)
		}
	}
	mods, err := stock.Modules(store, stock.Options{
		Without: without,
		Roster:  roster.Options{MaxItems: int(m.MaxRoster)},
		Offline: offline.Options{Limit: int(m.OfflineLimit), Retention: time.Duration(m.OfflineRetention)},
		Archive: mam.Options{Default: m.ArchiveDefault, Retention: time.Duration(m.ArchiveRetention)},
		Version: version.Options{ShowOS: m.VersionShowOS, Version: readBuildInfo().String()},
		Contact: contact.Options{Addresses: m.Contact},
		PEP: pep.Options{MaxItemSize: int(m.PEPMaxItemSize), MaxItems: int(m.PEPMaxItems),
			MaxNodes: int(m.PEPMaxNodes), MaxBytes: int64(m.PEPMaxBytes)},
		Upload: upload.Options{MaxFileSize: int64(m.UploadMaxFileSize), Quota: int64(m.UploadQuota),
			DailyQuota: int64(m.UploadDailyQuota), Retention: time.Duration(m.UploadRetention)},
		Files: files,
		Register: register.Options{Policy: register.Policy(c.Registration.Policy), Reserved: c.Registration.Reserved,
			MinPassword: minPasswordLength, AllowRemove: &c.Registration.AllowRemove},
		Invite:    invite.Options{Validity: time.Duration(c.Registration.InviteValidity), AllowUsers: &c.Registration.UserInvites},
		Accounts:  accounts,
		RateLimit: rateLimit,
		MUC:       mucOpts,

		Push: pushOpts, ExternalServices: extOpts, Proxy65: proxyOpts, // see mobile.go
	})
	if err != nil {
		return nil, &configError{File: c.file, Msg: fmt.Sprintf("modules: %s", err)}
	}
	return mods, nil
}

// dbPath is the bbolt database file.
func (c *config) dbPath() string { return filepath.Join(c.DataDir, "kiez.db") }

// uploadsPath is the directory of uploaded files.
func (c *config) uploadsPath() string { return filepath.Join(c.DataDir, "uploads") }

// openFiles opens the store of uploaded files.
func (c *config) openFiles() (*blob.Dir, error) {
	d, err := blob.NewDir(c.uploadsPath())
	if err != nil {
		return nil, fmt.Errorf("cannot open the upload directory %s: %v", displayPath(c.uploadsPath()), unwrapAll(err))
	}
	return d, nil
}

// duration is a positive duration written as a string, "60s", "4m", or
// a whole number of days, "30d".
type duration time.Duration

func (d *duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("durations are strings such as \"60s\", \"4m\" or \"30d\", not %v", v)
	}
	p, err := time.ParseDuration(s)
	if days, found := strings.CutSuffix(s, "d"); found {
		var n int
		n, err = strconv.Atoi(days)
		if err == nil && (n < 0 || n > 100*365) {
			err = errors.New("out of range")
		}
		p = time.Duration(n) * 24 * time.Hour
	}
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"60s\", \"4m\" or \"30d\"", s)
	}
	if p <= 0 {
		return fmt.Errorf("%q: the duration must be positive", s)
	}
	*d = duration(p)
	return nil
}

// maxRemovalGrace bounds registration.removal_grace: data kept for a
// removed account is kept against its owner's wish.
const maxRemovalGrace = 90 * 24 * time.Hour

// offDuration is a duration that may also be "0" (off).
type offDuration time.Duration

func (d *offDuration) UnmarshalTOML(v any) error {
	if s, ok := v.(string); ok && (s == "0" || s == "0d" || s == "0s") {
		*d = 0
		return nil
	}
	var p duration
	if err := p.UnmarshalTOML(v); err != nil {
		return fmt.Errorf("%w, or \"0\" for none", err)
	}
	*d = offDuration(p)
	return nil
}

// byteSize is a positive size in bytes: an integer, or a string with a
// unit, "256KiB" or "1MiB".
type byteSize int

func (b *byteSize) UnmarshalTOML(v any) error {
	n, err := parseSize(v, 1<<30, "1GiB")
	*b = byteSize(n)
	return err
}

// diskSize is a byteSize for what is kept on disk (uploads), up to 1TiB.
type diskSize int64

func (d *diskSize) UnmarshalTOML(v any) error {
	n, err := parseSize(v, 1<<40, "1TiB")
	*d = diskSize(n)
	return err
}

// parseSize reads a size: an integer (bytes) or a string with a unit,
// positive and at most max (named maxText).
func parseSize(v any, max int64, maxText string) (int64, error) {
	var n int64
	switch v := v.(type) {
	case int64:
		n = v
	case string:
		mult := int64(1)
		s := strings.TrimSpace(v)
		for _, u := range []struct {
			suffix string
			mult   int64
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
			if strings.HasSuffix(s, u.suffix) {
				s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
				break
			}
		}
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil || x > max/mult {
			return 0, fmt.Errorf("%q is not a size such as 10240, \"10KiB\", \"1MiB\" or \"1GiB\" of at most %s", v, maxText)
		}
		n = x * mult
	default:
		return 0, fmt.Errorf("sizes are integers (bytes) or strings such as \"10KiB\", not %v", v)
	}
	if n <= 0 || n > max {
		return 0, fmt.Errorf("%v: the size must be positive and at most %s", v, maxText)
	}
	return n, nil
}

// count is a positive integer.
type count int

func (c *count) UnmarshalTOML(v any) error {
	n, ok := v.(int64)
	if !ok {
		return fmt.Errorf("expected a positive integer, not %v", v)
	}
	if n <= 0 || n > 1<<30 {
		return fmt.Errorf("%d: must be a positive integer", n)
	}
	*c = count(n)
	return nil
}

// keyLine finds the line of key k in a TOML document, for errors about
// keys the toml package reports without a position. It follows table
// headers and dotted keys; for keys inside inline tables it falls back to
// the first line assigning the key's last part. It returns 0 if not found.
func keyLine(data []byte, k toml.Key) int {
	if len(k) == 0 {
		return 0
	}
	var table []string
	fallback := 0
	for i, line := range strings.Split(string(data), "\n") {
		s := strings.TrimSpace(stripComment(line))
		if s == "" {
			continue
		}
		if strings.HasPrefix(s, "[") {
			h := strings.Trim(s, "[]")
			table = splitKey(h)
			if keyHasPrefix(table, k) {
				return i + 1
			}
			continue
		}
		lhs, _, ok := strings.Cut(s, "=")
		if !ok {
			continue
		}
		parts := splitKey(lhs)
		full := append(append([]string(nil), table...), parts...)
		if keyHasPrefix(full, k) {
			return i + 1
		}
		if fallback == 0 {
			last := k[len(k)-1]
			for _, seg := range strings.Split(s, "{") {
				for _, kv := range strings.Split(seg, ",") {
					lhs, _, ok := strings.Cut(kv, "=")
					if ok && len(splitKey(lhs)) > 0 && splitKey(lhs)[len(splitKey(lhs))-1] == last {
						fallback = i + 1
					}
				}
			}
		}
	}
	return fallback
}

// keyHasPrefix reports whether full starts with k (a key found at a line
// that defines k or something below it).
func keyHasPrefix(full []string, k toml.Key) bool {
	if len(full) < len(k) {
		return false
	}
	for i := range k {
		if full[i] != k[i] {
			return false
		}
	}
	return true
}

// splitKey splits a dotted TOML key, removing quotes and spaces.
func splitKey(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ".") {
		p = strings.TrimSpace(p)
		p = strings.Trim(p, `"'`)
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// stripComment removes a trailing # comment outside quotes.
func stripComment(line string) string {
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && (r == '"' || r == '\''):
			quote = r
		case quote == 0 && r == '#':
			return line[:i]
		}
	}
	return line
}

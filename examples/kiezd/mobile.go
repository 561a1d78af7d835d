package main

import (
	"net"
	"os"
	"strings"
	"time"

	"github.com/kiez-im/kiez/modules/extdisco"
	"github.com/kiez-im/kiez/modules/proxy65"
	"github.com/kiez-im/kiez/modules/push"
)

// pushConfig is the [push] table: XEP-0357 push notifications
// (modules/push).
type pushConfig struct {
	Enabled          bool     `toml:"enabled"`
	IncludeSender    bool     `toml:"include_sender"`
	IncludeBody      bool     `toml:"include_body"`
	MinInterval      duration `toml:"min_interval"`
	MaxRegistrations count    `toml:"max_registrations"`
}

// extServicesConfig is the [external_services] table: STUN and TURN
// servers for calls (XEP-0215, modules/extdisco).
type extServicesConfig struct {
	TURNSecret     string          `toml:"turn_secret"`
	TURNSecretFile string          `toml:"turn_secret_file"`
	CredentialTTL  duration        `toml:"credential_ttl"`
	Servers        []extServerConf `toml:"server"`
}

// extServerConf is one [[external_services.server]].
type extServerConf struct {
	Type      string `toml:"type"`
	Host      string `toml:"host"`
	Port      int    `toml:"port"`
	Transport string `toml:"transport"`
	Name      string `toml:"name"`
}

// proxy65Config is the [proxy65] table: the SOCKS5 file transfer proxy
// (XEP-0065, modules/proxy65) at proxy.<domain>, off until listen is set.
type proxy65Config struct {
	Listen     string   `toml:"listen"`
	PublicHost string   `toml:"public_host"`
	PublicPort int      `toml:"public_port"`
	MaxStreams count    `toml:"max_streams"`
	Rate       byteSize `toml:"rate"`
}

func defaultPush() pushConfig {
	return pushConfig{Enabled: true, MinInterval: duration(push.DefaultMinInterval), MaxRegistrations: push.DefaultMaxRegistrations}
}

func defaultExtServices() extServicesConfig {
	return extServicesConfig{CredentialTTL: duration(extdisco.DefaultTTL), Servers: []extServerConf{}}
}

func defaultProxy65() proxy65Config {
	return proxy65Config{MaxStreams: proxy65.DefaultMaxStreams, Rate: proxy65.DefaultRate}
}

// pushOptions converts the [push] table.
func (c *config) pushOptions(bad func(format string, args ...any)) push.Options {
	p := c.Push
	if int(p.MaxRegistrations) > push.MaxMaxRegistrations {
		bad("push.max_registrations: %d is more than %d", p.MaxRegistrations, push.MaxMaxRegistrations)
	}
	return push.Options{IncludeSender: p.IncludeSender, IncludeBody: p.IncludeBody,
		MinInterval: time.Duration(p.MinInterval), MaxRegistrations: int(p.MaxRegistrations)}
}

// extServicesOptions converts the [external_services] table, reading
// the TURN secret's file.
func (c *config) extServicesOptions(bad func(format string, args ...any)) extdisco.Options {
	e := c.ExternalServices
	opts := extdisco.Options{Secret: e.TURNSecret, TTL: time.Duration(e.CredentialTTL)}
	switch {
	case e.TURNSecret != "" && e.TURNSecretFile != "":
		bad("external_services.turn_secret_file: set turn_secret or turn_secret_file, not both")
	case e.TURNSecretFile != "":
		b, err := os.ReadFile(e.TURNSecretFile)
		if err != nil {
			bad("external_services.turn_secret_file: %v", unwrapAll(err))
			break
		}
		if opts.Secret = strings.TrimSpace(string(b)); opts.Secret == "" {
			bad("external_services.turn_secret_file: %s is empty", displayPath(e.TURNSecretFile))
		}
	}
	if ttl := time.Duration(e.CredentialTTL); ttl < time.Minute || ttl > extdisco.MaxTTL {
		bad("external_services.credential_ttl: %q is not between a minute and 30 days", formatDuration(ttl))
	}
	for i, s := range e.Servers {
		svc := extdisco.Service{Type: s.Type, Host: s.Host, Port: s.Port, Transport: s.Transport, Name: s.Name}
		if _, err := extdisco.New(extdisco.Options{Services: []extdisco.Service{svc}}, extdisco.Deps{}); err != nil {
			msg := strings.TrimPrefix(err.Error(), "extdisco: service 1: ")
			bad("external_services.server: entry %d: %s", i+1, msg)
			continue
		}
		opts.Services = append(opts.Services, svc)
	}
	return opts
}

// proxy65Options converts the [proxy65] table.
func (c *config) proxy65Options(bad func(format string, args ...any)) proxy65.Options {
	p := c.Proxy65
	if p.Listen != "" {
		if _, _, err := net.SplitHostPort(p.Listen); err != nil {
			bad("proxy65.listen: %q is not an address such as \":5000\"", p.Listen)
		}
	}
	if p.PublicPort < 0 || p.PublicPort > 65535 {
		bad("proxy65.public_port: %d is not a port", p.PublicPort)
	}
	return proxy65.Options{Listen: p.Listen, PublicHost: p.PublicHost, PublicPort: p.PublicPort,
		MaxStreams: int(p.MaxStreams), Rate: int64(p.Rate)}
}

package main

// Federation: server-to-server streams, so that users reach accounts on
// every other XMPP server. The protocol is the library's
// (server.S2SConfig, server.ServeS2S); kiezd reads the [s2s] table and
// opens its listeners.

import (
	"net"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/kiez-im/kiez/server"
)

// s2sConfig is the [s2s] table.
type s2sConfig struct {
	// Listen are the addresses other servers connect to (STARTTLS,
	// usually port 5269); empty turns incoming federation off, while
	// users still reach other servers.
	Listen []string `toml:"listen"`
	// Allow, if not empty, lists the only domains federated with; Deny
	// lists domains never federated with.
	Allow []string `toml:"allow"`
	Deny  []string `toml:"deny"`
	// Dialback accepts (and uses) Server Dialback, over TLS, with
	// servers whose certificate is not valid for their domain.
	Dialback bool `toml:"dialback"`
	// Bidi offers and asks for bidirectional streams (XEP-0288): one
	// TCP connection per pair of servers instead of two.
	Bidi bool `toml:"bidi"`
	// Hosts maps a domain to the "host:port" dialled for it instead of
	// what DNS says.
	Hosts map[string]string `toml:"hosts"`
}

// defaultS2S returns the [s2s] table's defaults: federation on, on the
// standard port, with dialback as the fallback, bidirectional streams.
func defaultS2S() s2sConfig {
	return s2sConfig{Listen: []string{":5269"}, Allow: []string{}, Deny: []string{}, Dialback: true, Bidi: true, Hosts: map[string]string{}}
}

// s2sErrors checks the [s2s] table; bad reports a mistake at the key
// its message starts with, badKey at the key k (an entry of [s2s.hosts],
// whose domain has dots).
func (c *config) s2sErrors(bad func(format string, args ...any), badKey func(k toml.Key, format string, args ...any)) {
	for _, a := range c.S2S.Listen {
		if err := checkAddr(a); err != nil {
			bad("s2s.listen: %v", err)
		}
	}
	for _, l := range []struct {
		key     string
		domains []string
	}{{"s2s.allow", c.S2S.Allow}, {"s2s.deny", c.S2S.Deny}} {
		for _, d := range l.domains {
			if _, err := checkDomain(d); err != nil {
				bad("%s: %v", l.key, err)
			}
		}
	}
	domains := make([]string, 0, len(c.S2S.Hosts))
	for d := range c.S2S.Hosts {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	for _, d := range domains {
		// keyLine splits quoted keys at their dots too.
		k := append(toml.Key{"s2s", "hosts"}, strings.Split(d, ".")...)
		if _, err := checkDomain(d); err != nil {
			badKey(k, "s2s.hosts: %v", err)
			continue
		}
		if _, _, err := net.SplitHostPort(c.S2S.Hosts[d]); err != nil {
			badKey(k, "s2s.hosts: %q for %s is not a \"host:port\" such as \"xmpp.example.org:5269\"", c.S2S.Hosts[d], d)
		}
	}
}

// s2sOptions returns server.Config.S2S.
func (c *config) s2sOptions() *server.S2SConfig {
	lower := func(list []string) []string {
		out := make([]string, len(list))
		for i, d := range list {
			out[i] = strings.ToLower(d)
		}
		return out
	}
	hosts := make(map[string]string, len(c.S2S.Hosts))
	for d, hp := range c.S2S.Hosts {
		hosts[strings.ToLower(d)] = hp
	}
	return &server.S2SConfig{
		Hosts:      hosts,
		Allow:      lower(c.S2S.Allow),
		Deny:       lower(c.S2S.Deny),
		NoDialback: !c.S2S.Dialback,
		NoBidi:     !c.S2S.Bidi,
	}
}

package main

// External components (XEP-0114): gateways and bots (Slidge, Biboumi,
// bridges) that run as their own processes and attach to kiezd as
// name.<domain>. The protocol is the library's (server.ServeComponents);
// kiezd reads the [components] table, the secrets from the file, a file
// of their own or the environment, and opens the listener when at least
// one component is configured.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"slices"

	"github.com/BurntSushi/toml"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// componentsConfig is the [components] table.
type componentsConfig struct {
	// Listen are the addresses components connect to, opened only when
	// Component lists one; loopback by default, as the protocol has no
	// TLS.
	Listen []string `toml:"listen"`
	// Component are the components allowed to attach, each a
	// [[components.component]] table.
	Component []componentConfig `toml:"component"`
}

// componentConfig is one [[components.component]]: its domain, a name
// for disco#items, and its secret, given in exactly one of three ways.
type componentConfig struct {
	Domain     string `toml:"domain"`
	Name       string `toml:"name"`
	Secret     string `toml:"secret"`
	SecretFile string `toml:"secret_file"`
	SecretEnv  string `toml:"secret_env"`
}

// defaultComponents returns the [components] table's defaults: the
// conventional port on loopback, and no components (so no listener).
func defaultComponents() componentsConfig {
	return componentsConfig{Listen: []string{"127.0.0.1:5347"}, Component: []componentConfig{}}
}

// componentsOn reports whether kiezd listens for components: only with
// at least one configured.
func (c *config) componentsOn() bool { return len(c.Components.Component) > 0 }

// secret returns the component's secret from where the table says it is.
// Errors never show the secret.
func (cc componentConfig) secret() (string, error) {
	switch {
	case cc.SecretFile != "":
		b, err := os.ReadFile(cc.SecretFile)
		if err != nil {
			return "", fmt.Errorf("cannot read secret_file %s: %v", displayPath(cc.SecretFile), unwrapAll(err))
		}
		s := string(bytes.TrimSpace(b))
		if s == "" {
			return "", fmt.Errorf("secret_file %s is empty", displayPath(cc.SecretFile))
		}
		return s, nil
	case cc.SecretEnv != "":
		s, ok := os.LookupEnv(cc.SecretEnv)
		if !ok || s == "" {
			return "", fmt.Errorf("secret_env: the environment variable %s is not set", cc.SecretEnv)
		}
		return s, nil
	}
	return cc.Secret, nil
}

// componentErrors checks the [components] table: addresses, one secret
// per component, and domains that are neither served domains nor a
// module's service (as server.New would refuse them). bad reports a
// mistake at the key its message starts with; badEntry at a key of the
// entry'th [[components.component]] (counted from 1).
func (c *config) componentErrors(bad func(format string, args ...any), badEntry func(entry int, key, format string, args ...any)) {
	for _, a := range c.Components.Listen {
		if err := checkAddr(a); err != nil {
			bad("components.listen: %v", err)
		}
	}
	if c.componentsOn() && len(c.Components.Listen) == 0 {
		bad("components.listen: empty, but components are configured: they could not connect")
	}
	// The services of the modules as configured, for clashes.
	services := make(map[string]string)
	if mods, err := c.modules(memory.New(), noFiles{}, nil, nil); err == nil {
		for _, m := range mods {
			if p, ok := m.(server.ServiceProvider); ok {
				for _, svc := range p.Services() {
					for _, d := range c.Domains {
						services[svc.Subdomain+"."+d] = m.Name()
					}
				}
			}
		}
	}
	seen := make(map[string]bool)
	for i, cc := range c.Components.Component {
		e := i + 1
		d, err := checkDomain(cc.Domain)
		switch {
		case cc.Domain == "":
			badEntry(e, "domain", "components.component.domain: missing: each component needs its domain, such as \"bridge.example.org\"")
		case err != nil:
			badEntry(e, "domain", "components.component.domain: %v", err)
		case slices.Contains(c.Domains, d):
			badEntry(e, "domain", "components.component.domain: %q is a served domain (domains)", cc.Domain)
		case services[d] != "":
			badEntry(e, "domain", "components.component.domain: %q is the address of the %s service", cc.Domain, services[d])
		case seen[d]:
			badEntry(e, "domain", "components.component.domain: %q is listed twice", cc.Domain)
		}
		seen[d] = true
		n := 0
		for _, s := range []string{cc.Secret, cc.SecretFile, cc.SecretEnv} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			badEntry(e, cc.secretKey(), "components.component: give the secret in exactly one of secret, secret_file and secret_env")
			continue
		}
		if _, err := cc.secret(); err != nil {
			badEntry(e, cc.secretKey(), "components.component.%v", err)
		}
	}
}

// componentWarnings point out a components address other machines can
// reach: the protocol has no TLS.
func (c *config) componentWarnings() []string {
	if !c.componentsOn() {
		return nil
	}
	var w []string
	for _, a := range c.Components.Listen {
		host, _, _ := net.SplitHostPort(a)
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			w = append(w, fmt.Sprintf("components.listen %q is reachable from other machines, and the component protocol has no encryption; unless the network is yours alone, use a loopback address such as \"127.0.0.1:5347\" (or a TLS tunnel)", a))
		}
	}
	return w
}

// components returns server.Config.Components, with the secrets read.
func (c *config) components() ([]server.Component, error) {
	var out []server.Component
	for _, cc := range c.Components.Component {
		s, err := cc.secret()
		if err != nil {
			return nil, fmt.Errorf("component %s: %w", cc.Domain, err)
		}
		out = append(out, server.Component{Domain: cc.Domain, Secret: s, Name: cc.Name})
	}
	return out, nil
}

// secretKey returns the key the component's secret is given with, for
// the line of an error about it ("secret" if none: the entry's line).
func (cc componentConfig) secretKey() string {
	switch {
	case cc.SecretFile != "":
		return "secret_file"
	case cc.SecretEnv != "":
		return "secret_env"
	}
	return "secret"
}

// componentKey is the key of a [[components.component]] entry's line.
func componentKey(key string) []toml.Key {
	return []toml.Key{{"components", "component", key}, {"components", "component"}}
}

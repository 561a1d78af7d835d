package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/secure/precis"
)

// config holds the flags every scenario shares. The defaults match
// examples/loadserver's: accounts u0 … uN-1 on bench.test, password
// benchpw, c2s on 127.0.0.1:35222.
type config struct {
	addr    string
	domain  string
	prefix  string
	offset  int
	pass    string
	mech    string
	label   string
	timeout time.Duration
	pid     int
	pidfile string
	maxTime time.Duration

	target target
}

func (c *config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:35222", "server c2s address (loopback only)")
	fs.StringVar(&c.domain, "domain", "bench.test", "XMPP domain")
	fs.StringVar(&c.prefix, "prefix", "u", "account name prefix: accounts are <prefix><index>")
	fs.IntVar(&c.offset, "offset", 0, "index of the first account used")
	fs.StringVar(&c.pass, "pass", "benchpw", "password of every account")
	fs.StringVar(&c.mech, "mech", "SCRAM-SHA-1", "SASL mechanism: SCRAM-SHA-1 (as ../shared/bench), SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&c.label, "label", "kiez", "server label copied into the result line")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "timeout of each network step")
	fs.IntVar(&c.pid, "pid", 0, "server process id, for its CPU time and memory")
	fs.StringVar(&c.pidfile, "pidfile", "", "file holding the server process id (instead of -pid)")
	fs.DurationVar(&c.maxTime, "maxtime", 0, "hard limit on the whole run (default: the scenario's)")
}

// check validates the flags, reads the pid file and prepares the target.
func (c *config) check() error {
	if err := checkLoopback(c.addr); err != nil {
		return err
	}
	if _, ok := scramHashes[c.mech]; !ok {
		return fmt.Errorf("-mech %q: want SCRAM-SHA-1, SCRAM-SHA-256 or SCRAM-SHA-512", c.mech)
	}
	pass, err := precis.OpaqueString.String(c.pass)
	if err != nil {
		return fmt.Errorf("-pass: %w", err)
	}
	if c.pid == 0 && c.pidfile != "" {
		b, err := os.ReadFile(c.pidfile)
		if err != nil {
			return err
		}
		if c.pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return fmt.Errorf("pid file %s: %w", c.pidfile, err)
		}
	}
	if c.pid < 0 {
		return errors.New("-pid must be positive")
	}
	if c.pid > 0 {
		if _, err := procCPU(c.pid); err != nil {
			return fmt.Errorf("server pid %d: %w", c.pid, err)
		}
	}
	c.pass = pass
	c.target = target{
		addr:    c.addr,
		domain:  c.domain,
		mech:    c.mech,
		timeout: c.timeout,
		tls:     &tls.Config{ServerName: c.domain, InsecureSkipVerify: true},
		salted:  new(saltedCache),
	}
	return nil
}

// checkLoopback refuses any address but a loopback IP and port: the load
// client must never be pointed at someone else's server.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: only loopback IP addresses (127.0.0.1, ::1) are allowed", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("-addr %q: bad port", addr)
	}
	return nil
}

// user returns the name of account i.
func (c *config) user(i int) string { return c.prefix + strconv.Itoa(c.offset+i) }

// start checks the flags and returns a context that ends after -maxtime
// (def when unset).
func (c *config) start(ctx context.Context, e env, def time.Duration) (context.Context, context.CancelFunc, error) {
	if err := c.check(); err != nil {
		return nil, nil, err
	}
	if c.maxTime <= 0 {
		c.maxTime = def
	}
	ctx, cancel := context.WithTimeout(ctx, c.maxTime)
	if e.watch != nil {
		e.watch(ctx)
	}
	return ctx, cancel, nil
}

// Common is the first part of every result line: what ran where.
type Common struct {
	Scenario string `json:"scenario"`
	Server   string `json:"server"`
	Addr     string `json:"addr"`
	Domain   string `json:"domain"`
	Mech     string `json:"mech"`
	Time     string `json:"time"`
}

func (c *config) common(scenario string) Common {
	return Common{
		Scenario: scenario, Server: c.label, Addr: c.addr, Domain: c.domain,
		Mech: c.mech, Time: time.Now().UTC().Format(time.RFC3339),
	}
}

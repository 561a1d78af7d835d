package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
)

// withStore opens the database and runs f with a server built from the
// same configuration as serve's, but not listening, so that deleting an
// account reaches every module's data, and its IP filter, which keeps its
// bans in the database. The database is locked meanwhile.
func withStore(ctx context.Context, cfg *config, e env, f func(adminTarget) error) error {
	// The admin's terminal hears warnings and errors only, not the
	// informational lines a server logs as it starts ("bans loaded").
	lc := cfg.Log
	if l, _ := parseLevel(lc.Level); l < slog.LevelWarn {
		lc.Level = "warn"
	}
	log := newLogger(lc, e.stderr)
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	// The invitations' landing URLs point at the configured HTTPS
	// listener, as serve's would (none for a port the system picks).
	port := ""
	if len(cfg.Listen.HTTPS) > 0 {
		if _, p, err := net.SplitHostPort(cfg.Listen.HTTPS[0]); err == nil && p != "0" {
			port = p
		}
	}
	t, err := newServer(ctx, cfg, store, log, nil, func(c *server.Config) {
		c.HTTPBaseURL = cfg.httpBaseURL(port)
	})
	if err != nil {
		return err
	}
	defer t.srv.Close()
	return f(t)
}

// userArg parses the JID argument of adduser, passwd and deluser.
func userArg(s string, cfg *config) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
		return jid.JID{}, usageError{fmt.Sprintf("%q is not a user address such as alice@%s", s, cfg.Domains[0])}
	}
	if !slices.Contains(cfg.Domains, j.Domainpart()) {
		return jid.JID{}, fmt.Errorf("%s is not a configured domain (domains: %s)", j.Domainpart(), strings.Join(cfg.Domains, ", "))
	}
	return j, nil
}

// changeUser runs adduser, passwd, deluser or undelete, on the running
// server if there is one (see admin).
func changeUser(ctx context.Context, cmd, arg string, cfg *config, e env) error {
	user, err := userArg(arg, cfg)
	if err != nil {
		return err
	}
	req := adminRequest{Op: cmd, User: user.String()}
	if cmd == "adduser" || cmd == "passwd" {
		// Check first, so nobody types a password in vain; the prompt
		// then runs without holding the database.
		req.Check = true
		if _, err := admin(ctx, cfg, e, req); err != nil {
			return err
		}
		req.Check = false
		if req.Password, err = readPassword(e); err != nil {
			return err
		}
		if err := checkPassword(req.Password); err != nil {
			return err
		}
	}
	out, err := admin(ctx, cfg, e, req)
	fmt.Fprint(e.stdout, out)
	return err
}

// listUsers prints the accounts of domain ("" for all), one a line, with
// the days each was created and last logged in to.
func listUsers(ctx context.Context, cfg *config, domain string, e env) error {
	if domain != "" {
		d, err := checkDomain(domain)
		if err != nil {
			return usageError{err.Error()}
		}
		if !slices.Contains(cfg.Domains, d) {
			return fmt.Errorf("%s is not a configured domain (domains: %s)", d, strings.Join(cfg.Domains, ", "))
		}
		domain = d
	}
	out, err := admin(ctx, cfg, e, adminRequest{Op: "users", Domain: domain})
	fmt.Fprint(e.stdout, out)
	return err
}

// readPassword asks for a new password twice without echo if stdin is a
// terminal, and otherwise reads one line from stdin.
func readPassword(e env) (string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return promptPassword(int(f.Fd()), e.stderr)
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %v", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password on standard input (give it as one line, or run in a terminal to be asked)")
	}
	return line, nil
}

// promptPassword reads a password twice from the terminal fd. Ctrl-C
// restores the terminal's echo before exiting.
func promptPassword(fd int, w io.Writer) (string, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return "", fmt.Errorf("terminal: %v", err)
	}
	intr := make(chan os.Signal, 1)
	signal.Notify(intr, os.Interrupt)
	done := make(chan struct{})
	defer func() {
		signal.Stop(intr)
		close(done)
	}()
	go func() {
		select {
		case <-intr:
			term.Restore(fd, state)
			fmt.Fprintln(w)
			os.Exit(130)
		case <-done:
		}
	}()
	ask := func(prompt string) (string, error) {
		fmt.Fprint(w, prompt)
		p, err := term.ReadPassword(fd)
		fmt.Fprintln(w)
		if err != nil {
			return "", fmt.Errorf("reading the password: %v", err)
		}
		return string(p), nil
	}
	p1, err := ask("New password: ")
	if err != nil {
		return "", err
	}
	if p1 == "" {
		return "", errors.New("empty password")
	}
	p2, err := ask("Repeat the password: ")
	if err != nil {
		return "", err
	}
	if p1 != p2 {
		return "", errors.New("the passwords do not match")
	}
	return p1, nil
}

// checkConfig validates the configuration (already done by loading it),
// reads the configured certificates, then reports.
func checkConfig(cfg *config, e env) error {
	name := cfg.file
	if name == "" {
		name = "(none: built-in defaults)"
	}
	if len(cfg.TLS.Certificates) > 0 {
		store, err := newCertStore(cfg.TLS.Certificates)
		if err != nil {
			return err
		}
		if err := checkCertFiles(cfg, store, time.Now(), e.stdout); err != nil {
			return err
		}
	}
	certs := "self-signed, kept in " + displayPath(cfg.DataDir) + string(os.PathSeparator) + "tls"
	switch {
	case cfg.TLS.ACME.Enabled:
		certs = "ACME (" + cfg.TLS.ACME.DirectoryURL + ")"
	case len(cfg.TLS.Certificates) > 0:
		certs = fmt.Sprintf("%d PEM file pair(s)", len(cfg.TLS.Certificates))
	}
	for _, w := range cfg.warnings() {
		fmt.Fprintf(e.stdout, "warning: %s\n", w)
	}
	addrs := func(a []string) string {
		if len(a) == 0 {
			return "off"
		}
		return strings.Join(a, ", ")
	}
	httpsPort := ""
	if len(cfg.Listen.HTTPS) > 0 {
		_, httpsPort, _ = net.SplitHostPort(cfg.Listen.HTTPS[0])
	}
	urls := "none (no https listener or external_url)"
	if base := cfg.httpBaseURL(httpsPort); base != nil {
		var all []string
		for _, d := range cfg.Domains {
			all = append(all, base(d))
		}
		urls = strings.Join(slices.Compact(all), ", ")
	}
	fmt.Fprintf(e.stdout, "config %s: OK\n", name)
	fmt.Fprintf(e.stdout, "  domains:      %s\n", strings.Join(cfg.Domains, ", "))
	fmt.Fprintf(e.stdout, "  c2s:          %s\n", addrs(cfg.Listen.C2S))
	fmt.Fprintf(e.stdout, "  direct TLS:   %s\n", addrs(cfg.Listen.DirectTLS))
	fmt.Fprintf(e.stdout, "  https:        %s\n", addrs(cfg.Listen.HTTPS))
	fmt.Fprintf(e.stdout, "  http:         %s\n", addrs(cfg.Listen.HTTP))
	fmt.Fprintf(e.stdout, "  HTTP URLs:    %s\n", urls)
	fmt.Fprintf(e.stdout, "  database:     %s\n", cfg.databaseName())
	fmt.Fprintf(e.stdout, "  certificates: %s\n", certs)
	return nil
}

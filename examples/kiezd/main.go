// Command kiezd is the reference Kiez XMPP server.
//
// With no configuration it serves the domain "localhost" on ports 5222
// (STARTTLS), 5223 (direct TLS) and 5281 (HTTPS, for modules' HTTP
// services such as file upload), with a self-signed certificate and its
// database under ./data. See README.md for the administrator's guide and
// kiezd.example.toml for every configuration key.
//
// Usage:
//
//	kiezd [-config FILE] [-data-dir DIR] [command] [arguments]
//
// Commands are serve (the default), adduser JID, passwd JID, deluser JID,
// undelete JID, users [DOMAIN], invite [-for DURATION] [-user NAME], ban ADDR[/PREFIX] [-for DURATION] [-reason TEXT],
// unban ADDR[/PREFIX], bans, export JID… | -domain DOMAIN | -all,
// import [FILE|DIR…], backup [-force] FILE, restore FILE, compact,
// migrate-storage -to DSN, version,
// check-config and check (check.go). While serve runs, the admin
// commands reach it through a Unix socket in the data directory
// (control.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kiez-im/kiez/server"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], env{
		stdin:   os.Stdin,
		stdout:  os.Stdout,
		stderr:  os.Stderr,
		signals: osSignals,
	}))
}

// env is what a run of kiezd talks to: main passes the process's own
// streams and signals, tests their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// signals returns a channel of SIGINT, SIGTERM and SIGHUP for serve,
	// and a function that stops the delivery.
	signals func() (<-chan os.Signal, func())
	// ready, if set, is called by serve once every listener is bound.
	ready func(bound)
	// modules are added by serve after the configured ones (tests).
	modules []server.Module
	// check, if set, is what kiezd check asks about DNS, the clock and
	// the network (tests); nil is the real world.
	check *checkDeps
}

// bound lists the addresses serve listens on.
type bound struct {
	C2S, DirectTLS []net.Addr
	// S2S accept other servers' streams (federation).
	S2S []net.Addr
	// HTTPS and HTTP serve the modules' HTTP routes.
	HTTPS, HTTP []net.Addr
	// ACMETLS and ACMEHTTP answer ACME challenges, if enabled.
	ACMETLS, ACMEHTTP net.Addr
	// Metrics serve the metrics endpoint, if enabled.
	Metrics []net.Addr
	// Components accept external components (XEP-0114), if any are
	// configured.
	Components []net.Addr
}

func osSignals() (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 4)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

const usage = `usage: kiezd [-config FILE] [-data-dir DIR] [command] [arguments]

Commands:
  serve           run the server (the default)
  adduser JID     create an account
  passwd JID      change an account's password
  deluser JID     delete an account and all its data
  revoke-tokens JID
                  revoke the account's FAST tokens: its devices log in
                  with the password again (passwd does this too)
  undelete JID    undo the removal of an account its owner removed, while
                  [registration] removal_grace keeps it
  users [DOMAIN]  list the accounts, of one domain or all
  invite [--for DURATION] [--user NAME]
                  create a one-time invitation to register an account and
                  print its xmpp: URI and https landing URL (default for:
                  [registration] invite_validity, at most 90d; --user
                  fixes the username)
  ban ADDR[/PREFIX] [--for DURATION] [--reason TEXT]
                  refuse connections from a network (default for:
                  [filter] ban_for; durations such as 30m, 12h, 7d)
  unban ADDR[/PREFIX]
                  lift the ban of exactly that network
  bans            list the bans: network, until (UTC), reason
  export [--omit-credentials] JID... | --domain DOMAIN | --all
                  write the accounts, with their SCRAM credentials and
                  data, as a XEP-0227 document to standard output
  import [--merge] [--allow-no-credentials] [FILE|DIR...]
                  create the accounts of XEP-0227 documents (the FILEs,
                  the *.xml files in DIR as prosody-migrator writes them,
                  or standard input) with their data; --merge imports
                  into accounts that exist, --allow-no-credentials
                  creates accounts that need kiezd passwd before they can
                  log in
  backup [--force] FILE
                  write a consistent copy of the database to FILE (- for
                  standard output), also while serve runs; --force
                  replaces an existing FILE
  restore FILE    put the database copy FILE in place of the database,
                  keeping the current one as kiez.db.before-restore-DATE
                  (only while kiezd is stopped)
  compact         rewrite the database without the space and the bytes
                  deleted data left (only while kiezd is stopped)
  migrate-storage --to DSN [--password-file FILE | --password-env VAR]
                  copy the bbolt database of the data directory into the
                  empty PostgreSQL database DSN, to serve from it with
                  [storage] backend = "postgres" (only while kiezd is
                  stopped); backup, restore and compact are for bbolt:
                  use pg_dump and pg_restore with PostgreSQL
  check-config    check the configuration and certificates, then exit
  check           check-config, then DNS records, listeners and the clock,
                  each finding with what to do (exit status 1 on errors)
  version         print kiezd's version, revision and Go version (also
                  --version)

While serve runs, adduser, passwd, deluser, undelete, revoke-tokens, users, invite, ban,
unban, bans, export, import and backup are carried out by it, through
the control socket DATA_DIR/kiezd.sock
(a ban refuses the next connection at once); otherwise they open the
database, which only serve creates. Passwords (at least 8 characters) are asked for
without echo, or read as one line from standard input when it is not a
terminal; never give them as arguments.

An address without /PREFIX means the network the filter counts it in: an
IPv4 address alone (/32), an IPv6 address's /64. 192.0.2.0/24 or
2001:db8::/48 name wider networks.

Flags:
  -config FILE    configuration file (default: ./kiezd.toml if it exists,
                  else built-in defaults: domain localhost, ports
                  5222/5223, HTTPS 5281)
  -data-dir DIR   directory for the database and generated certificates
                  (overrides data_dir; default ./data)
`

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run runs kiezd with args (without the program name) and returns the
// exit code: 0 on success, 1 on an error, 2 on a usage error. Errors are
// written to e.stderr as one line.
func run(ctx context.Context, args []string, e env) int {
	err := dispatch(ctx, args, e)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	// One error a line: a configuration file's mistakes come all at once.
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(e.stderr, "kiezd: %s\n", line)
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(e.stderr, "Run 'kiezd -h' for usage.")
		return 2
	}
	return 1
}

// globalFlags are accepted before and after the command.
type globalFlags struct {
	config, dataDir string
	// banFor and reason are ban's -for and -reason; banFor is invite's
	// -for too, user its -user.
	banFor, reason, user string
	// xfer are the flags of export and import (export.go).
	xfer transferFlags
	// bak are the flags of backup (backup.go).
	bak backupFlags
	// mig are the flags of migrate-storage (migrate.go).
	mig migrateFlags
}

func (g *globalFlags) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.config, "config", g.config, "configuration file")
	fs.StringVar(&g.dataDir, "data-dir", g.dataDir, "data directory")
	return fs
}

// parse parses flags, printing the usage for -h.
func (g *globalFlags) parse(fs *flag.FlagSet, args []string, e env) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, usage)
		return err
	}
	if err != nil {
		return usageError{err.Error()}
	}
	return nil
}

func dispatch(ctx context.Context, args []string, e env) error {
	var g globalFlags
	fs := g.flagSet("kiezd")
	showVersion := fs.Bool("version", false, "print the version")
	if err := g.parse(fs, args, e); err != nil {
		return err
	}
	args = fs.Args()
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if *showVersion {
		cmd = "version"
	}
	var nargs []int // accepted argument counts
	switch cmd {
	case "serve", "check-config", "check":
		nargs = []int{0}
	case "adduser", "passwd", "deluser", "undelete", "revoke-tokens":
		nargs = []int{1}
	case "users":
		nargs = []int{0, 1}
	case "ban", "unban":
		nargs = []int{1}
	case "bans", "invite":
		nargs = []int{0}
	case "export", "import":
		// Checked by exportCommand and importCommand.
	case "backup", "restore":
		nargs = []int{1}
	case "compact", "migrate-storage":
		nargs = []int{0}
	case "help":
		fmt.Fprint(e.stdout, usage)
		return nil
	case "version":
		fmt.Fprint(e.stdout, readBuildInfo().text())
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	sub := g.flagSet(cmd)
	if cmd == "ban" {
		sub.StringVar(&g.banFor, "for", "", "ban duration")
		sub.StringVar(&g.reason, "reason", "", "ban reason")
	}
	if cmd == "invite" {
		sub.StringVar(&g.banFor, "for", "", "invitation validity")
		sub.StringVar(&g.user, "user", "", "username")
	}
	g.xfer.register(sub, cmd)
	g.bak.register(sub, cmd)
	g.mig.register(sub, cmd)
	// Flags may come between and after the arguments too; "--" ends
	// them.
	var rest []string
	for {
		before := args
		if err := g.parse(sub, args, e); err != nil {
			return err
		}
		args = sub.Args()
		if n := len(before) - len(args); n > 0 && before[n-1] == "--" {
			rest = append(rest, args...)
			break
		}
		if len(args) == 0 {
			break
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
	args = rest
	ok := nargs == nil
	for _, n := range nargs {
		ok = ok || len(args) == n
	}
	if !ok {
		return usageError{fmt.Sprintf("%s: wrong number of arguments", cmd)}
	}

	var req adminRequest // of ban, unban and invite, checked before the config
	var err error
	switch cmd {
	case "ban", "unban":
		req, err = banRequest(cmd, args[0], g.banFor, g.reason)
	case "invite":
		req, err = inviteRequest(g.banFor, g.user)
	}
	if err != nil {
		return err
	}

	cfg, err := loadConfig(g.config)
	if err != nil {
		return err
	}
	if g.config != "" {
		cfg.flags = append(cfg.flags, "-config", g.config)
	}
	if g.dataDir != "" {
		cfg.DataDir = g.dataDir
		cfg.flags = append(cfg.flags, "-data-dir", g.dataDir)
	}
	switch cmd {
	case "serve":
		return serve(ctx, cfg, e)
	case "check-config":
		return checkConfig(cfg, e)
	case "check":
		return checkCommand(ctx, cfg, e)
	case "users":
		domain := ""
		if len(args) == 1 {
			domain = args[0]
		}
		return listUsers(ctx, cfg, domain, e)
	case "bans":
		return banCommand(ctx, cfg, e, adminRequest{Op: "bans"})
	case "ban", "unban":
		return banCommand(ctx, cfg, e, req)
	case "invite":
		return inviteCommand(ctx, cfg, e, req)
	case "export":
		return exportCommand(ctx, cfg, e, args, g.xfer)
	case "import":
		return importCommand(ctx, cfg, e, args, g.xfer)
	case "backup":
		return backupCommand(ctx, cfg, e, args[0], g.bak)
	case "restore":
		return restoreCommand(ctx, cfg, e, args[0])
	case "compact":
		return compactCommand(ctx, cfg, e)
	case "migrate-storage":
		return migrateCommand(ctx, cfg, e, g.mig)
	default:
		return changeUser(ctx, cmd, args[0], cfg, e)
	}
}

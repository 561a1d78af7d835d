// Command loadclient is the load client behind the figures in the
// top-level README: it measures a Kiez server started with
// examples/loadserver on loopback (or any XMPP server offering STARTTLS and
// SCRAM there) and prints one JSON line per run on standard output, with
// progress on standard error.
//
//	go run ./examples/loadclient login -c 32 -d 15s -pidfile /tmp/kiez.pid
//	go run ./examples/loadclient msg -p 50 -w 16 -d 15s -nostore -pidfile /tmp/kiez.pid
//	go run ./examples/loadclient idle -k 2000,10000 -pidfile /tmp/kiez.pid
//	go run ./examples/loadclient mam -q 500 -page 50 -pidfile /tmp/kiez.pid
//
// Scenarios:
//
//   - login: workers loop connect, STARTTLS, SCRAM, bind, close.
//   - msg: pairs of sessions exchange chat messages with a window in
//     flight; run it against a server with and without the archive.
//   - idle: open sessions in steps and read the server's resident memory.
//   - mam: time archive queries for the newest page.
//
// With -pid or -pidfile, each line carries the server's CPU seconds
// (utime+stime from /proc/<pid>/stat) over the measured window and the
// rate per server CPU second, the figure to compare servers by when the
// client shares the server's cores.
//
// The client only connects to loopback addresses, stops every loop after a
// count and a duration, and ends the whole run after -maxtime. Its
// scenarios and result fields follow the harness in ../shared/bench, so
// that its figures compare with that harness's Prosody and ejabberd ones.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// env is what a scenario writes to: the result line and progress logs.
type env struct {
	out io.Writer
	log *slog.Logger
	// watch, when set, is given each run's context once its -maxtime is
	// armed (main uses it for a backstop).
	watch func(ctx context.Context)
}

// emit writes the result line.
func (e env) emit(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.out, "%s\n", b)
	return err
}

// scenario is one subcommand.
type scenario struct {
	name, summary string
	run           func(ctx context.Context, e env, args []string) error
}

// scenarios lists the subcommands in the order the usage shows them.
var scenarios = []scenario{
	{"login", "workers loop connect, STARTTLS, SASL, bind and close for -d", runLogin},
	{"msg", "pairs exchange chat messages, -w in flight per pair, for -d", runMsg},
	{"idle", "open idle sessions up to each level of -k, report server KiB per session", runIdle},
	{"mam", "time -q archive queries for the newest -page messages", runMAM},
}

// errUsage reports a command line without a known scenario.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: loadclient <scenario> [flags]\n\nscenarios:")
	for _, s := range scenarios {
		fmt.Fprintf(w, "  %-6s %s\n", s.name, s.summary)
	}
	fmt.Fprintln(w, "\n'loadclient <scenario> -h' lists its flags. The result is one JSON line on stdout.")
}

// run runs the scenario named by args[0].
func run(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return errUsage
	}
	for _, s := range scenarios {
		if s.name == args[0] {
			return s.run(ctx, e, args[1:])
		}
	}
	return errUsage
}

// checkRange refuses a flag value outside [lo, hi].
func checkRange(flag string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("%s %d: want %d to %d", flag, v, lo, hi)
	}
	return nil
}

// backstop is how long past the context's end the process may run before
// it exits regardless: every loop watches the context, so this only
// catches a bug.
const backstop = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(log)
	watch := func(ctx context.Context) {
		go func() {
			<-ctx.Done()
			time.Sleep(backstop)
			fmt.Fprintln(os.Stderr, "loadclient: still running 30 s after -maxtime or a signal; exiting")
			os.Exit(3)
		}()
	}
	err := run(ctx, env{out: os.Stdout, log: log, watch: watch}, os.Args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		usage(os.Stderr)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "loadclient:", err)
		os.Exit(1)
	}
}

// Command loadserver runs a Kiez server with pre-provisioned accounts for
// load tests on loopback, driven by examples/loadclient.
//
//	go run ./examples/loadserver -n 10000 -addr 127.0.0.1:35222 -pidfile /tmp/kiez.pid
//
// Accounts are <prefix>0 … <prefix>N-1 on domain bench.test, all with one
// password. To provision thousands of accounts quickly, every account gets
// the same SCRAM keys (derived once, one salt): fine for a benchmark, never
// for real users.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/modules/offline"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/modules/stock"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/memory"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadserver:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 10000, "accounts to provision")
	prefix := flag.String("prefix", "u", "account name prefix")
	pass := flag.String("pass", "benchpw", "password of every account")
	domain := flag.String("domain", "bench.test", "domain served")
	addr := flag.String("addr", "127.0.0.1:35222", "c2s listen address (loopback only)")
	store := flag.String("store", "memory", "account store: memory or a bbolt file path")
	pidfile := flag.String("pidfile", "", "write the process id here")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this loopback address")
	archive := flag.Bool("archive", false, "run the message archive (XEP-0313), offline storage and carbons, on the -store backend")
	kiezdMods := flag.Bool("kiezd-modules", false, "run the modules kiezd runs by default (modules/stock with kiezd's built-in options), on the -store backend; excludes -archive")
	fill := flag.Int("fill", 0, "with -archive: first archive this many messages from <prefix>1 in <prefix>0's archive (for bench mam -user <prefix>0 -contact <prefix>1)")
	flag.Parse()

	host, _, err := net.SplitHostPort(*addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr must be a loopback address, not %q", *addr)
	}
	if *archive && *kiezdMods {
		return fmt.Errorf("-archive and -kiezd-modules exclude each other (kiezd's modules include the archive)")
	}
	var backend interface {
		storage.Accounts
		storage.Archive
		storage.Offline
		storage.KV
		storage.Roster
		storage.PEP
		storage.Uploads
		storage.Secrets
		storage.ServiceData
		storage.MUC
	} = memory.New()
	if *store != "memory" {
		db, err := bbolt.Open(*store, bbolt.Options{})
		if err != nil {
			return err
		}
		defer db.Close()
		backend = db
	}
	var accounts storage.Accounts = backend
	var mods []server.Module
	switch {
	case *archive:
		// The archive (with its ad-hoc command), carbons and offline
		// storage, with their defaults.
		mods, err = stock.Modules(backend, stock.Options{Without: []string{
			stock.Roster, stock.Blocking, stock.VCard, stock.Private, stock.Ping, stock.Time, stock.Version, stock.Contact, stock.MUC,
		}})
		if err != nil {
			return err
		}
		if err := fillArchive(backend, *prefix+"0@"+*domain, *prefix+"1@"+*domain, *fill); err != nil {
			return err
		}
	case *kiezdMods:
		// kiezd's built-in configuration (examples/kiezd/config.go).
		const month = 30 * 24 * time.Hour
		mods, err = stock.Modules(backend, stock.Options{
			Roster:  roster.Options{MaxItems: 1000},
			Offline: offline.Options{Limit: 1000, Retention: month},
			Archive: mam.Options{Default: mam.Always, Retention: month},
		})
		if err != nil {
			return err
		}
	}
	keys, err := scram.NewAllKeys(*pass, 0)
	if err != nil {
		return err
	}
	ctx := context.Background()
	for i := 0; i < *n; i++ {
		err := accounts.CreateAccount(ctx, storage.Account{JID: *prefix + strconv.Itoa(i) + "@" + *domain, Keys: keys, Created: time.Now()})
		if err != nil && !errorsIsExists(err) {
			return err
		}
	}
	cert, _, _, err := server.SelfSigned(*domain)
	if err != nil {
		return err
	}
	srv, err := server.New(ctx, server.Config{
		Domains:  []string{*domain},
		TLS:      &tls.Config{Certificates: []tls.Certificate{cert}},
		Accounts: accounts,
		Modules:  mods,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		// No read rate limit: the load tool's clients send far more than
		// a person's client does.
		Limits: server.Limits{QueueSize: 1024, ReadRate: -1, ReadRateAuthenticated: -1},
	})
	if err != nil {
		return err
	}
	if *pprofAddr != "" {
		go http.ListenAndServe(*pprofAddr, nil)
	}
	ln, err := server.Listen(context.Background(), *addr)
	if err != nil {
		return err
	}
	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "loadserver: %d accounts, serving %s on %s\n", *n, *domain, ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.ServeC2S(ln); err != nil && err != server.ErrServerClosed {
		return err
	}
	return nil
}

// fillArchive stores n chat messages from peer in user's archive, one
// millisecond apart and ending now, from 64 goroutines so that the
// store's group commit batches them.
func fillArchive(store storage.Archive, user, peer string, n int) error {
	if n <= 0 {
		return nil
	}
	start := time.Now().Add(-time.Duration(n) * time.Millisecond)
	const workers = 64
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := w; i < n; i += workers {
				msg := fmt.Sprintf(`<message xmlns="jabber:client" type="chat" id="f%d" from="%s/bench" to="%s"><body>archived message %d, about as long as a chat line usually is</body></message>`, i, peer, user, i)
				if _, err := store.AppendArchive(context.Background(), user, start.Add(time.Duration(i)*time.Millisecond), peer+"/bench", []byte(msg)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

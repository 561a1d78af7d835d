// Command minimal is the smallest useful Kiez server: one domain,
// certificates from PEM files, accounts in a bbolt file, and the ping
// module. It is the embedding example of the README.
package main

import (
	"context"
	"crypto/tls"
	"log"
	"os/signal"
	"syscall"

	"github.com/kiez-im/kiez/modules/ping"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/bbolt"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cert, err := tls.LoadX509KeyPair("example.org.crt", "example.org.key")
	if err != nil {
		log.Fatal(err)
	}
	db, err := bbolt.Open("data/kiez.db", bbolt.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	pong, err := ping.New(ping.Options{}, ping.Deps{})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(ctx, server.Config{
		Domains:  []string{"example.org"},
		TLS:      &tls.Config{Certificates: []tls.Certificate{cert}},
		Accounts: db,
		Modules:  []server.Module{pong},
	})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := server.Listen(ctx, ":5222")
	if err != nil {
		log.Fatal(err)
	}
	go srv.ServeC2S(ln)
	<-ctx.Done()
	srv.Shutdown(context.Background())
}

// Command echobot runs a Kiez server on 127.0.0.1:5222 with a custom
// module: the service echo.<domain> sends every message body back. It
// creates one demo account, whose password it reads from the environment
// variable KIEZ_DEMO_PASSWORD, or generates and prints.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

func main() {
	domain := flag.String("domain", "localhost", "the domain to serve")
	user := flag.String("user", "demo", "localpart of the demo account")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cert, _, _, err := server.SelfSigned(*domain)
	if err != nil {
		log.Fatal(err)
	}
	echo, err := New(Options{}, Deps{})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(ctx, server.Config{
		Domains:  []string{*domain},
		TLS:      &tls.Config{Certificates: []tls.Certificate{cert}},
		Accounts: memory.New(),
		Modules:  []server.Module{echo},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	password := os.Getenv("KIEZ_DEMO_PASSWORD")
	if password == "" {
		password = rand.Text()
		fmt.Println("generated password:", password)
	}
	demo, err := jid.New(*user, *domain, "")
	if err == nil {
		err = srv.CreateUser(ctx, demo, password)
	}
	if err != nil {
		log.Fatal(err)
	}
	ln, err := server.Listen(ctx, "127.0.0.1:5222")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("log in as %s and write to echo.%s\n", demo, *domain)
	go srv.ServeC2S(ln)
	<-ctx.Done()
	srv.Close()
}

package strangers_test

import (
	"context"
	"crypto/tls"
	"log"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/modules/strangers"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

func ExampleNew() {
	store := memory.New() // or a storage/bbolt Store
	ros, err := roster.New(roster.Options{}, roster.Deps{Store: store})
	if err != nil {
		log.Fatal(err)
	}
	mod, err := strangers.New(strangers.Options{}, strangers.Deps{Store: store, Roster: ros})
	if err != nil {
		log.Fatal(err)
	}
	// Users switch it on with the ad-hoc command.
	cmds, err := adhoc.New(adhoc.Options{}, adhoc.Deps{Commands: mod.Commands()})
	if err != nil {
		log.Fatal(err)
	}
	cert, _, _, err := server.SelfSigned("localhost")
	if err != nil {
		log.Fatal(err)
	}
	_, err = server.New(context.Background(), server.Config{
		Domains:  []string{"localhost"},
		TLS:      &tls.Config{Certificates: []tls.Certificate{cert}},
		Accounts: store,
		Modules:  []server.Module{ros, mod, cmds},
	})
	if err != nil {
		log.Fatal(err)
	}
}

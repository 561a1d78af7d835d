package blocking_test

import (
	"context"
	"crypto/tls"
	"log"

	"github.com/kiez-im/kiez/modules/blocking"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

func ExampleNew() {
	store := memory.New() // or a storage/bbolt Store
	mod, err := blocking.New(blocking.Options{}, blocking.Deps{Store: store})
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
		Modules:  []server.Module{mod},
	})
	if err != nil {
		log.Fatal(err)
	}
}

package postgres_test

import (
	"context"
	"log"
	"os"

	"github.com/kiez-im/kiez/storage/postgres"
)

// Open a store (applying any pending migrations) on a database given by
// an environment variable, keeping the password out of the code and the
// logs.
func ExampleOpen() {
	ctx := context.Background()
	s, err := postgres.Open(ctx, os.Getenv("KIEZ_POSTGRES_DSN"), postgres.Options{MaxConns: 16})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(ctx, "alice@example.org", "vcard", []byte("<vCard/>")); err != nil {
		log.Fatal(err)
	}
}

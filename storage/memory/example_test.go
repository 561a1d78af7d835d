package memory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

func ExampleNew() {
	ctx := context.Background()
	s := memory.New()

	err := s.CreateAccount(ctx, storage.Account{
		JID: "juliet@example.org",
		Keys: map[storage.Hash]storage.SCRAMKeys{
			// In a real server these come from a SCRAM key derivation.
			storage.SHA256: {
				Salt:       []byte("salt"),
				Iterations: 4096,
				StoredKey:  make([]byte, 32),
				ServerKey:  make([]byte, 32),
			},
		},
		Created: time.Date(2024, 3, 11, 15, 4, 5, 0, time.UTC),
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	a, err := s.Account(ctx, "juliet@example.org")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(a.JID, a.Created.Format(time.DateOnly), a.Keys[storage.SHA256].Iterations)
	// Output: juliet@example.org 2024-03-11 4096
}

package push_test

import (
	"fmt"

	"github.com/kiez-im/kiez/modules/push"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// The push module keeps registrations in a key-value store (here the
// in-memory one, which also keeps the accounts). The zero Options keep
// the privacy promise: notifications carry a count, not the sender nor
// the body.
func ExampleNew() {
	store := memory.New() // or a storage/bbolt Store
	m, err := push.New(push.Options{}, push.Deps{Store: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{
		Domains:  []string{"example.org"},
		Accounts: store,
		Modules:  []server.Module{m},
	}
	fmt.Println(cfg.Modules[0].Name())
	// Output: push
}

package private_test

import (
	"fmt"

	"github.com/kiez-im/kiez/modules/private"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// An integrator passes a storage.KV as Deps.Store (here the in-memory
// store, which also keeps the accounts) and adds the module to
// Config.Modules.
func Example() {
	store := memory.New()
	m, err := private.New(private.Options{MaxItems: 50}, private.Deps{Store: store})
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
	// Output: private
}

package vcard_test

import (
	"fmt"

	"github.com/kiez-im/kiez/modules/vcard"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// An integrator passes a storage.KV as Deps.Store (here the in-memory
// store, which also keeps the accounts) and adds the module to
// Config.Modules.
func Example() {
	store := memory.New()
	m, err := vcard.New(vcard.Options{MaxSize: 64 << 10}, vcard.Deps{Store: store})
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
	// Output: vcard
}

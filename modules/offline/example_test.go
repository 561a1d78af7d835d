package offline_test

import (
	"fmt"
	"time"

	"github.com/kiez-im/kiez/modules/blocking"
	"github.com/kiez-im/kiez/modules/offline"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// An integrator passes a storage.Offline in Deps (here the in-memory
// store, which also keeps the accounts) and adds the module to
// Config.Modules, here beside the blocking module, whose filter keeps
// messages from blocked senders out of storage.
func ExampleNew() {
	store := memory.New() // or a storage/bbolt Store
	blk, err := blocking.New(blocking.Options{}, blocking.Deps{Store: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := offline.New(offline.Options{
		Limit:     500,
		Retention: 14 * 24 * time.Hour,
	}, offline.Deps{Store: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{
		Domains:  []string{"example.org"},
		Accounts: store,
		Modules:  []server.Module{blk, m},
	}
	fmt.Println(cfg.Modules[1].Name())
	// Output: offline
}

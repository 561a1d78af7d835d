package stock_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kiez-im/kiez/modules/offline"
	"github.com/kiez-im/kiez/modules/stock"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// The stock modules on one store, without the message archive, with
// offline messages kept a week.
func ExampleModules() {
	store := memory.New() // or a storage/bbolt Store
	mods, err := stock.Modules(store, stock.Options{
		Without: []string{stock.Archive},
		Offline: offline.Options{Retention: 7 * 24 * time.Hour},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = server.New(context.Background(), server.Config{Domains: []string{"example.org"}, Accounts: store, Modules: mods})
	fmt.Println(len(mods), err)
	// Output: 16 <nil>
}

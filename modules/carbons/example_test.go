package carbons_test

import (
	"fmt"

	"github.com/kiez-im/kiez/modules/blocking"
	"github.com/kiez-im/kiez/modules/carbons"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// The carbons module has no options and needs no storage: both of New's
// arguments are empty. List it after the modules that
// refuse or rewrite messages (blocking, the message archive), so that it
// copies what is actually delivered.
func ExampleNew() {
	store := memory.New()
	blk, err := blocking.New(blocking.Options{}, blocking.Deps{Store: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	cc, err := carbons.New(carbons.Options{}, carbons.Deps{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{
		Domains:  []string{"example.org"},
		Accounts: store,
		Modules:  []server.Module{blk, cc},
	}
	fmt.Println(cfg.Modules[1].Name())
	// Output: carbons
}

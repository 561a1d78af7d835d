package roster_test

import (
	"fmt"

	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// An integrator creates the module on a roster store, Deps.Store (the
// same bbolt or memory Store as the accounts), and adds it to
// Config.Modules.
func Example() {
	store := memory.New()
	m, err := roster.New(roster.Options{MaxItems: 500}, roster.Deps{Store: store})
	if err != nil {
		panic(err)
	}
	cfg := server.Config{
		Domains:  []string{"example.org"},
		Accounts: store,
		Modules:  []server.Module{m},
	}
	fmt.Println(cfg.Modules[0].Name())
	// Output: roster
}

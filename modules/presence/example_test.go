package presence_test

import (
	"fmt"

	"github.com/kiez-im/kiez/modules/presence"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// The presence module has no options and builds on the roster module,
// given in Deps, which must be in Config.Modules too.
func Example() {
	store := memory.New()
	r, err := roster.New(roster.Options{}, roster.Deps{Store: store})
	if err != nil {
		panic(err)
	}
	p, err := presence.New(presence.Options{}, presence.Deps{Roster: r})
	if err != nil {
		panic(err)
	}
	cfg := server.Config{
		Domains:  []string{"example.org"},
		Accounts: store,
		Modules:  []server.Module{r, p},
	}
	for _, m := range cfg.Modules {
		fmt.Println(m.Name())
	}
	// Output:
	// roster
	// presence
}

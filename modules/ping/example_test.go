package ping_test

import (
	"fmt"

	"github.com/kiez-im/kiez/modules/ping"
	"github.com/kiez-im/kiez/server"
)

// An integrator adds the module to Config.Modules. Ping has no options
// and no dependencies, so both arguments are empty.
func Example() {
	m, err := ping.New(ping.Options{}, ping.Deps{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{
		Domains: []string{"example.org"},
		Modules: []server.Module{m},
	}
	fmt.Println(cfg.Modules[0].Name())
	// Output: ping
}

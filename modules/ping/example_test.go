package ping_test

import (
	"fmt"

	"github.com/kiez-im/kiez/modules/ping"
	"github.com/kiez-im/kiez/server"
)

// An integrator adds the module to Config.Modules.
func Example() {
	cfg := server.Config{
		Domains: []string{"example.org"},
		Modules: []server.Module{ping.New()},
	}
	fmt.Println(cfg.Modules[0].Name())
	// Output: ping
}

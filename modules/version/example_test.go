package version_test

import (
	"fmt"

	"github.com/kiez-im/kiez/modules/version"
	"github.com/kiez-im/kiez/server"
)

// An integrator adds the module to Config.Modules, here reporting a fixed
// version and no operating system. The module has no dependencies: Deps
// is empty.
func Example() {
	v, err := version.New(version.Options{Version: "1.0.0"}, version.Deps{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{
		Domains: []string{"example.org"},
		Modules: []server.Module{v},
	}
	fmt.Println(cfg.Modules[0].Name(), v.Version())
	// Output: version 1.0.0
}

// A server that does not disclose its software keeps the module in its
// list but hidden, for example from a configuration switch.
func Example_hide() {
	v, err := version.New(version.Options{Hide: true}, version.Deps{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(v.IQRoutes()), len(v.Features(server.TargetHost)))
	// Output: 0 0
}

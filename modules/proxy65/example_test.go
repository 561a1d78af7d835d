package proxy65_test

import (
	"fmt"

	"github.com/kiez-im/kiez/modules/proxy65"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// A proxy at proxy.example.org listening on port 5000 of every
// interface, announced under a public name, with at most 16 streams of
// 2 MiB/s each. The listener opens when the server initialises the
// module.
func ExampleNew() {
	m, err := proxy65.New(proxy65.Options{
		Listen:     ":5000",
		PublicHost: "proxy.example.org",
		MaxStreams: 16,
		Rate:       2 << 20,
	}, proxy65.Deps{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{
		Domains:  []string{"example.org"},
		Accounts: memory.New(),
		Modules:  []server.Module{m},
	}
	fmt.Println(cfg.Modules[0].Name())
	// Output: proxy65
}

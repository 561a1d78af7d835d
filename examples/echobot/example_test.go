package main

import (
	"fmt"

	"github.com/kiez-im/kiez/server"
)

// The echo module goes into Config.Modules like any other; the server then
// routes every stanza for echo.<domain> to it.
func ExampleNew() {
	cfg := server.Config{
		Domains: []string{"example.org"},
		Modules: []server.Module{New()},
	}
	for _, svc := range New().Services() {
		fmt.Printf("%s.%s\n", svc.Subdomain, cfg.Domains[0])
	}
	// Output: echo.example.org
}

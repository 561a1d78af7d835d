package main

import (
	"fmt"

	"github.com/kiez-im/kiez/server"
)

// The echo module is built like any other, from its (empty) Options and
// Deps, and goes into Config.Modules; the server then routes every stanza
// for echo.<domain> to it.
func ExampleNew() {
	echo, err := New(Options{}, Deps{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{
		Domains: []string{"example.org"},
		Modules: []server.Module{echo},
	}
	for _, svc := range echo.Services() {
		fmt.Printf("%s.%s\n", svc.Subdomain, cfg.Domains[0])
	}
	// Output: echo.example.org
}

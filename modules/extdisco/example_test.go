package extdisco_test

import (
	"fmt"
	"time"

	"github.com/kiez-im/kiez/modules/extdisco"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// A STUN server and a coturn TURN server sharing a secret with kiez
// (coturn: use-auth-secret, static-auth-secret=...). Clients get TURN
// credentials valid for 12 hours.
func ExampleNew() {
	m, err := extdisco.New(extdisco.Options{
		Services: []extdisco.Service{
			{Type: "stun", Host: "turn.example.org", Port: 3478, Transport: "udp"},
			{Type: "turn", Host: "turn.example.org", Port: 3478, Transport: "udp"},
			{Type: "turns", Host: "turn.example.org", Port: 5349, Transport: "tcp"},
		},
		Secret: "the static-auth-secret of coturn",
		TTL:    12 * time.Hour,
	}, extdisco.Deps{})
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
	// Output: extdisco
}

// Credentials computes what coturn's REST API expects.
func ExampleCredentials() {
	user, pass := extdisco.Credentials([]byte("secret"), time.Unix(1700000000, 0), "")
	fmt.Println(user, pass)
	// Output: 1700000000 WGw37+g43pfwVUmrc9tgArn/juE=
}

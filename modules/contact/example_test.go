package contact_test

import (
	"fmt"

	"github.com/kiez-im/kiez/modules/contact"
	"github.com/kiez-im/kiez/server"
)

// An integrator validates the addresses with New, then adds the module to
// Config.Modules. The module has no dependencies: Deps is empty.
func Example() {
	m, err := contact.New(contact.Options{Addresses: map[string][]string{
		contact.Abuse:    {"mailto:abuse@example.org", "xmpp:abuse@example.org"},
		contact.Security: {"https://example.org/.well-known/security.txt"},
	}}, contact.Deps{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{
		Domains: []string{"example.org"},
		Modules: []server.Module{m},
	}
	fmt.Println(cfg.Modules[0].Name())

	_, err = contact.New(contact.Options{Addresses: map[string][]string{
		contact.Abuse: {"abuse@example.org"},
	}}, contact.Deps{})
	fmt.Println(err)
	// Output:
	// contact
	// contact: malformed URI "abuse@example.org" in abuse-addresses: no scheme
}

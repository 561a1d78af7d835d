package register_test

import (
	"context"
	"fmt"

	"github.com/kiez-im/kiez/modules/register"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// The module manages accounts through the server, which server.New
// returns only after the module was built: Deps.Accounts is a function
// the module calls when a client registers, by which time srv is set.
func Example() {
	var srv *server.Server
	reg, err := register.New(register.Options{Policy: register.PolicyOpen, MinPassword: 10},
		register.Deps{Accounts: func() register.Accounts { return srv }})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err = server.New(context.Background(), server.Config{
		Domains:  []string{"example.org"},
		Accounts: memory.New(),
		Modules:  []server.Module{reg},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(context.Background())
	fmt.Println(reg.Name())
	// Output: register
}

// With the invite policy (the default), Deps.Invites redeems the token
// a client puts in the registration form's token field.
func ExampleNew_invite() {
	invites := newInvites(map[string]register.Invite{"s3cr3t": {Username: "juliet"}})
	_, err := register.New(register.Options{}, register.Deps{
		Accounts: func() register.Accounts { return nil }, // the *server.Server, as in Example
		Invites:  invites,
	})
	fmt.Println(err)
	_, err = register.New(register.Options{}, register.Deps{Accounts: func() register.Accounts { return nil }})
	fmt.Println(err)
	// Output:
	// <nil>
	// register: policy invite without Deps.Invites
}

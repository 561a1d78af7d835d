package invite_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/kiez-im/kiez/modules/invite"
	"github.com/kiez-im/kiez/storage/memory"
)

// An administrator's invitation: hand the URI (or the landing page's URL,
// with an HTTP base URL) to the invitee; register.Deps.Invites takes the
// module.
func Example() {
	store := memory.New()
	invites, err := invite.New(invite.Options{}, invite.Deps{Store: store})
	if err != nil {
		panic(err)
	}
	inv, err := invites.Create(context.Background(), invite.CreateOptions{Domain: "example.org", Username: "juliet"})
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.TrimSuffix(inv.URI, inv.Token), inv.Kind)
	// Output: xmpp:juliet@example.org?register;preauth= account
}

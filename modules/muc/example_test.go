package muc_test

import (
	"context"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/muc"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// An integrator adds the module to Config.Modules: the service answers at
// conference.<domain> for every virtual host. Rooms are kept in a
// storage.MUC; the secret store keeps occupant ids stable across
// restarts, and a KV store keeps room avatars.
func Example() {
	store := memory.New()
	m, err := muc.New(muc.Options{
		Admins:          []jid.JID{jid.MustParse("admin@example.org")},
		MaxRoomsPerUser: 10,
	}, muc.Deps{Store: store, Secrets: store, KV: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = server.New(context.Background(), server.Config{
		Domains:  []string{"example.org"},
		Accounts: store,
		Modules:  []server.Module{m},
	})
	fmt.Println(m.Name(), err)
	// Output: muc <nil>
}

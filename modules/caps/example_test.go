package caps_test

import (
	"context"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/caps"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// The caps module needs nothing; another module (PEP) asks it which
// features a session has, and registers a listener, before the server
// is built, to act when they become known.
func ExampleNew() {
	c, err := caps.New(caps.Options{}, caps.Deps{})
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Watch(func(ctx context.Context, full jid.JID, feats caps.Features) {
		// PEP would send full the last item of each node it wants:
		_ = feats.Notify("urn:xmpp:avatar:metadata")
	})
	cfg := server.Config{
		Domains:  []string{"example.org"},
		Accounts: memory.New(),
		Modules:  []server.Module{c},
	}
	fmt.Println(cfg.Modules[0].Name())
	// Output: caps
}

// Features tells a session's verified features, and whether they are
// known: not before its client sent caps and they were verified.
func ExampleModule_Features() {
	c, err := caps.New(caps.Options{CacheSize: 100}, caps.Deps{})
	if err != nil {
		fmt.Println(err)
		return
	}
	feats, ok := c.Features(jid.MustParse("juliet@example.org/balcony"))
	fmt.Println(ok, feats.Notify("http://jabber.org/protocol/tune"))
	// Output: false false
}

package blocking_test

import (
	"testing"

	"github.com/kiez-im/kiez/modules/blocking"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

// TestImport: the blocklist comes back from an export, and blocks.
func TestImport(t *testing.T) {
	store := memory.New()
	mod, err := blocking.New(blocking.Options{}, blocking.Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{mod}})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Connect(t, alice, "pw")
	do(t, a, "block", items("block", "bob@localhost", "example.net", "eve@example.org/phone"))
	before, after, report := srv.ReImport(t, alice)
	if before != after || report.Elements != 1 {
		t.Fatalf("export after the import (%+v):\n%s\ndiffers from the one before:\n%s", report, after, before)
	}
	// Bob's message to alice is refused.
	a = srv.Connect(t, alice, "pw")
	b := srv.Connect(t, bob, "pw")
	b.Send(chat(alice, "m1", "hello"))
	if got := b.Expect(func(st *stanza.Stanza) bool { return st.ID == "m1" }); got.Type != stanza.Error {
		t.Fatalf("bob's message to alice, who blocks him: %s", got.Type)
	}
}

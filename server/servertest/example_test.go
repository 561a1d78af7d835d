package servertest_test

import (
	"testing"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// A module test against a real server on loopback with a real client.
func ExampleStart() {
	// In a _test.go file:
	testHello := func(t *testing.T) {
		srv := servertest.Start(t, server.Config{ /* Modules: ... */ })
		alice := srv.AddUser(t, "alice", "pw")
		c := srv.Connect(t, alice, "pw")
		c.Send(&stanza.Stanza{Kind: stanza.Presence})
		c.Sync()
	}
	_ = testHello
}

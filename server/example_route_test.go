package server_test

import (
	"context"
	"fmt"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

// Counter counts the messages each session sends, in state the server
// keeps with the session: a Send route and a SessionValue.
type Counter struct {
	sent server.SessionValue[*int]
}

// NewCounter makes the module; its SessionValue is made once, here.
func NewCounter() *Counter { return &Counter{sent: server.NewSessionValue[*int]()} }

func (*Counter) Name() string { return "counter" }

func (c *Counter) StanzaRoutes() []server.StanzaRoute {
	return []server.StanzaRoute{{
		Side: filter.Send, Kind: stanza.Message, Types: []string{"chat"},
		Handler: server.RouteHandlerFunc(func(ctx context.Context, d *server.Delivery) error {
			n := c.sent.GetOrSet(d.Session, new(int))
			*n++       // one session's stanzas are routed one at a time
			return nil // let the message go on
		}),
	}}
}

// Sent returns how many chat messages s sent.
func (c *Counter) Sent(s *server.Session) int {
	if n, ok := c.sent.Get(s); ok {
		return *n
	}
	return 0
}

// A module with a stanza route and per-session state.
func ExampleStanzaRoute() {
	_, err := server.New(context.Background(), server.Config{
		Domains:  []string{"example.org"},
		Accounts: memory.New(),
		Modules:  []server.Module{NewCounter()},
	})
	fmt.Println(err)
	// Output: <nil>
}

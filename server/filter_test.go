package server_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// packetLog is a filter that notes each packet whose stanza has a body,
// as "phase origin account body", and stops the bodies that ask for it.
type packetLog struct {
	mu   sync.Mutex
	seen []string
}

func (r *packetLog) Filter(ctx context.Context, p filter.Packet) (*stanza.Stanza, error) {
	body, ok := p.Stanza.ChildText(xml.Name{Local: "body"})
	if !ok || p.Stanza.IsError() {
		return p.Stanza, nil
	}
	r.mu.Lock()
	r.seen = append(r.seen, fmt.Sprintf("%s %s %s %s", p.Phase, p.Origin, p.Account, body))
	r.mu.Unlock()
	switch {
	case body == "drop on send" && p.Phase == filter.Send:
		return nil, filter.ErrDrop
	case body == "refuse on receive" && p.Phase == filter.Receive:
		return nil, stanza.Failure{
			Err: mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.NotAcceptable},
			App: xml.Name{Space: "urn:kiez:test", Local: "refused"},
		}
	}
	return p.Stanza, nil
}

// saw reports whether the packetLog noted each of want.
func (r *packetLog) saw(want ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var missing []string
	for _, w := range want {
		if !slices.Contains(r.seen, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// sender is a module with a sub-domain service. It keeps its Host, so
// the test can send as a module does; the service answers every message
// with a message of its own to the sender.
type sender struct{ host server.Host }

func (*sender) Name() string { return "sender" }

func (s *sender) Init(ctx context.Context, h server.Host) error {
	s.host = h
	return nil
}

func (s *sender) Services() []server.Service {
	return []server.Service{{Subdomain: "svc", Name: "Echo",
		Handler: server.StanzaHandlerFunc(func(ctx context.Context, st *stanza.Stanza) error {
			if st.Kind != stanza.Message || st.IsError() {
				return nil
			}
			return s.host.Router().Route(ctx, chatFrom(st.To, st.From, "from the service"))
		})}}
}

func chatFrom(from, to jid.JID, body string) *stanza.Stanza {
	m := message(to, "", body)
	m.From = from
	return m
}

// Every stanza passes the filters on the sender's and the recipient's
// side, whether a client, a module or a service sent it.
func TestFilterEveryOrigin(t *testing.T) {
	rec := &packetLog{}
	mod := &sender{}
	srv := servertest.Start(t, server.Config{Filters: []filter.Filter{rec}, Modules: []server.Module{mod}})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Connect(t, alice, "pw")
	b := srv.Connect(t, bob, "pw")
	a.Send(presence())
	b.Send(presence())
	a.Sync()
	b.Sync()

	// A client.
	a.Send(message(bob, "c", "from a client"))
	b.Expect(servertest.Body("from a client"))
	// A module, through the router and to one session.
	ctx := context.Background()
	mod.host.Router().Route(ctx, chatFrom(alice, bob, "routed by a module"))
	b.Expect(servertest.Body("routed by a module"))
	if err := mod.host.SendTo(ctx, mod.host.Sessions(bob)[0], chatFrom(alice, bob, "sent to a session by a module")); err != nil {
		t.Fatalf("SendTo: %v", err)
	}
	b.Expect(servertest.Body("sent to a session by a module"))
	// A service.
	a.Send(message(jid.MustParse("svc.localhost"), "s", "to the service"))
	a.Expect(servertest.Body("from the service"))

	if missing := rec.saw(
		"send client alice@localhost from a client", "receive client bob@localhost from a client",
		"send module alice@localhost routed by a module", "receive module bob@localhost routed by a module",
		"send module alice@localhost sent to a session by a module", "receive module bob@localhost sent to a session by a module",
		"send client alice@localhost to the service",
		"send service svc.localhost from the service", "receive service alice@localhost from the service",
	); len(missing) > 0 {
		t.Errorf("the filter did not see: %q\nit saw: %q", missing, rec.seen)
	}

	// A filter stops stanzas on either side.
	a.Send(message(bob, "d", "drop on send"))
	a.Send(message(bob, "r", "refuse on receive"))
	r := a.Expect(servertest.ByID("r"))
	var out strings.Builder
	r.WriteTo(&out)
	if r.Type != stanza.Error || !strings.Contains(out.String(), "not-acceptable") || !strings.Contains(out.String(), `<refused xmlns="urn:kiez:test"/>`) {
		t.Errorf("refused message answered with %s", out.String())
	}
	b.SyncNone(func(st *stanza.Stanza) bool {
		body, _ := st.ChildText(xml.Name{Local: "body"})
		return body == "drop on send" || body == "refuse on receive"
	})
	if err := mod.host.SendTo(ctx, mod.host.Sessions(bob)[0], chatFrom(alice, bob, "drop on send")); err == nil {
		t.Error("SendTo of a stanza a filter drops: no error")
	}
}

// marker is a module whose filter appends <mark name='...'/> to messages
// on the sender's side, at a priority.
type marker struct {
	name     string
	priority int
}

func (m marker) Name() string { return m.name }

func (m marker) Filters() []server.ModuleFilter {
	return []server.ModuleFilter{{Priority: m.priority, Filter: filter.Only(filter.Send, filter.Func(
		func(ctx context.Context, p filter.Packet) (*stanza.Stanza, error) {
			if p.Stanza.Kind != stanza.Message || p.Stanza.IsError() {
				return p.Stanza, nil
			}
			c := p.Stanza.Clone()
			c.AppendChild(stanza.Elem(xml.Name{Space: "urn:kiez:test", Local: "mark"}, []xml.Attr{stanza.Attr("name", m.name)}))
			return c, nil
		}))}}
}

// The order of module filters is declared in code, by priority: it
// decides which of two rewriting filters runs first, whatever the order
// of the modules; equal priorities keep the modules' order.
func TestFilterOrderByPriority(t *testing.T) {
	srv := servertest.Start(t, server.Config{Modules: []server.Module{
		marker{"low", 1}, marker{"high", 10}, marker{"tie-first", 5}, marker{"tie-second", 5},
	}})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Connect(t, alice, "pw")
	b := srv.Connect(t, bob, "pw")
	b.Send(presence())
	b.Sync()
	a.Send(message(bob, "m", "marked"))
	got := b.Expect(servertest.Body("marked"))
	var names []string
	for _, tok := range got.Inner {
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "mark" {
			for _, at := range se.Attr {
				names = append(names, at.Value)
			}
		}
	}
	if want := []string{"high", "tie-first", "tie-second", "low"}; !slices.Equal(names, want) {
		t.Errorf("filters ran in the order %v, want %v", names, want)
	}
}

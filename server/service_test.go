package server_test

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

var (
	nsRooms  = xml.Name{Space: "urn:kiez:test:rooms", Local: "rooms"}
	nsRoom   = xml.Name{Space: "urn:kiez:test:rooms", Local: "room"}
	nsSilent = xml.Name{Space: "urn:kiez:test:rooms", Local: "silent"}
)

// rooms is a module with a service built from iq routes alone.
type rooms struct{ routes []server.IQRoute }

func (rooms) Name() string { return "rooms" }

func (r rooms) Services() []server.Service {
	return []server.Service{{Subdomain: "rooms", Name: "Rooms", Features: []string{nsRooms.Space}, IQRoutes: r.routes,
		Items: func(_ context.Context, from, to jid.JID) []server.DiscoItem {
			// The lobby, listed for its own domain, and a room named
			// after the requester, to see that the callback learns both.
			return []server.DiscoItem{
				{JID: jid.MustParse("lobby@" + to.String()), Name: "Lobby"},
				{JID: jid.MustParse(from.Localpart() + "s-room@" + to.String())},
			}
		}}}
}

func roomRoutes() []server.IQRoute {
	return []server.IQRoute{
		{Type: mstanza.GetIQ, Payload: nsRooms, To: server.TargetHost,
			Handler: server.IQHandlerFunc(func(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
				return w.Result(stanza.Elem(nsRooms, []xml.Attr{stanza.Attr("count", "1")}))
			})},
		{Type: mstanza.GetIQ, Payload: nsRoom, To: server.TargetBare,
			Handler: server.IQHandlerFunc(func(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
				if err := w.Result(stanza.Elem(nsRoom, []xml.Attr{stanza.Attr("name", iq.To.Localpart())})); err != nil {
					return err
				}
				// A second answer is refused, as for modules.
				if err := w.Result(nil); err != server.ErrAlreadyAnswered {
					return err
				}
				return nil
			})},
		{Type: mstanza.GetIQ, Payload: nsSilent, To: server.TargetHost,
			Handler: server.IQHandlerFunc(func(context.Context, stanza.IQ, server.ResponseWriter) error { return nil })},
	}
}

// A service gets what modules get: iq routes answered exactly once through
// a ResponseWriter, service-unavailable for what no route takes, and its
// disco#info from its declarations.
func TestServiceIQRoutes(t *testing.T) {
	srv := servertest.Start(t, server.Config{Modules: []server.Module{rooms{roomRoutes()}}})
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw")
	svc := jid.MustParse("rooms.localhost")
	text := func(st *stanza.Stanza) string {
		var b strings.Builder
		st.WriteTo(&b)
		return b.String()
	}

	a.Send(iq(stanza.Get, svc, "1", nsRooms))
	if r := a.Expect(servertest.ByID("1")); r.Type != stanza.Result || !strings.Contains(text(r), `count="1"`) {
		t.Errorf("iq to the service: %s", text(r))
	}
	a.Send(iq(stanza.Get, jid.MustParse("lobby@rooms.localhost/nick"), "2", nsRoom))
	if r := a.Expect(servertest.ByID("2")); r.Type != stanza.Result || !strings.Contains(text(r), `name="lobby"`) {
		t.Errorf("iq to an address at the service: %s", text(r))
	}
	a.Sync() // one answer only
	a.Send(iq(stanza.Get, svc, "3", nsSilent))
	if r := a.Expect(servertest.ByID("3")); errorCondition(r) != "service-unavailable" {
		t.Errorf("handler that does not answer: %s", text(r))
	}
	a.Send(iq(stanza.Get, svc, "4", xml.Name{Space: "urn:kiez:test:other", Local: "q"}))
	if r := a.Expect(servertest.ByID("4")); errorCondition(r) != "service-unavailable" {
		t.Errorf("iq no route takes: %s", text(r))
	}
	a.Send(message(svc, "5", "hello"))
	if r := a.Expect(servertest.ByID("5")); errorCondition(r) != "service-unavailable" {
		t.Errorf("message to a service without a handler: %s", text(r))
	}
	a.Send(iq(stanza.Get, svc, "6", xml.Name{Space: server.NSDiscoInfo, Local: "query"}))
	if r := text(a.Expect(servertest.ByID("6"))); !strings.Contains(r, `name="Rooms"`) || !strings.Contains(r, `var="urn:kiez:test:rooms"`) {
		t.Errorf("disco#info of the service: %s", r)
	}
	a.Send(iq(stanza.Get, svc, "7", xml.Name{Space: server.NSDiscoItems, Local: "query"}))
	if r := text(a.Expect(servertest.ByID("7"))); !strings.Contains(r, `jid="lobby@rooms.localhost" name="Lobby"`) || !strings.Contains(r, `jid="alices-room@rooms.localhost"`) {
		t.Errorf("disco#items of the service: %s", r)
	}
}

// Two routes of one service with the same key, or two modules serving the
// same service domain, make New fail with an error naming them.
func TestServiceClashes(t *testing.T) {
	twice := append(roomRoutes(), roomRoutes()[0])
	for _, tc := range []struct {
		name string
		mods []server.Module
		want string
	}{
		{"route twice", []server.Module{rooms{twice}}, "modules rooms and rooms both handle iq get {urn:kiez:test:rooms}rooms to host (service rooms)"},
		{"domain twice", []server.Module{rooms{roomRoutes()}, rooms2{}}, "modules rooms and rooms2 both serve rooms.localhost"},
		{"bad target", []server.Module{rooms{[]server.IQRoute{{Type: mstanza.GetIQ, Payload: nsRooms, To: server.TargetSelf,
			Handler: server.IQHandlerFunc(func(context.Context, stanza.IQ, server.ResponseWriter) error { return nil })}}}},
			"takes target host or bare"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := server.New(context.Background(), server.Config{Domains: []string{"localhost"}, Accounts: memoryStore(), Modules: tc.mods})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

type rooms2 struct{}

func (rooms2) Name() string { return "rooms2" }
func (rooms2) Services() []server.Service {
	return []server.Service{{Subdomain: "rooms", IQRoutes: roomRoutes()}}
}

package server_test

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

func iq(typ string, to jid.JID, id string, payload xml.Name) *stanza.Stanza {
	return &stanza.Stanza{Kind: stanza.IQKind, ID: id, Type: typ, To: to,
		Inner: []xml.Token{xml.StartElement{Name: payload}, xml.EndElement{Name: payload}}}
}

func errorCondition(st *stanza.Stanza) string {
	_, r, ok := st.Child(xml.Name{Local: "error"})
	if !ok {
		return ""
	}
	e, err := mstanza.UnmarshalError(r)
	if err != nil {
		return ""
	}
	return string(e.Condition)
}

func TestIQRouting(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Connect(t, alice, "pw")
	b := srv.Connect(t, bob, "pw")
	custom := xml.Name{Space: "urn:example:custom", Local: "q"}

	// iq to a full JID reaches that session, with the sender's full JID.
	a.Send(iq(stanza.Get, b.LocalAddr(), "i1", custom))
	got := b.Expect(servertest.ByID("i1"))
	if got.Type != stanza.Get || !got.From.Equal(a.LocalAddr()) {
		t.Fatalf("routed iq: type %s from %s", got.Type, got.From)
	}
	// ... and its answer (mellium's client answers unknown iqs with an
	// error) reaches the requester.
	if r := a.Expect(servertest.ByID("i1")); r.Type != stanza.Error || !r.From.Equal(b.LocalAddr()) {
		t.Fatalf("answer: type %s from %s", r.Type, r.From)
	}

	for _, tc := range []struct {
		name string
		to   jid.JID
		cond mstanza.Condition
	}{
		{"unhandled iq to server", jid.MustParse("localhost"), mstanza.ServiceUnavailable},
		{"unhandled iq to own account", jid.JID{}, mstanza.ServiceUnavailable},
		{"unhandled iq to other account", bob, mstanza.ServiceUnavailable},
		{"iq to unknown account", jid.MustParse("nobody@localhost"), mstanza.ServiceUnavailable},
		{"iq to gone resource", jid.MustParse("bob@localhost/gone"), mstanza.ServiceUnavailable},
		{"iq to remote domain", jid.MustParse("someone@example.net"), mstanza.RemoteServerNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")
			a.Send(iq(stanza.Get, tc.to, id, custom))
			r := a.Expect(servertest.ByID(id))
			if r.Type != stanza.Error || errorCondition(r) != string(tc.cond) {
				t.Fatalf("got type %s condition %q, want %s", r.Type, errorCondition(r), tc.cond)
			}
		})
	}
	b.SyncNone(func(st *stanza.Stanza) bool { return st.Kind == stanza.IQKind })
}

func TestMessageRouting(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	srv.AddUser(t, "carol", "pw") // exists, never online
	a := srv.Connect(t, alice, "pw")
	b1 := srv.Connect(t, withRes(bob, "phone"), "pw")
	b2 := srv.Connect(t, withRes(bob, "laptop"), "pw")
	a.Send(presence())
	b1.Send(presence())
	p := presence()
	p.Inner = []xml.Token{xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "priority"}}, xml.CharData("5"), xml.EndElement{Name: xml.Name{Space: stanza.NSClient, Local: "priority"}}}
	b2.Send(p)
	// b1 learns of b2's presence: proof both are available.
	b1.Expect(func(st *stanza.Stanza) bool { return st.Kind == stanza.Presence && st.From.Equal(b2.LocalAddr()) })

	// To the bare JID: only the highest-priority resource.
	a.Send(message(bob, "m1", "to bare"))
	b2.Expect(servertest.Body("to bare"))
	b1.SyncNone(servertest.Body("to bare"))

	// To a full JID: exactly that resource.
	a.Send(message(b1.LocalAddr(), "m2", "to phone"))
	b1.Expect(servertest.Body("to phone"))
	b2.SyncNone(servertest.Body("to phone"))

	// To a resource that does not exist: treated as the bare JID.
	a.Send(message(withRes(bob, "gone"), "m3", "to gone"))
	b2.Expect(servertest.Body("to gone"))

	// To an account that is offline, with no offline storage, or that does
	// not exist: service-unavailable.
	for _, to := range []string{"carol@localhost", "nobody@localhost"} {
		a.Send(message(jid.MustParse(to), "x-"+to, "lost"))
		if r := a.Expect(servertest.ByID("x-" + to)); r.Type != stanza.Error || errorCondition(r) != "service-unavailable" {
			t.Fatalf("message to %s: type %s condition %q", to, r.Type, errorCondition(r))
		}
	}
	// To a remote domain: remote-server-not-found.
	a.Send(message(jid.MustParse("x@example.net"), "r1", "far"))
	if r := a.Expect(servertest.ByID("r1")); errorCondition(r) != "remote-server-not-found" {
		t.Fatalf("remote: condition %q", errorCondition(r))
	}
}

func TestPresenceBroadcastToOwnResources(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	bob := srv.AddUser(t, "bob", "pw")
	b1 := srv.Connect(t, withRes(bob, "one"), "pw")
	b1.Send(presence())
	b2 := srv.Connect(t, withRes(bob, "two"), "pw")
	b2.Send(presence())
	b1.Expect(func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Presence && st.Type == "" && st.From.Equal(b2.LocalAddr())
	})
	// The newcomer is told about its sibling.
	b2.Expect(func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Presence && st.Type == "" && st.From.Equal(b1.LocalAddr())
	})
	// Disconnecting sends unavailable on its behalf.
	b2.Session.Close()
	b1.Expect(func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Presence && st.Type == "unavailable" && st.From.Equal(b2.LocalAddr())
	})
}

func TestResourceConflict(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	bob := srv.AddUser(t, "bob", "pw")
	old := srv.Connect(t, withRes(bob, "same"), "pw")
	newer := srv.Connect(t, withRes(bob, "same"), "pw")
	if !newer.LocalAddr().Equal(withRes(bob, "same")) {
		t.Fatalf("new session bound %s", newer.LocalAddr())
	}
	select {
	case err := <-old.Done():
		if err == nil || !strings.Contains(err.Error(), "conflict") {
			t.Fatalf("old session ended with %v, want conflict", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("old session still open")
	}
	if n := srv.SessionCount(); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}
}

func TestGracefulShutdown(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw")
	a.Send(presence())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case err := <-a.Done():
		if err == nil || !strings.Contains(err.Error(), "system-shutdown") {
			t.Fatalf("stream ended with %v, want system-shutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open after shutdown")
	}
}

type routeModule struct {
	name   string
	routes []server.IQRoute
}

func (m routeModule) Name() string               { return m.name }
func (m routeModule) IQRoutes() []server.IQRoute { return m.routes }

type keeper struct{ routeModule }

func (keeper) UserData() []string { return []string{"secrets"} }

type owner struct {
	keeper
	deleted []jid.JID
}

func (o *owner) DeleteUser(ctx context.Context, u jid.JID) error {
	o.deleted = append(o.deleted, u)
	return nil
}
func (o *owner) ExportUser(ctx context.Context, u jid.JID, w xmlstream.TokenWriter) error {
	return nil
}

func TestNewValidatesModules(t *testing.T) {
	h := server.IQHandlerFunc(func(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error { return nil })
	route := server.IQRoute{Type: mstanza.GetIQ, Payload: xml.Name{Space: "urn:x", Local: "q"}, To: server.TargetHost, Handler: h}
	for _, tc := range []struct {
		name    string
		modules []server.Module
		want    string
	}{
		{"duplicate route", []server.Module{routeModule{"one", []server.IQRoute{route}}, routeModule{"two", []server.IQRoute{route}}}, "modules one and two both handle"},
		{"duplicate name", []server.Module{routeModule{name: "same"}, routeModule{name: "same"}}, `two modules are named "same"`},
		{"user data without owner", []server.Module{keeper{routeModule{name: "hoarder"}}}, "module hoarder keeps user data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := server.New(context.Background(), server.Config{Domains: []string{"localhost"}, Accounts: memoryStore(), Modules: tc.modules})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestDeleteUserFansOut(t *testing.T) {
	o := &owner{keeper: keeper{routeModule{name: "keeper"}}}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{o}})
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw")
	if err := srv.DeleteUser(context.Background(), alice); err != nil {
		t.Fatal(err)
	}
	if len(o.deleted) != 1 || !o.deleted[0].Equal(alice) {
		t.Fatalf("owner saw deletions %v", o.deleted)
	}
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session of deleted account still open")
	}
	if _, err := srv.Login(context.Background(), alice, "pw"); err == nil {
		t.Fatal("deleted account can still log in")
	}
	if err := srv.DeleteUser(context.Background(), alice); err == nil {
		t.Fatal("deleting twice succeeded")
	}
}

type echoService struct{}

func (echoService) Name() string { return "svc" }
func (echoService) Services() []server.Service {
	return []server.Service{{Subdomain: "svc", Name: "Test service", Features: []string{"urn:example:svc"},
		Handler: server.StanzaHandlerFunc(func(ctx context.Context, st *stanza.Stanza) error {
			return mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.FeatureNotImplemented}
		})}}
}

func TestServiceDisco(t *testing.T) {
	srv := servertest.Start(t, server.Config{Modules: []server.Module{echoService{}}})
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw")
	svc := jid.MustParse("svc.localhost")
	a.Send(iq(stanza.Get, svc, "d1", xml.Name{Space: server.NSDiscoInfo, Local: "query"}))
	r := a.Expect(servertest.ByID("d1"))
	var b strings.Builder
	r.WriteTo(&b)
	for _, want := range []string{`category="component"`, `name="Test service"`, `var="urn:example:svc"`, `var="http://jabber.org/protocol/disco#info"`} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("disco#info of the service lacks %s: %s", want, b.String())
		}
	}
	// The server lists the service in its disco#items.
	a.Send(iq(stanza.Get, jid.MustParse("localhost"), "d2", xml.Name{Space: server.NSDiscoItems, Local: "query"}))
	b.Reset()
	a.Expect(servertest.ByID("d2")).WriteTo(&b)
	if !strings.Contains(b.String(), `jid="svc.localhost"`) {
		t.Fatalf("disco#items of the server: %s", b.String())
	}
	// Anything else goes to the service's handler.
	a.Send(iq(stanza.Get, svc, "d3", xml.Name{Space: "urn:example:other", Local: "q"}))
	if c := errorCondition(a.Expect(servertest.ByID("d3"))); c != "feature-not-implemented" {
		t.Fatalf("service handler's error: %q", c)
	}
}

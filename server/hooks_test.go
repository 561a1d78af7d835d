package server_test

import (
	"context"
	"encoding/xml"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// stamper has a Receive route for messages and is an AvailabilityListener,
// UndeliveredHandler and NodeProvider that records what it sees.
type stamper struct {
	mu          sync.Mutex
	seen        []string // account + body of each intercepted message
	available   []bool   // Available() at each SessionAvailable call
	undelivered []*stanza.Stanza
}

var nsMark = xml.Name{Space: "urn:kiez:test", Local: "mark"}

func (*stamper) Name() string { return "stamper" }

func (m *stamper) StanzaRoutes() []server.StanzaRoute {
	return []server.StanzaRoute{{Side: filter.Receive, Kind: stanza.Message, Handler: server.RouteHandlerFunc(
		func(ctx context.Context, d *server.Delivery) error {
			out, err := m.stamp(ctx, d.Account, d.Stanza)
			d.Stanza = out
			return err
		})}}
}

func (m *stamper) stamp(ctx context.Context, account jid.JID, st *stanza.Stanza) (*stanza.Stanza, error) {
	body, _ := st.ChildText(xml.Name{Local: "body"})
	if st.Type == stanza.Error {
		body = "error" // bounces to local senders pass here too
	}
	m.mu.Lock()
	m.seen = append(m.seen, account.String()+" "+body)
	m.mu.Unlock()
	switch body {
	case "error":
		return st, nil
	case "swallow":
		return nil, server.ErrHandled
	case "refuse":
		return nil, mstanza.Error{Type: mstanza.Modify, Condition: mstanza.NotAcceptable}
	}
	c := st.Clone()
	c.AppendChild(stanza.Elem(nsMark, []xml.Attr{stanza.Attr("for", account.String())}))
	return c, nil
}

func (m *stamper) SessionAvailable(ctx context.Context, s *server.Session) {
	m.mu.Lock()
	m.available = append(m.available, s.Available())
	m.mu.Unlock()
}

func (m *stamper) HandleUndelivered(ctx context.Context, st *stanza.Stanza) (bool, error) {
	m.mu.Lock()
	m.undelivered = append(m.undelivered, st)
	m.mu.Unlock()
	return true, nil
}

func (m *stamper) DiscoNode(ctx context.Context, t server.Target, node string, from, to jid.JID) (server.DiscoNode, bool) {
	if t != server.TargetHost || node != "urn:kiez:test#node" {
		return server.DiscoNode{}, false
	}
	return server.DiscoNode{
		Identities: []server.Identity{{Category: "automation", Type: "command-node", Name: "Test"}},
		Features:   []string{"urn:kiez:test#b", "urn:kiez:test#a"},
		Items:      []server.DiscoItem{{JID: to, Node: "urn:kiez:test#child", Name: "for " + from.Bare().String()}},
	}, true
}

func (m *stamper) snapshot() (seen []string, available []bool, undelivered []*stanza.Stanza) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.seen...), append([]bool(nil), m.available...), append([]*stanza.Stanza(nil), m.undelivered...)
}

func chatTo(to jid.JID, body string) *stanza.Stanza {
	st := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: to, ID: body}
	st.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, body))
	return st
}

func TestDeliveryInterceptor(t *testing.T) {
	m := &stamper{}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{m}})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Connect(t, alice, "pw")
	b := srv.Connect(t, bob, "pw")
	b.Send(&stanza.Stanza{Kind: stanza.Presence})
	b.Sync()

	// Bare and full JIDs: the copy the interceptor returns is delivered.
	a.Send(chatTo(bob, "to bare"))
	got := b.Expect(servertest.Body("to bare"))
	if !got.HasChild(nsMark) {
		t.Error("message to the bare JID delivered without the interceptor's change")
	}
	a.Send(chatTo(b.LocalAddr(), "to full"))
	if got := b.Expect(servertest.Body("to full")); !got.HasChild(nsMark) {
		t.Error("message to the full JID delivered without the interceptor's change")
	}
	// ErrHandled stops delivery silently; a stanza error bounces.
	a.Send(chatTo(bob, "swallow"))
	a.Send(chatTo(bob, "refuse"))
	if r := a.ExpectNoneUntil(servertest.ByID("swallow"), servertest.ByID("refuse")); r.Type != stanza.Error || errorCondition(r) != "not-acceptable" {
		t.Errorf("refused message: type %s condition %q", r.Type, errorCondition(r))
	}
	// Both were handled before the refusal came back: anything queued
	// for bob is there before the answer to his sync.
	b.SyncNone(func(st *stanza.Stanza) bool { return st.Kind == stanza.Message })
	a.SyncNone(servertest.ByID("swallow"))

	// Accounts that do not exist never reach the interceptors.
	nobody := jid.MustParse("nobody@localhost")
	a.Send(chatTo(nobody, "to nobody"))
	if r := a.Expect(servertest.ByID("to nobody")); errorCondition(r) != "service-unavailable" {
		t.Errorf("message to a missing account: condition %q", errorCondition(r))
	}
	// An offline account's messages pass the interceptors, then go to the
	// UndeliveredHandlers as changed.
	carol := srv.AddUser(t, "carol", "pw")
	a.Send(chatTo(carol, "to offline"))
	a.Send(chatTo(jid.MustParse("carol@localhost/gone"), "to gone resource"))
	a.Sync()

	seen, _, undelivered := m.snapshot()
	want := []string{"bob@localhost to bare", "bob@localhost to full", "bob@localhost swallow", "bob@localhost refuse", "alice@localhost error", "alice@localhost error", "carol@localhost to offline", "carol@localhost to gone resource"}
	if len(seen) != len(want) {
		t.Fatalf("interceptor saw %q, want %q", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("interceptor call %d: %q, want %q", i, seen[i], want[i])
		}
	}
	if len(undelivered) != 2 || !undelivered[0].HasChild(nsMark) || !undelivered[1].HasChild(nsMark) {
		t.Errorf("undelivered: %d messages, want 2 with the interceptor's change", len(undelivered))
	}
}

func TestAvailabilityListener(t *testing.T) {
	m := &stamper{}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{m}})
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw")
	a.Sync()
	if _, av, _ := m.snapshot(); len(av) != 0 {
		t.Fatalf("called before any presence: %v", av)
	}
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	a.Send(&stanza.Stanza{Kind: stanza.Presence}) // an update, not initial
	a.Sync()
	if _, av, _ := m.snapshot(); len(av) != 1 || !av[0] {
		t.Fatalf("after initial presence and an update: calls %v, want one with Available() true", av)
	}
	a.Send(&stanza.Stanza{Kind: stanza.Presence, Type: "unavailable"})
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	a.Sync()
	if _, av, _ := m.snapshot(); len(av) != 2 {
		t.Fatalf("available again after unavailable: %d calls, want 2", len(av))
	}
}

func TestNodeProvider(t *testing.T) {
	m := &stamper{}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{m}})
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw")
	domain := jid.MustParse("localhost")
	query := func(id, space, node string) *stanza.Stanza {
		st := &stanza.Stanza{Kind: stanza.IQKind, ID: id, Type: stanza.Get, To: domain}
		st.AppendChild(stanza.Elem(xml.Name{Space: space, Local: "query"}, []xml.Attr{stanza.Attr("node", node)}))
		return st
	}
	a.Send(query("items", server.NSDiscoItems, "urn:kiez:test#node"))
	r := a.Expect(servertest.ByID("items"))
	_, qr, ok := r.Child(xml.Name{Space: server.NSDiscoItems, Local: "query"})
	if r.Type != stanza.Result || !ok {
		t.Fatalf("items: type %s", r.Type)
	}
	var items, features []xml.StartElement
	collect := func(rd xml.TokenReader, local string, into *[]xml.StartElement) {
		for {
			tok, err := rd.Token()
			if err != nil {
				return
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == local {
				*into = append(*into, se)
			}
		}
	}
	collect(qr, "item", &items)
	if len(items) != 1 || attr(items[0], "jid") != "localhost" || attr(items[0], "node") != "urn:kiez:test#child" || attr(items[0], "name") != "for alice@localhost" {
		t.Errorf("items %+v", items)
	}

	a.Send(query("info", server.NSDiscoInfo, "urn:kiez:test#node"))
	r = a.Expect(servertest.ByID("info"))
	_, qr, _ = r.Child(xml.Name{Space: server.NSDiscoInfo, Local: "query"})
	var ids []xml.StartElement
	info := stanza.Tokens()
	if qr != nil {
		toks := collectTokens(qr)
		collect(stanza.Tokens(toks...), "identity", &ids)
		info = stanza.Tokens(toks...)
	}
	collect(info, "feature", &features)
	if len(ids) != 1 || attr(ids[0], "category") != "automation" {
		t.Errorf("identities %+v", ids)
	}
	if len(features) != 2 || attr(features[0], "var") != "urn:kiez:test#a" || attr(features[1], "var") != "urn:kiez:test#b" {
		t.Errorf("features %+v, want the node's two, sorted", features)
	}

	for _, space := range []string{server.NSDiscoInfo, server.NSDiscoItems} {
		a.Send(query("unknown", space, "urn:kiez:test#other"))
		if r := a.Expect(servertest.ByID("unknown")); errorCondition(r) != "item-not-found" {
			t.Errorf("%s of an unknown node: condition %q", space, errorCondition(r))
		}
	}
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func collectTokens(r xml.TokenReader) []xml.Token {
	var toks []xml.Token
	for {
		tok, err := r.Token()
		if err != nil {
			return toks
		}
		toks = append(toks, tok)
	}
}

// greeter sends every new session a burst of messages from
// SessionStarted, long enough for a writer to get going meanwhile.
type greeter struct{}

func (greeter) Name() string { return "greeter" }
func (greeter) SessionStarted(ctx context.Context, s *server.Session) {
	msg := &stanza.Stanza{Kind: stanza.Message, To: s.JID(), From: s.JID().Domain()}
	msg.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "welcome"))
	for range 200 {
		s.Send(msg)
		time.Sleep(10 * time.Microsecond)
	}
}
func (greeter) SessionEnded(context.Context, *server.Session) {}

// What a SessionListener sends a new session follows the bind result:
// the client learns its JID first.
func TestSessionStartedBeforeClientKnows(t *testing.T) {
	srv := servertest.Start(t, server.Config{Modules: []server.Module{greeter{}}})
	srv.AddUser(t, "alice", "pw")
	for range 5 {
		r := dialRaw(t, srv.Addr)
		r.startTLS()
		r.authPlain("alice", "pw")
		r.send(header)
		r.expect("</stream:features>")
		r.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
		got := r.expect("welcome")
		bind, welcome := strings.Index(got, `id="b"`), strings.Index(got, "welcome")
		if bind < 0 || bind > welcome {
			t.Fatalf("the listener's message came before the bind result: %q", got)
		}
		r.c.Close()
	}
}

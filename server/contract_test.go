package server_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

var nsTest = "urn:kiez:test"

func testIQ(local string, h server.IQHandlerFunc) server.IQRoute {
	return server.IQRoute{Type: mstanza.GetIQ, To: server.TargetHost, Payload: xml.Name{Space: nsTest, Local: local}, Handler: h}
}

// TestResponseWriter: exactly one answer per iq, whatever the handler does.
func TestResponseWriter(t *testing.T) {
	second := make(chan error, 1)
	m := routeModule{name: "rw", routes: []server.IQRoute{
		testIQ("twice", func(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
			w.Result(nil)
			second <- w.Error(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.Conflict})
			return nil
		}),
		testIQ("silent", func(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error { return nil }),
		testIQ("failing", func(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
			return errors.New("disk on fire")
		}),
		testIQ("refusing", func(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
			return fmt.Errorf("wrapped: %w", stanza.Failure{Err: stanza.NewError(mstanza.Modify, mstanza.NotAcceptable, ""),
				App: xml.Name{Space: nsTest, Local: "too-big"}})
		}),
		testIQ("erring", func(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
			return mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ItemNotFound}
		}),
	}}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{m}})
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw")
	domain := jid.MustParse("localhost")
	for _, tc := range []struct{ local, typ, cond string }{
		{"twice", stanza.Result, ""},
		{"silent", stanza.Error, "service-unavailable"},
		{"failing", stanza.Error, "internal-server-error"},
		{"refusing", stanza.Error, "not-acceptable"},
		{"erring", stanza.Error, "item-not-found"},
	} {
		a.Send(iq(stanza.Get, domain, tc.local, xml.Name{Space: nsTest, Local: tc.local}))
		r := a.Expect(servertest.ByID(tc.local))
		if r.Type != tc.typ || errorCondition(r) != tc.cond {
			t.Errorf("%s: type %s condition %q, want %s %q", tc.local, r.Type, errorCondition(r), tc.typ, tc.cond)
		}
		if _, ok := r.ChildElement(xml.Name{Space: stanza.NSClient, Local: "error"}); tc.local == "refusing" && (!ok || !hasDescendant(r, xml.Name{Space: nsTest, Local: "too-big"})) {
			t.Errorf("refusing: the application condition is missing: %v", r.Inner)
		}
		if tc.local == "twice" {
			if err := <-second; !errors.Is(err, server.ErrAlreadyAnswered) {
				t.Errorf("second answer: %v, want ErrAlreadyAnswered", err)
			}
			// The handler tried its second answer before it sent on
			// second: had it been queued, it would come before the sync.
			a.SyncNone(servertest.ByID("twice"))
		}
	}
}

// journal is where recorders write, in call order; it signals each entry.
type journal struct {
	signal
	mu  sync.Mutex
	log []string
}

// recorder is a module that implements the optional interfaces and
// records what the server calls.
type recorder struct {
	name string
	log  *journal
	// decide is what its Send route returns for messages.
	decide func(st *stanza.Stanza) error
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) add(s string) {
	r.log.mu.Lock()
	r.log.log = append(r.log.log, s)
	r.log.mu.Unlock()
	r.log.notify()
}
func (r *recorder) StanzaRoutes() []server.StanzaRoute {
	return []server.StanzaRoute{{Side: filter.Send, Kind: stanza.Message, Handler: server.RouteHandlerFunc(
		func(ctx context.Context, d *server.Delivery) error {
			r.add(r.name + ":intercept")
			return r.decide(d.Stanza)
		})}}
}
func (r *recorder) SessionStarted(ctx context.Context, s *server.Session) {
	r.add(r.name + ":start " + s.JID().Resourcepart())
}
func (r *recorder) SessionEnded(ctx context.Context, s *server.Session) {
	r.add(r.name + ":end " + s.JID().Resourcepart())
}
func (r *recorder) AccountCreated(ctx context.Context, u jid.JID) {
	r.add(r.name + ":created " + u.String())
}
func (r *recorder) AccountDeleted(ctx context.Context, u jid.JID) {
	r.add(r.name + ":deleted " + u.String())
}
func (r *recorder) StreamFeatures() []server.StreamFeature {
	return []server.StreamFeature{{Element: func() xml.TokenReader {
		return stanza.Elem(xml.Name{Space: nsTest, Local: r.name}, nil)
	}}}
}
func (r *recorder) HTTPRoutes() []server.HTTPRoute {
	return []server.HTTPRoute{{Pattern: "/" + r.name + "/", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(r.name))
	})}}
}
func (r *recorder) UserData() []string { return []string{"notes"} }
func (r *recorder) DeleteUser(ctx context.Context, u jid.JID) error {
	r.add(r.name + ":delete-data " + u.String())
	return nil
}
func (r *recorder) ExportUser(ctx context.Context, u jid.JID, w xmlstream.TokenWriter) error {
	_, err := xmlstream.Copy(w, stanza.TextElem(xml.Name{Space: nsTest, Local: "notes"}, r.name+" of "+u.Localpart()))
	return err
}

func (r *recorder) snapshot() []string {
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	return append([]string(nil), r.log.log...)
}

func (r *recorder) reset() {
	r.log.mu.Lock()
	r.log.log = nil
	r.log.mu.Unlock()
}

func TestModuleHooks(t *testing.T) {
	log := &journal{}
	first := &recorder{name: "first", log: log, decide: func(st *stanza.Stanza) error {
		if b, _ := st.ChildText(xml.Name{Local: "body"}); b == "refuse" {
			return mstanza.Error{Type: mstanza.Modify, Condition: mstanza.PolicyViolation}
		}
		return nil
	}}
	second := &recorder{name: "second", log: log, decide: func(st *stanza.Stanza) error {
		if b, _ := st.ChildText(xml.Name{Local: "body"}); b == "swallow" {
			return server.ErrHandled
		}
		return nil
	}}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{first, second}})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Connect(t, withRes(alice, "desk"), "pw")
	b := srv.Connect(t, bob, "pw")
	b.Send(presence())
	b.Sync()

	// Send routes of equal priority run in module order; a stanza error
	// bounces, ErrHandled stops routing, nil lets the stanza through.
	first.reset()
	a.Send(message(bob, "x1", "refuse"))
	if r := a.Expect(servertest.ByID("x1")); errorCondition(r) != "policy-violation" {
		t.Fatalf("refused message: %q", errorCondition(r))
	}
	a.Send(message(bob, "x2", "swallow"))
	a.Sync() // x2 was routed, or not
	b.SyncNone(servertest.Body("swallow"))
	a.Send(message(bob, "x3", "pass"))
	b.Expect(servertest.Body("pass"))
	want := []string{"first:intercept", "first:intercept", "second:intercept", "first:intercept", "second:intercept"}
	if got := first.snapshot(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("interceptor calls %v, want %v", got, want)
	}

	// Stream features of modules are offered after authentication.
	r := dialRaw(t, srv.Addr)
	r.startTLS()
	r.authPlain("alice", "pw")
	r.send(header)
	feats := r.expect("</stream:features>")
	for _, want := range []string{`<first xmlns="urn:kiez:test"/>`, `<second xmlns="urn:kiez:test"/>`} {
		if !strings.Contains(feats, want) {
			t.Fatalf("features lack %s: %s", want, feats)
		}
	}

	// HTTP routes are served by HTTPHandler.
	rec := httptest.NewRecorder()
	srv.HTTPHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/second/x", nil))
	if rec.Body.String() != "second" {
		t.Fatalf("HTTP route: %q", rec.Body.String())
	}

	// Export writes every owner's data inside one XEP-0227 <user/>.
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if err := srv.ExportUser(t.Context(), alice, enc); err != nil {
		t.Fatal(err)
	}
	enc.Flush()
	for _, want := range []string{`<server-data xmlns="urn:xmpp:pie:0"><host jid="localhost"><user name="alice">`, `>first of alice</notes>`, `>second of alice</notes>`} {
		if !strings.Contains(buf.String(), want) {
			t.Fatalf("export lacks %s: %s", want, buf.String())
		}
	}

	// Session and account listeners.
	first.reset()
	carol := jid.MustParse("carol@localhost")
	if err := srv.CreateUser(t.Context(), carol, "pw"); err != nil {
		t.Fatal(err)
	}
	c := srv.Connect(t, withRes(carol, "phone"), "pw")
	c.Sync()
	if err := srv.DeleteUser(t.Context(), carol); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	// DeleteUser returns once the session has ended: its listeners ran
	// before any data was deleted.
	got := strings.Join(first.snapshot(), ",")
	for _, want := range []string{
		"first:created carol@localhost,second:created carol@localhost",
		"first:start phone,second:start phone",
		"first:end phone,second:end phone,first:delete-data carol@localhost,second:delete-data carol@localhost",
		"first:deleted carol@localhost,second:deleted carol@localhost",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("listener calls %s lack %s", got, want)
		}
	}
}

func TestHTTPRouteClash(t *testing.T) {
	log := &journal{}
	_, err := server.New(context.Background(), server.Config{Domains: []string{"localhost"}, Accounts: memoryStore(),
		Modules: []server.Module{&recorder{name: "x", log: log}, &clash{recorder{name: "y", log: log}}}})
	if err == nil || !strings.Contains(err.Error(), "modules x and y both serve HTTP") {
		t.Fatalf("New: %v", err)
	}
}

type clash struct{ recorder }

func (c *clash) HTTPRoutes() []server.HTTPRoute {
	return []server.HTTPRoute{{Pattern: "/x/", Handler: http.NotFoundHandler()}}
}

// hasDescendant reports whether st has an element named n at any depth.
func hasDescendant(st *stanza.Stanza, n xml.Name) bool {
	for _, t := range st.Inner {
		if se, ok := t.(xml.StartElement); ok && se.Name == n {
			return true
		}
	}
	return false
}

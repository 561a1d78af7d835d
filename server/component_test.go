package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/filter/ipfilter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/metrics"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

const (
	bridgeDomain = "bridge.localhost"
	bridgeSecret = "a bridge's secret"
)

// startWithComponents starts a test server with cfg and the component
// bridge.localhost, and serves components on a loopback listener whose
// address it returns.
func startWithComponents(t *testing.T, cfg server.Config) (*servertest.Server, string) {
	t.Helper()
	if cfg.Components == nil {
		cfg.Components = []server.Component{{Domain: bridgeDomain, Secret: bridgeSecret, Name: "Bridge"}}
	}
	srv := servertest.Start(t, cfg)
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeComponents(ln)
	return srv, ln.Addr().String()
}

var streamID = regexp.MustCompile(`id='([^']+)'`)

// componentHeader opens a component stream to domain on a raw
// connection and returns the stream id the server answers with.
func componentHeader(t *testing.T, addr, domain string) (*rawClient, string) {
	t.Helper()
	r := dialRaw(t, addr)
	r.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='` + domain + `'>`)
	got := r.expect(">")
	m := streamID.FindStringSubmatch(got)
	if m == nil {
		return r, ""
	}
	return r, m[1]
}

func handshake(id, secret string) string {
	sum := sha1.Sum([]byte(id + secret))
	return "<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>"
}

// connectComponent attaches a raw component as bridge.localhost.
func connectComponent(t *testing.T, addr string) *rawClient {
	t.Helper()
	r, id := componentHeader(t, addr, bridgeDomain)
	if id == "" {
		t.Fatal("no stream id in the server's header")
	}
	r.send(handshake(id, bridgeSecret))
	r.expect("<handshake/>")
	return r
}

// TestComponent: an external component exchanges messages and iqs with a
// local user, and the server lists it in its disco#items.
func TestComponent(t *testing.T) {
	srv, addr := startWithComponents(t, server.Config{})
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw")
	a.Send(presence())
	a.Sync()
	comp := connectComponent(t, addr)

	// User to component: to an address at its domain.
	a.Send(message(jid.MustParse("tom@"+bridgeDomain), "m1", "hello tom"))
	got := comp.expect("</message>")
	if !strings.Contains(got, "hello tom") || !strings.Contains(got, `from="`+a.LocalAddr().String()+`"`) ||
		!strings.Contains(got, `to="tom@`+bridgeDomain+`"`) {
		t.Fatalf("component got %q", got)
	}

	// Component to user, from an address at its domain.
	comp.send(`<message from='tom@` + bridgeDomain + `/irc' to='` + a.LocalAddr().String() + `' type='chat' id='m2'><body>hi alice</body></message>`)
	m := a.Expect(servertest.Body("hi alice"))
	if m.From.String() != "tom@"+bridgeDomain+"/irc" {
		t.Fatalf("message from %s", m.From)
	}

	// An iq from the user to the component and its answer.
	ping := xml.Name{Space: "urn:xmpp:ping", Local: "ping"}
	a.Send(iq("get", jid.MustParse(bridgeDomain), "q1", ping))
	got = comp.expect("</iq>")
	if !strings.Contains(got, `id="q1"`) || !strings.Contains(got, "urn:xmpp:ping") {
		t.Fatalf("component got %q", got)
	}
	comp.send(`<iq type='result' id='q1' from='` + bridgeDomain + `' to='` + a.LocalAddr().String() + `'/>`)
	if res := a.Expect(servertest.ByID("q1")); res.Type != stanza.Result || res.From.String() != bridgeDomain {
		t.Fatalf("answer %s from %s", res.Type, res.From)
	}

	// The server's disco#items lists the component, with its name.
	a.Send(iq("get", jid.MustParse("localhost"), "items", xml.Name{Space: server.NSDiscoItems, Local: "query"}))
	items := a.Expect(servertest.ByID("items"))
	var b strings.Builder
	items.WriteTo(&b)
	if !strings.Contains(b.String(), `jid="`+bridgeDomain+`"`) || !strings.Contains(b.String(), `name="Bridge"`) {
		t.Fatalf("disco#items: %s", b.String())
	}

	// A stanza without 'to' is refused with bad-request.
	comp.send(`<message from='tom@` + bridgeDomain + `' id='m3'><body>nowhere</body></message>`)
	if got := comp.expect("</message>"); !strings.Contains(got, "bad-request") {
		t.Fatalf("component got %q", got)
	}

	// The component closes its stream: stanzas to it bounce.
	comp.send(`</stream:stream>`)
	comp.expectClosed()
	a.Send(message(jid.MustParse("tom@"+bridgeDomain), "m4", "anyone?"))
	if e := a.Expect(servertest.ByID("m4")); e.Type != "error" || errorCondition(e) != "service-unavailable" {
		t.Fatalf("bounce %s %s", e.Type, errorCondition(e))
	}
}

// TestComponentHandshakeRefused: a wrong secret or an unknown domain ends
// the stream with a stream error.
func TestComponentHandshakeRefused(t *testing.T) {
	_, addr := startWithComponents(t, server.Config{})
	for _, tc := range []struct {
		name, domain, secret, cond string
	}{
		{"wrong secret", bridgeDomain, "guess", "not-authorized"},
		{"unknown domain", "other.localhost", bridgeSecret, "host-unknown"},
		{"served domain", "localhost", bridgeSecret, "host-unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cond == "host-unknown" {
				// The server answers the header with the error.
				r := dialRaw(t, addr)
				r.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='` + tc.domain + `'>`)
				r.streamError(tc.cond)
				return
			}
			r, id := componentHeader(t, addr, tc.domain)
			r.send(handshake(id, tc.secret))
			r.streamError(tc.cond)
		})
	}
	t.Run("no handshake", func(t *testing.T) {
		r, _ := componentHeader(t, addr, bridgeDomain)
		r.send(`<message to='alice@localhost' from='tom@` + bridgeDomain + `'><body>x</body></message>`)
		r.streamError("not-authorized")
	})
}

// TestComponentFromChecked: a component may only send from addresses at
// its domain.
func TestComponentFromChecked(t *testing.T) {
	srv, addr := startWithComponents(t, server.Config{})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Connect(t, alice, "pw")
	a.Send(presence())
	a.Sync()
	for _, from := range []string{bob.String(), "localhost", "x.bridge.localhost", ""} {
		t.Run(from, func(t *testing.T) {
			comp := connectComponent(t, addr)
			attr := ""
			if from != "" {
				attr = ` from='` + from + `'`
			}
			comp.send(`<message` + attr + ` to='` + alice.String() + `' id='spoof'><body>spoofed</body></message>`)
			comp.streamError("invalid-from")
		})
	}
	a.SyncNone(servertest.Body("spoofed"))
}

// TestComponentReplaced: a new connection for the component replaces the
// old one, which ends with conflict.
func TestComponentReplaced(t *testing.T) {
	srv, addr := startWithComponents(t, server.Config{})
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw")
	first := connectComponent(t, addr)
	second := connectComponent(t, addr)
	first.streamError("conflict")
	a.Send(message(jid.MustParse("tom@"+bridgeDomain), "m1", "to the second"))
	if got := second.expect("</message>"); !strings.Contains(got, "to the second") {
		t.Fatalf("second component got %q", got)
	}
}

// TestComponentFilters: stanzas from a component pass the recipient's
// side of the filters, with origin Component.
func TestComponentFilters(t *testing.T) {
	refuse := filter.Func(func(ctx context.Context, p filter.Packet) (*stanza.Stanza, error) {
		if b, _ := p.Stanza.ChildText(xml.Name{Local: "body"}); p.Origin == filter.Component && p.Phase == filter.Receive && b == "spam" {
			return nil, mstanza.Error{Type: mstanza.Modify, Condition: mstanza.PolicyViolation}
		}
		return p.Stanza, nil
	})
	srv, addr := startWithComponents(t, server.Config{Filters: []filter.Filter{refuse}})
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw")
	a.Send(presence())
	a.Sync()
	comp := connectComponent(t, addr)
	comp.send(`<message from='tom@` + bridgeDomain + `' to='` + alice.String() + `' id='s1'><body>spam</body></message>`)
	if got := comp.expect("</message>"); !strings.Contains(got, "policy-violation") || !strings.Contains(got, `type="error"`) {
		t.Fatalf("component got %q", got)
	}
	comp.send(`<message from='tom@` + bridgeDomain + `' to='` + alice.String() + `' id='s2'><body>ham</body></message>`)
	a.ExpectNoneUntil(servertest.Body("spam"), servertest.Body("ham"))
}

// TestComponentLimits: the maximal stanza size applies to components.
func TestComponentLimits(t *testing.T) {
	_, addr := startWithComponents(t, server.Config{Limits: server.Limits{MaxStanzaSize: 2048}})
	comp := connectComponent(t, addr)
	comp.send(`<message from='tom@` + bridgeDomain + `' to='alice@localhost'><body>` + strings.Repeat("x", 4096) + `</body></message>`)
	comp.streamError("policy-violation")
}

// TestComponentConnFilter: the connection filter counts a wrong secret
// as a failed authentication; once the address is banned, component
// connections from it are closed before a byte is written, as clients'.
func TestComponentConnFilter(t *testing.T) {
	f, err := ipfilter.New(ipfilter.Options{AuthFailures: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, addr := startWithComponents(t, server.Config{ConnFilter: f})
	r, id := componentHeader(t, addr, bridgeDomain)
	r.send(handshake(id, "guess"))
	r.streamError("policy-violation")
	if got := dialRaw(t, addr).expectClosed(); got != "" {
		t.Fatalf("banned connection got %q", got)
	}
}

// TestComponentConfig: a component's domain may not clash with a served
// domain or a module's service, and needs a secret.
func TestComponentConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    server.Component
		want string
	}{
		{"served domain", server.Component{Domain: "localhost", Secret: "s"}, "served domain"},
		{"service", server.Component{Domain: "rooms.localhost", Secret: "s"}, "module rooms"},
		{"no secret", server.Component{Domain: bridgeDomain}, "no secret"},
		{"address", server.Component{Domain: "tom@" + bridgeDomain, Secret: "s"}, "invalid component domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := server.Config{Domains: []string{"localhost"}, Accounts: memory.New(), Modules: []server.Module{rooms{routes: roomRoutes()}},
				Components: []server.Component{tc.c}}
			_, err := server.New(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.c.Secret+"\"") && tc.c.Secret != "" {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
	dup := []server.Component{{Domain: bridgeDomain, Secret: "a"}, {Domain: bridgeDomain, Secret: "b"}}
	if _, err := server.New(context.Background(), server.Config{Domains: []string{"localhost"}, Accounts: memory.New(), Components: dup}); err == nil {
		t.Fatal("New accepted a component listed twice")
	}
}

// TestComponentMellium: mellium's component package (the component side
// of XEP-0114) attaches, and its message reaches a local user.
func TestComponentMellium(t *testing.T) {
	srv, addr := startWithComponents(t, server.Config{})
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw")
	a.Send(presence())
	a.Sync()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := component.NewSession(ctx, jid.MustParse(bridgeDomain), []byte(bridgeSecret), conn)
	if err != nil {
		t.Fatalf("component handshake: %v", err)
	}
	defer sess.Close()
	msg := message(a.LocalAddr(), "mm", "from mellium")
	msg.From = jid.MustParse("bot@" + bridgeDomain)
	if err := sess.Send(context.Background(), msg.TokenReader()); err != nil {
		t.Fatal(err)
	}
	a.Expect(servertest.Body("from mellium"))
}

// TestSlixmppComponent: Debian's slixmpp attaches as a component
// (ComponentXMPP), writes to a local user, answers the user's disco#info
// query and replies to the user's message.
func TestSlixmppComponent(t *testing.T) {
	py := requireSlixmpp(t)
	srv, addr := startWithComponents(t, server.Config{})
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Connect(t, alice, "pw")
	a.Send(presence())
	a.Sync()

	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "../testdata/interop/slixmpp_component.py", bridgeDomain, host, port, a.LocalAddr().String())
	cmd.Env = append(os.Environ(), "KIEZ_TEST_SECRET="+bridgeSecret)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hello := a.Expect(servertest.Body("hello from a slixmpp component"))
	if hello.From.String() != "bot@"+bridgeDomain {
		t.Fatalf("message from %s", hello.From)
	}
	a.Send(iq("get", jid.MustParse(bridgeDomain), "info", xml.Name{Space: server.NSDiscoInfo, Local: "query"}))
	if res := a.Expect(servertest.ByID("info")); res.Type != stanza.Result || res.From.String() != bridgeDomain {
		t.Fatalf("disco#info answer %s from %s", res.Type, res.From)
	}
	a.Send(message(hello.From, "m1", "hello component"))
	bye := a.Expect(servertest.Body("bye from the component"))
	if !bye.From.Equal(hello.From) {
		t.Fatalf("bye from %s", bye.From)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("slixmpp component: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "GOT "+a.LocalAddr().String()+" TO bot@"+bridgeDomain) {
		t.Fatalf("slixmpp did not see our message:\n%s", out.String())
	}
}

// TestComponentShutdown: at shutdown, a component's stream ends with
// system-shutdown, and one still in its handshake too.
func TestComponentShutdown(t *testing.T) {
	srv, addr := startWithComponents(t, server.Config{})
	comp := connectComponent(t, addr)
	pending, _ := componentHeader(t, addr, bridgeDomain)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	comp.streamError("system-shutdown")
	pending.streamError("system-shutdown")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestComponentMetrics: kiez_components_connected counts the attached
// components.
func TestComponentMetrics(t *testing.T) {
	reg := metrics.NewRegistry()
	_, addr := startWithComponents(t, server.Config{Metrics: reg})
	gauge := func() string {
		var b strings.Builder
		if err := reg.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(line, "kiez_components_connected ") {
				return line
			}
		}
		t.Fatalf("no kiez_components_connected in\n%s", b.String())
		return ""
	}
	if g := gauge(); g != "kiez_components_connected 0" {
		t.Fatalf("before: %s", g)
	}
	connectComponent(t, addr)
	if g := gauge(); g != "kiez_components_connected 1" {
		t.Fatalf("attached: %s", g)
	}
}

// BenchmarkComponentDelivery: chat messages from a local user's session
// to an attached component, over loopback, from the client's write to
// the component's read (the client library's encoding included).
func BenchmarkComponentDelivery(b *testing.B) {
	// The client's read rate limit off: it would measure itself.
	srv := servertest.Start(b, server.Config{Components: []server.Component{{Domain: bridgeDomain, Secret: bridgeSecret}},
		Limits: server.Limits{ReadRateAuthenticated: -1}})
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.ServeComponents(ln)
	alice := srv.AddUser(b, "alice", "pw")
	a := srv.Connect(b, alice, "pw")

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	fmt.Fprint(c, `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='`+bridgeDomain+`'>`)
	r.ReadString('>')
	header, _ := r.ReadString('>')
	m := streamID.FindStringSubmatch(header)
	if m == nil {
		b.Fatalf("header %q", header)
	}
	fmt.Fprint(c, handshake(m[1], bridgeSecret))
	if s, err := r.ReadString('>'); err != nil || s != "<handshake/>" {
		b.Fatalf("handshake: %q %v", s, err)
	}
	got := make(chan error, 1)
	go func() {
		// Count the messages' end tags.
		n := 0
		for n < b.N {
			s, err := r.ReadString('>')
			if err != nil {
				got <- err
				return
			}
			if strings.HasSuffix(s, "</message>") {
				n++
			}
		}
		got <- nil
	}()
	msg := message(jid.MustParse("tom@"+bridgeDomain), "m", "a message of a typical length for a chat, some forty to sixty characters")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		a.Send(msg)
	}
	if err := <-got; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

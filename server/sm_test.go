package server_test

import (
	"context"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// smClient is a raw client that can drop its TCP connection without
// closing its stream, and match what it reads against patterns.
type smClient struct {
	*rawClient
	tcp  net.Conn
	pend string
}

func dialSM(t *testing.T, addr string) *smClient {
	t.Helper()
	r := dialRaw(t, addr)
	return &smClient{rawClient: r, tcp: r.c}
}

// auth negotiates TLS and SASL PLAIN and returns the features offered
// after authentication.
func (c *smClient) auth(user, pass string) string {
	c.t.Helper()
	c.startTLS()
	if got := c.authPlain(user, pass); !strings.Contains(got, "<success") {
		c.t.Fatalf("auth: %q", got)
	}
	c.send(header)
	return c.expect("</stream:features>")
}

func (c *smClient) bind(res string) {
	c.t.Helper()
	c.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + res + `</resource></bind></iq>`)
	c.await(`<jid>[^<]*/` + regexp.QuoteMeta(res) + `</jid>`)
	c.await(`</iq>`)
}

// enable enables stream management with resumption and returns the id.
func (c *smClient) enable() string {
	c.t.Helper()
	c.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	m := c.await(`<enabled xmlns=['"]urn:xmpp:sm:3['"] id=['"]([^'"]+)['"] resume=['"]true['"] max=['"](\d+)['"]/>`)
	return m[1]
}

// login connects user/res with stream management and initial presence.
func (c *smClient) login(user, res string) string {
	c.t.Helper()
	c.auth(user, "pw")
	c.bind(res)
	id := c.enable()
	c.send(`<presence/>`)
	return id
}

// read reads until the pattern matches and returns what came before the
// match and the submatches; what follows is kept.
func (c *smClient) read(pattern string) (before string, m []string) {
	c.t.Helper()
	rx := regexp.MustCompile(pattern)
	// Only a guard against a hang: the test waits for what it reads.
	c.c.SetReadDeadline(time.Now().Add(patience))
	b := make([]byte, 4096)
	for {
		if loc := rx.FindStringSubmatchIndex(c.pend); loc != nil {
			m := make([]string, len(loc)/2)
			for i := range m {
				if loc[2*i] >= 0 {
					m[i] = c.pend[loc[2*i]:loc[2*i+1]]
				}
			}
			before = c.pend[:loc[0]]
			c.pend = c.pend[loc[1]:]
			return before, m
		}
		n, err := c.c.Read(b)
		c.pend += string(b[:n])
		if err != nil && rx.FindStringIndex(c.pend) == nil {
			c.t.Fatalf("waiting for %s: %v; got %q", pattern, err, c.pend)
		}
	}
}

// await reads until the pattern matches and returns its submatches; what
// came before the match is dropped, what follows is kept.
func (c *smClient) await(pattern string) []string {
	c.t.Helper()
	_, m := c.read(pattern)
	return m
}

// until reads until the pattern matches and returns everything read up to
// the end of the match.
func (c *smClient) until(pattern string) string {
	c.t.Helper()
	before, m := c.read(pattern)
	return before + m[0]
}

// mark asks for an acknowledgement on a stream with stream management and
// returns what the server wrote before its answer. The answer is queued
// behind everything queued for the client before the server read the
// request, so what mark returns holds every stanza the server had sent
// the client by then, with no time window. The answer is no stanza: client
// state indication neither holds it back nor flushes for it, and stream
// management does not count it.
func (c *smClient) mark() string {
	c.t.Helper()
	c.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	before, _ := c.read(`<a xmlns='urn:xmpp:sm:3' h='\d+'/>`)
	return before
}

// drop closes the TCP connection without closing the stream or TLS.
func (c *smClient) drop() { c.tcp.Close() }

func (c *smClient) message(to, body string) {
	c.send(`<message to='` + to + `' type='chat' id='` + body + `'><body>` + body + `</body></message>`)
}

// smProbe is a test module: it follows sessions, stores undelivered
// messages in memory and hands them to the next available session of
// their user. It also records the server's log messages, and signals
// every change.
type smProbe struct {
	signal
	mu      sync.Mutex
	host    server.Host
	started []*server.Session
	ended   []*server.Session
	stored  []*stanza.Stanza
	logs    []string
}

func (p *smProbe) Name() string { return "smprobe" }

func (p *smProbe) Init(_ context.Context, h server.Host) error { p.host = h; return nil }

func (p *smProbe) SessionStarted(_ context.Context, s *server.Session) {
	defer p.notify()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started = append(p.started, s)
}

func (p *smProbe) SessionEnded(_ context.Context, s *server.Session) {
	defer p.notify()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ended = append(p.ended, s)
}

func (p *smProbe) HandleUndelivered(_ context.Context, st *stanza.Stanza) (bool, error) {
	if st.Kind != stanza.Message {
		return false, nil
	}
	defer p.notify()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stored = append(p.stored, st)
	return true, nil
}

func (p *smProbe) SessionAvailable(_ context.Context, s *server.Session) {
	p.mu.Lock()
	var keep []*stanza.Stanza
	var send []*stanza.Stanza
	for _, st := range p.stored {
		if st.To.Bare().Equal(s.JID().Bare()) {
			send = append(send, st)
		} else {
			keep = append(keep, st)
		}
	}
	p.stored = keep
	p.mu.Unlock()
	for _, st := range send {
		s.Send(st)
	}
}

func (p *smProbe) counts() (started, ended, stored int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.started), len(p.ended), len(p.stored)
}

// The server's log message when a resumable session loses its connection.
const logDetached = "session detached, waiting for resumption"

// logged returns how often the server logged msg.
func (p *smProbe) logged(msg string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, m := range p.logs {
		if m == msg {
			n++
		}
	}
	return n
}

// logger returns a logger that records messages of every level in p.
func (p *smProbe) logger() *slog.Logger { return slog.New(probeLog{p}) }

type probeLog struct{ p *smProbe }

func (probeLog) Enabled(context.Context, slog.Level) bool { return true }
func (h probeLog) Handle(_ context.Context, r slog.Record) error {
	defer h.p.notify()
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	h.p.logs = append(h.p.logs, r.Message)
	return nil
}
func (h probeLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h probeLog) WithGroup(string) slog.Handler      { return h }

var (
	_ server.UndeliveredHandler   = (*smProbe)(nil)
	_ server.AvailabilityListener = (*smProbe)(nil)
	_ server.SessionEnder         = (*smProbe)(nil)
)

// patience bounds the tests' waits for events. It is no deadline a
// working server has to beat, only a guard that turns a hang into a
// failure.
const patience = 30 * time.Second

// signal tells waiters that some state changed; whoever changes it calls
// notify afterwards.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// changed returns a channel closed by the next notify.
func (s *signal) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// waitFor waits until cond holds, checking it again whenever sig reports a
// change.
func waitFor(t testing.TB, what string, sig *signal, cond func() bool) {
	t.Helper()
	guard := time.NewTimer(patience)
	defer guard.Stop()
	for {
		changed := sig.changed() // before cond: a change in between is not missed
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-guard.C:
			t.Fatalf("still waiting for %s after %v: hung?", what, patience)
		}
	}
}

func startSM(t *testing.T, resume time.Duration) (*servertest.Server, *smProbe) {
	t.Helper()
	p := &smProbe{}
	cfg := serverConfig()
	cfg.Logger = p.logger()
	cfg.Modules = []server.Module{p}
	cfg.Limits.ResumeTimeout = resume
	srv := servertest.Start(t, cfg)
	srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	return srv, p
}

func TestSMEnableAndAcks(t *testing.T) {
	srv, _ := startSM(t, 0)
	a := dialSM(t, srv.Addr)
	feats := a.auth("alice", "pw")
	for _, f := range []string{`<sm xmlns='urn:xmpp:sm:3'/>`, `<csi xmlns='urn:xmpp:csi:0'/>`} {
		if !strings.Contains(feats, f) {
			t.Errorf("features lack %s: %q", f, feats)
		}
	}
	// Before binding: refused, and the stream goes on.
	a.send(`<enable xmlns='urn:xmpp:sm:3'/>`)
	a.await(`<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>`)
	a.bind("one")
	a.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	m := a.await(`<enabled xmlns='urn:xmpp:sm:3' id='([^']+)' resume='true' max='(\d+)'/>`)
	if len(m[1]) < 22 {
		t.Errorf("resumption id %q is too short to be unguessable", m[1])
	}
	if m[2] != "300" {
		t.Errorf("max = %s, want 300 (the default ResumeTimeout)", m[2])
	}
	a.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	a.await(`<failed xmlns='urn:xmpp:sm:3'><unexpected-request `)

	a.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	a.await(`<a xmlns='urn:xmpp:sm:3' h='0'/>`)
	a.send(`<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	a.await(`id=['"]d1['"]`)
	// The server asks for an acknowledgement of what it sent.
	a.await(`<r xmlns='urn:xmpp:sm:3'/>`)
	a.send(`<a xmlns='urn:xmpp:sm:3' h='1'/><r xmlns='urn:xmpp:sm:3'/>`)
	a.await(`<a xmlns='urn:xmpp:sm:3' h='1'/>`)
	// Acknowledging more than was sent ends the stream.
	a.send(`<a xmlns='urn:xmpp:sm:3' h='3'/>`)
	got := a.expectClosed()
	if !strings.Contains(a.pend+got, `<undefined-condition xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`) ||
		!strings.Contains(a.pend+got, `<handled-count-too-high xmlns='urn:xmpp:sm:3' h='3' send-count='1'/>`) {
		t.Fatalf("want undefined-condition with handled-count-too-high; got %q", a.pend+got)
	}
}

func TestSMWithoutResumption(t *testing.T) {
	srv, _ := startSM(t, 0)
	a := dialSM(t, srv.Addr)
	a.auth("alice", "pw")
	a.bind("one")
	a.send(`<enable xmlns='urn:xmpp:sm:3'/>`)
	a.await(`<enabled xmlns='urn:xmpp:sm:3'/>`)
	a.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	a.await(`<a xmlns='urn:xmpp:sm:3' h='0'/>`)
	// Unknown elements are still refused as before.
	a.send(`<foo xmlns='urn:xmpp:sm:3'/>`)
	if got := a.expectClosed(); !strings.Contains(a.pend+got, "<unsupported-stanza-type ") {
		t.Fatalf("got %q", a.pend+got)
	}
}

func TestSMResumeAfterDrop(t *testing.T) {
	srv, probe := startSM(t, 0)
	a := dialSM(t, srv.Addr)
	id := a.login("alice", "one")
	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")

	b.message("alice@localhost/one", "m1")
	a.await(`<body>m1</body>`)
	a.await(`<r xmlns='urn:xmpp:sm:3'/>`)
	// Alice handled m1 but the connection dies before she says so.
	a.drop()
	b.message("alice@localhost/one", "m2")
	b.message("alice@localhost", "m3")
	b.sync("s1") // m2 and m3 reached alice's session

	a2 := dialSM(t, srv.Addr)
	a2.auth("alice", "pw")
	a2.send(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`)
	// The server handled one stanza from alice: her presence.
	a2.await(`<resumed xmlns='urn:xmpp:sm:3' previd='` + regexp.QuoteMeta(id) + `' h='1'/>`)
	// What is resent is queued before the answer to a request read after
	// <resume/>.
	got := a2.mark()
	for _, body := range []string{"m1", "m2", "m3"} {
		if n := strings.Count(got, "<body>"+body+"</body>"); n != 1 {
			t.Errorf("%s arrived %d times after resumption; got %q", body, n, got)
		}
	}
	if i1, i2 := strings.Index(got, "m1</body>"), strings.Index(got, "m2</body>"); i1 > i2 {
		t.Errorf("m1 after m2: %q", got)
	}
	// Acknowledge all three: more would be too many.
	a2.send(`<a xmlns='urn:xmpp:sm:3' h='3'/><r xmlns='urn:xmpp:sm:3'/>`)
	a2.await(`<a xmlns='urn:xmpp:sm:3' h='1'/>`)

	// The same session goes on: one SessionStarted, no SessionEnded, and
	// the server's session is the one modules saw.
	started, ended, stored := probe.counts()
	if started != 2 || ended != 0 || stored != 0 { // alice and bob
		t.Fatalf("started %d ended %d stored %d; want 2 0 0", started, ended, stored)
	}
	sessions := probe.host.Sessions(jid.MustParse("alice@localhost"))
	if len(sessions) != 1 || sessions[0] != probe.started[0] || !sessions[0].Available() {
		t.Fatalf("alice's sessions after resumption: %v", sessions)
	}

	// It works both ways on the new connection.
	a2.message("bob@localhost/pc", "hi-bob")
	b.await(`<body>hi-bob</body>`)
	b.message("alice@localhost/one", "m4")
	a2.await(`<body>m4</body>`)
	// The resumed stream may not bind or resume again.
	a2.send(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`)
	a2.await(`<failed xmlns='urn:xmpp:sm:3'><unexpected-request `)
}

func TestSMResumeAcknowledgedNotResent(t *testing.T) {
	srv, _ := startSM(t, 0)
	a := dialSM(t, srv.Addr)
	id := a.login("alice", "one")
	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")
	b.message("alice@localhost/one", "m1")
	a.await(`<body>m1</body>`)
	a.drop()
	b.message("alice@localhost/one", "m2")
	b.sync("s1")

	a2 := dialSM(t, srv.Addr)
	a2.auth("alice", "pw")
	a2.send(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='1'/>`)
	a2.await(`<resumed `)
	got := a2.mark()
	if strings.Contains(got, "m1</body>") || strings.Count(got, "<body>m2</body>") != 1 {
		t.Fatalf("want only m2 once (m1 was acknowledged by h=1); got %q", got)
	}
}

func TestSMResumeReplacesLiveConnection(t *testing.T) {
	srv, _ := startSM(t, 0)
	a := dialSM(t, srv.Addr)
	id := a.login("alice", "one")
	a.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	a.await(`<a xmlns='urn:xmpp:sm:3' h='1'/>`)

	a2 := dialSM(t, srv.Addr)
	a2.auth("alice", "pw")
	a2.send(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`)
	a2.await(`<resumed xmlns='urn:xmpp:sm:3' previd='[^']+' h='1'/>`)
	if got := a.expectClosed(); !strings.Contains(a.pend+got, "<conflict ") {
		t.Errorf("the replaced connection got %q, want a conflict stream error", a.pend+got)
	}

	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")
	b.message("alice@localhost/one", "m1")
	a2.await(`<body>m1</body>`)
}

func TestSMResumeFailures(t *testing.T) {
	srv, _ := startSM(t, 0)
	a := dialSM(t, srv.Addr)
	id := a.login("alice", "one")
	a.drop()

	for _, tc := range []struct{ name, user, previd string }{
		{"unknown id", "alice", "bm90LWFuLWlk"},
		{"another account's id", "bob", id},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialSM(t, srv.Addr)
			c.auth(tc.user, "pw")
			c.send(`<resume xmlns='urn:xmpp:sm:3' previd='` + tc.previd + `' h='0'/>`)
			c.await(`<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>`)
			// Binding still works.
			c.bind("fresh")
			c.send(`<r xmlns='urn:xmpp:sm:3'/>`)
			c.await(`<failed xmlns='urn:xmpp:sm:3'><unexpected-request `)
		})
	}
}

// A session never resumed ends at the timeout: its presence stays until
// then, and its unacknowledged message goes to the user's other resource.
// The timeout is long: the test checks what happens before it, then fires
// the session's timer itself.
func TestSMTimeoutRedeliversToOtherResource(t *testing.T) {
	srv, probe := startSM(t, time.Hour)
	two := dialSM(t, srv.Addr)
	two.auth("alice", "pw")
	two.bind("two")
	two.send(`<presence/>`)
	a := dialSM(t, srv.Addr)
	a.login("alice", "one")
	two.await(`<presence from=['"]alice@localhost/one['"]`)
	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")

	b.message("alice@localhost/one", "m1")
	a.await(`<body>m1</body>`)
	a.drop()
	b.message("alice@localhost/one", "m2")
	b.sync("s1") // m2 reached alice/one's session
	waitFor(t, "the session to detach", &probe.signal, func() bool { return probe.logged(logDetached) == 1 })
	// The server writes to alice/two in order: had the drop ended the
	// session, or had m1 or m2 gone to alice/two, they would come before
	// the answer to this sync.
	if got := two.sync("q1"); strings.Contains(got, "unavailable") || strings.Contains(got, "<body>") {
		t.Fatalf("before the timeout alice/two got %q", got)
	}
	if s := probe.host.Sessions(jid.MustParse("alice@localhost")); len(s) != 2 || !s[0].Available() || !s[1].Available() {
		t.Fatalf("the detached session should stay bound and available")
	}
	if n := srv.ExpireDetachedNow(); n != 1 {
		t.Fatalf("%d sessions waiting for resumption, want 1", n)
	}
	got := two.until(`<presence [^>]*from=['"]alice@localhost/one['"][^>]*type=['"]unavailable['"]|<presence [^>]*type=['"]unavailable['"][^>]*from=['"]alice@localhost/one['"]`)
	waitFor(t, "the session to end", &probe.signal, func() bool { _, ended, _ := probe.counts(); return ended == 1 })
	got += two.sync("q2") // a duplicate would come before the answer
	if strings.Count(got, "<body>m1</body>") != 1 || strings.Count(got, "<body>m2</body>") != 1 ||
		strings.Index(got, "<body>m1") > strings.Index(got, "<body>m2") {
		t.Fatalf("want m1 then m2, once each; got %q", got)
	}
	_, ended, stored := probe.counts()
	if ended != 1 || stored != 0 {
		t.Fatalf("ended %d stored %d; want 1 0", ended, stored)
	}
}

// Without another resource, the unacknowledged message reaches the
// UndeliveredHandler and comes back at the next login; resuming after the
// timeout fails. The timer runs for real: the test waits for its effect,
// however long it takes.
func TestSMTimeoutRedeliversToStorage(t *testing.T) {
	srv, probe := startSM(t, 300*time.Millisecond)
	a := dialSM(t, srv.Addr)
	id := a.login("alice", "one")
	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")
	b.message("alice@localhost/one", "m1")
	a.await(`<body>m1</body>`)
	a.drop()
	waitFor(t, "the undelivered handler", &probe.signal, func() bool { _, _, stored := probe.counts(); return stored >= 1 })

	a2 := dialSM(t, srv.Addr)
	a2.auth("alice", "pw")
	a2.send(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`)
	a2.await(`<failed xmlns='urn:xmpp:sm:3'><item-not-found `)
	a2.bind("one")
	a2.send(`<presence/>`)
	got := a2.until(`<body>m1</body>`)
	got += a2.sync("q1") // a duplicate would come before the answer
	if n := strings.Count(got, "<body>"); n != 1 {
		t.Fatalf("want m1 once; got %q", got)
	}
}

// A client that closes its stream has its unacknowledged stanzas
// redelivered at once.
func TestSMCleanCloseRedelivers(t *testing.T) {
	srv, probe := startSM(t, 0)
	a := dialSM(t, srv.Addr)
	id := a.login("alice", "one")
	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")
	b.message("alice@localhost/one", "m1")
	a.await(`<body>m1</body>`)
	a.send(`</stream:stream>`)
	a.expectClosed()
	waitFor(t, "the undelivered handler", &probe.signal, func() bool { _, _, stored := probe.counts(); return stored == 1 })

	a2 := dialSM(t, srv.Addr)
	a2.auth("alice", "pw")
	a2.send(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`)
	a2.await(`<failed xmlns='urn:xmpp:sm:3'><item-not-found `)
}

// Unacknowledged stanzas count toward the queue limit: a client that never
// acknowledges is disconnected.
func TestSMUnackedBounded(t *testing.T) {
	p := &smProbe{}
	cfg := serverConfig()
	cfg.Modules = []server.Module{p}
	cfg.Limits.QueueSize = 4
	srv := servertest.Start(t, cfg)
	srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := dialSM(t, srv.Addr)
	a.login("alice", "one")
	a.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	a.await(`<a xmlns='urn:xmpp:sm:3' h='1'/>`)
	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")
	for i := range 8 {
		b.message("alice@localhost/one", "m"+string(rune('0'+i)))
	}
	got := a.expectClosed()
	if !strings.Contains(a.pend+got, "<policy-violation ") {
		t.Fatalf("want policy-violation; got %q", a.pend+got)
	}
	// What alice never acknowledged was not lost.
	waitFor(t, "the undelivered handler", &p.signal, func() bool { _, _, stored := p.counts(); return stored >= 4 })
}

// A graceful shutdown ends the sessions waiting for resumption and hands
// their unacknowledged messages to storage.
func TestSMShutdownRedelivers(t *testing.T) {
	srv, probe := startSM(t, 0)
	a := dialSM(t, srv.Addr)
	a.login("alice", "one")
	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")
	b.message("alice@localhost/one", "m1")
	a.await(`<body>m1</body>`)
	a.drop()
	b.message("alice@localhost/one", "m2")
	b.sync("s1")
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, ended, stored := probe.counts()
	if ended != 2 || stored != 2 {
		t.Fatalf("after shutdown: ended %d stored %d; want 2 2", ended, stored)
	}
}

// Many stanzas around a dropped connection: some are written to the dead
// socket, some queue while the session waits; after resumption each
// arrives exactly once, in order. Client state is active again.
func TestSMResumeManyInFlight(t *testing.T) {
	srv, _ := startSM(t, 0)
	a := dialSM(t, srv.Addr)
	id := a.login("alice", "one")
	a.send(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")
	b.send(`<presence to='alice@localhost'><show>away</show></presence>`) // held by CSI, then flushed by first
	b.message("alice@localhost/one", "first")
	a.await(`<body>first</body>`)
	a.drop()
	const n = 40
	for i := range n {
		b.message("alice@localhost/one", "n"+strconv.Itoa(i))
	}
	b.send(`<presence to='alice@localhost'><show>dnd</show></presence>`) // held again
	b.sync("s1")

	a2 := dialSM(t, srv.Addr)
	a2.auth("alice", "pw")
	a2.send(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`)
	a2.await(`<resumed `)
	got := a2.mark()
	last := -1
	for i := range n {
		body := "<body>n" + strconv.Itoa(i) + "</body>"
		if c := strings.Count(got, body); c != 1 {
			t.Fatalf("%s arrived %d times; got %q", body, c, got)
		}
		at := strings.Index(got, body)
		if at < last {
			t.Fatalf("%s out of order", body)
		}
		last = at
	}
	// h=0: what was written before the drop comes again, once.
	if strings.Count(got, "<show>away</show>") != 1 || strings.Count(got, "<body>first</body>") != 1 ||
		strings.Index(got, "away") > strings.Index(got, "<body>first") {
		t.Fatalf("want the presence and first once, in order; got %q", got)
	}
	// Held while inactive and detached: written after the rest.
	if strings.Count(got, "<show>dnd</show>") != 1 || strings.Index(got, "dnd") < last {
		t.Fatalf("want the held presence once, last; got %q", got)
	}
	// Active after resumption: a presence comes at once.
	b.send(`<presence to='alice@localhost'><show>xa</show></presence>`)
	a2.await(`<show>xa</show>`)
}

// Deleting an account whose session waits to be resumed ends the session
// and keeps nothing for the account: its unacknowledged message bounces to
// the sender instead of going to storage.
func TestSMDeleteAccountKeepsNothing(t *testing.T) {
	srv, probe := startSM(t, time.Minute)
	a := dialSM(t, srv.Addr)
	a.login("alice", "one")
	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")
	b.message("alice@localhost/one", "m1")
	a.await(`<body>m1</body>`)
	a.drop()
	waitFor(t, "the session to detach", &probe.signal, func() bool { return probe.logged(logDetached) == 1 })
	if err := srv.DeleteUser(t.Context(), jid.MustParse("alice@localhost")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session to end", &probe.signal, func() bool { _, ended, _ := probe.counts(); return ended == 1 })
	b.await(`type="error"`)
	if _, _, stored := probe.counts(); stored != 0 {
		t.Fatalf("%d messages stored for a deleted account", stored)
	}
}

package server

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/stanza"
)

// nsComponent is the content namespace of an external component's stream
// (XEP-0114).
const nsComponent = "jabber:component:accept"

// condInvalidFrom is the stream error for a component that sends from an
// address not at its domain (RFC 6120 §4.9.3.9).
const condInvalidFrom = "invalid-from"

// Component is an external component (XEP-0114) that may attach to the
// server: a gateway, bridge or bot (Slidge, Biboumi) running as its own
// process, which connects to a listener served with ServeComponents,
// names Domain in its stream header and proves that it knows Secret.
//
// While it is connected, the stanzas to Domain and to every address at it
// (user@bridge.example.org/res) go to its stream, and it sends stanzas
// from addresses at Domain, which take the path of a stanza from another
// server: the recipient's side only (filters, Receive routes, delivery).
// While it is not, stanzas to it bounce with service-unavailable.
type Component struct {
	// Domain is the component's address, such as "bridge.example.org"
	// (commonly, but not necessarily, a sub-domain of a virtual host).
	// It may be neither a virtual host nor a module's service.
	Domain string
	// Secret is the shared secret of the handshake. Never log it.
	Secret string
	// Name, if set, is the component's name in the server's disco#items.
	Name string
}

// LogValue keeps the secret out of logs.
func (c Component) LogValue() slog.Value { return slog.StringValue(c.Domain) }

// String returns the component's domain, never its secret.
func (c Component) String() string { return c.Domain }

// GoString returns the component's domain, never its secret (%#v).
func (c Component) GoString() string {
	return "server.Component{Domain: " + fmt.Sprintf("%q", c.Domain) + "}"
}

// component is a Component as the server keeps it, with its current
// stream.
type component struct {
	Component
	mu  sync.Mutex
	cur *compConn // the authenticated stream, or nil
}

// current returns the component's stream, or nil if it is not connected.
func (c *component) current() *compConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// attach makes cc the component's stream; a stream it replaces is closed
// with conflict (a component that lost its connection without the server
// noticing must be able to come back).
func (c *component) attach(cc *compConn) {
	c.mu.Lock()
	old := c.cur
	c.cur = cc
	c.mu.Unlock()
	if old != nil {
		old.close(streamErr(condConflict, "replaced by a new connection"))
	}
}

// detach forgets cc if it is still the component's stream.
func (c *component) detach(cc *compConn) {
	c.mu.Lock()
	if c.cur == cc {
		c.cur = nil
	}
	c.mu.Unlock()
}

// addComponents checks Config.Components and builds their table. It runs
// after the modules' services are known.
func (s *Server) addComponents() error {
	for _, c := range s.cfg.Components {
		j, err := jid.Parse(c.Domain)
		if err != nil || j.Localpart() != "" || j.Resourcepart() != "" || c.Domain == "" {
			return fmt.Errorf("server: invalid component domain %q", c.Domain)
		}
		d := j.Domainpart()
		switch {
		case c.Secret == "":
			return fmt.Errorf("server: component %s has no secret", d)
		case s.local[d]:
			return fmt.Errorf("server: component %s is a served domain", d)
		case s.services[d] != nil:
			return fmt.Errorf("server: component %s clashes with the service of module %s", d, s.services[d].module)
		case s.components[d] != nil:
			return fmt.Errorf("server: component %s listed twice", d)
		}
		if s.components == nil {
			s.components = make(map[string]*component)
		}
		c.Domain = d
		s.components[d] = &component{Component: c}
	}
	if r := s.cfg.Metrics; r != nil && len(s.components) > 0 {
		r.GaugeFunc("kiez_components_connected", "External components (XEP-0114) attached now, of those configured.",
			func() float64 {
				n := 0
				for _, c := range s.components {
					if c.current() != nil {
						n++
					}
				}
				return float64(n)
			})
	}
	return nil
}

// componentItems lists, for the disco#items of the virtual host vhost,
// the configured components at its sub-domains, connected or not (as
// Prosody does), sorted by domain.
func (s *Server) componentItems(vhost string) []DiscoItem {
	var out []DiscoItem
	for _, c := range s.cfg.Components {
		d := strings.ToLower(c.Domain)
		if strings.HasSuffix(d, "."+vhost) {
			out = append(out, DiscoItem{JID: jid.MustParse(d), Name: c.Name})
		}
	}
	return out
}

// ServeComponents accepts external component connections (XEP-0114,
// jabber:component:accept) on ln, for the components of
// Config.Components. It returns ErrServerClosed after Shutdown.
//
// The component protocol has no TLS: the handshake proves the secret
// without sending it, but everything after it, the users' messages
// included, travels in plain text. Listen on loopback (kiezd's default)
// or on a network the administrator trusts, or put the listener behind
// TLS (a tunnel, a TLS-terminating proxy).
//
// Config.ConnFilter admits or refuses each connection by its IP address,
// counts a wrong secret as a failed authentication, and bans as it does
// for clients. Limits apply as to clients: MaxPreAuthSize, ReadRate and
// PreAuthTimeout until the handshake, then MaxStanzaSize, MaxDepth,
// WriteTimeout and QueueSize (a component that does not keep up with
// its queue is disconnected); the read rate is not limited after the
// handshake, as a component carries the traffic of many users.
//
// With Config.Metrics set, kiez_components_connected counts the
// components attached.
func (s *Server) ServeComponents(ln net.Listener) error {
	return s.acceptLoop(ln, func(nc net.Conn, addr netip.Addr, filtered bool) error {
		cc := &compConn{srv: s, raw: nc, nc: nc, addr: addr, filtered: filtered,
			quit: make(chan struct{}), writerDone: make(chan struct{})}
		s.mu.Lock()
		if l := s.limits; l.ReadRate > 0 {
			cc.rc = newRateConn(nc, int64(l.ReadRate), readBurst(int64(l.ReadRate), l.MaxPreAuthSize), s.rateClock)
			cc.nc = cc.rc
		}
		if s.closed {
			s.mu.Unlock()
			cc.filterDone(false)
			nc.Close()
			return ErrServerClosed
		}
		s.connWG.Add(1)
		s.mu.Unlock()
		go cc.serve()
		return nil
	})
}

// compConn is one component connection, from accept to close. Its
// reader (serve) runs the handshake and reads stanzas; once the
// handshake succeeded, a writer goroutine writes what is queued for the
// component.
type compConn struct {
	srv      *Server
	raw      net.Conn  // the TCP connection
	nc       net.Conn  // raw, or the read rate limit over it
	rc       *rateConn // the read rate limit, if any
	addr     netip.Addr
	filtered bool
	t        *tcpStream
	id       string
	comp     *component // once the handshake succeeded

	queue      chan *stanza.Stanza // bounded: Limits.QueueSize
	quit       chan struct{}       // closed by close
	writerDone chan struct{}       // closed when the writer is done (or never started)

	mu      sync.Mutex
	closed  bool
	final   *StreamError
	writing bool // the writer runs: it writes final
}

// serve runs the connection: handshake, then stanzas until the stream
// ends.
func (cc *compConn) serve() {
	s := cc.srv
	defer func() {
		cc.raw.Close()
		cc.filterDone(false)
		s.connWG.Done()
	}()
	stop := context.AfterFunc(s.ctx, func() { cc.close(streamErr(condSystemShutdown, "")) })
	defer stop()
	cc.nc.SetDeadline(time.Now().Add(s.limits.PreAuthTimeout))
	br := bufio.NewReaderSize(cc.nc, 512)
	bw := bufio.NewWriterSize(cc.raw, 512)
	comp, err := cc.handshake(br, bw)
	if err != nil {
		cc.failHandshake(bw, err)
		return
	}
	cc.nc.SetDeadline(time.Time{})
	if cc.rc != nil {
		cc.rc.setRate(0, 0) // a component carries many users' traffic
	}
	cc.t.setLimit(s.limits.MaxStanzaSize)
	cc.filterDone(true)
	cc.comp = comp
	cc.queue = make(chan *stanza.Stanza, s.limits.QueueSize)
	cc.mu.Lock()
	if cc.closed { // shut down during the handshake
		cc.mu.Unlock()
		cc.failHandshake(bw, cc.final)
		return
	}
	cc.writing = true
	cc.mu.Unlock()
	comp.attach(cc)
	go cc.writeLoop()
	s.log.Info("component connected", "component", comp.Domain)

	ctx, cancel := context.WithCancel(s.ctx)
	err = cc.read(ctx)
	cancel()
	var se *StreamError
	if !errors.As(err, &se) {
		se = nil // the component closed its stream, or the connection failed
	}
	// Detached before the stream's end is written: once the component
	// sees it, stanzas to it bounce.
	comp.detach(cc)
	cc.close(se)
	<-cc.writerDone
	s.log.Info("component disconnected", "component", comp.Domain, "cause", errKind(err))
}

// handshake reads the component's stream header, answers it and checks
// the handshake (XEP-0114 §3). It returns the component on success.
func (cc *compConn) handshake(br *bufio.Reader, bw *bufio.Writer) (*component, error) {
	s := cc.srv
	cc.t = newTCPStream(br, nsComponent, s.limits.MaxPreAuthSize, s.limits.MaxDepth)
	h, err := cc.t.readOpen()
	if err != nil {
		return nil, err
	}
	var comp *component
	if j, err := jid.Parse(h.to); err == nil && j.Localpart() == "" && j.Resourcepart() == "" {
		comp = s.components[j.Domainpart()]
	}
	if comp == nil {
		return nil, streamErr(condHostUnknown, "no such component")
	}
	cc.open(bw, comp.Domain)
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	start, err := cc.t.next()
	if err != nil {
		return nil, err
	}
	if start.Name != (xml.Name{Space: nsClient, Local: "handshake"}) {
		return nil, streamErr(condNotAuthorized, "expected a handshake")
	}
	toks, err := cc.t.readElement()
	if err != nil {
		return nil, err
	}
	var got strings.Builder
	for _, tok := range toks {
		cd, ok := tok.(xml.CharData)
		if !ok {
			return nil, streamErr(condNotAuthorized, "")
		}
		got.Write(cd)
	}
	sum := sha1.Sum([]byte(cc.id + comp.Secret))
	want := hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(strings.TrimSpace(got.String()))), []byte(want)) != 1 {
		if f := s.cfg.ConnFilter; f != nil && cc.addr.IsValid() && f.AuthFailed(s.ctx, cc.addr) {
			return nil, streamErr(condPolicyViolation, "")
		}
		s.log.Info("component handshake failed", "component", comp.Domain)
		return nil, streamErr(condNotAuthorized, "")
	}
	return comp, nil
}

// open writes the server's stream header, without a version as XEP-0114
// has none.
func (cc *compConn) open(bw *bufio.Writer, from string) {
	if cc.id == "" {
		cc.id = newID()
	}
	bw.WriteString(`<?xml version='1.0'?><stream:stream xmlns='` + nsComponent + `' xmlns:stream='` + nsStream + `' id='`)
	bw.WriteString(cc.id)
	if from != "" {
		bw.WriteString(`' from='`)
		bw.WriteString(escapeString(from))
	}
	bw.WriteString(`'>`)
}

// failHandshake ends a stream that did not get through the handshake,
// with a stream error if err is one (or the server is shutting down).
func (cc *compConn) failHandshake(bw *bufio.Writer, err error) {
	cc.mu.Lock()
	if cc.final != nil {
		err = cc.final
	}
	cc.closed = true
	cc.mu.Unlock()
	close(cc.writerDone)
	var se *StreamError
	if !errors.As(err, &se) {
		if !isNetClose(err) {
			cc.srv.log.Debug("component stream ended during the handshake", "cause", errKind(err))
		}
		return
	}
	if cc.t == nil {
		return
	}
	cc.raw.SetWriteDeadline(time.Now().Add(time.Second))
	if cc.id == "" {
		cc.open(bw, "")
	}
	cc.t.writeClose(bw, se)
	bw.Flush()
}

// read reads stanzas from the component and routes them, until the
// stream ends.
func (cc *compConn) read(ctx context.Context) error {
	s := cc.srv
	dom := cc.comp.Domain
	for {
		cc.t.wait()
		start, err := cc.t.next()
		if err != nil {
			return err
		}
		if stanza.KindOf(start.Name) == 0 || start.Name.Space != nsClient {
			return streamErr(condUnsupportedStanza, "")
		}
		st, err := cc.t.readStanza(start)
		if err != nil {
			var ae *stanza.AddressError
			if !errors.As(err, &ae) {
				return err
			}
			if !st.IsError() {
				reply := st.ErrorReply(ae.StanzaError())
				reply.From = jid.JID{}
				cc.send(reply)
			}
			continue
		}
		// The component speaks for its domain only (XEP-0114 §3 leaves
		// this to the server; Prosody checks it too).
		if st.From.Domainpart() != dom {
			return streamErr(condInvalidFrom, "the from address is not at the component's domain")
		}
		if st.To.String() == "" {
			if !st.IsError() && st.Type != stanza.Result {
				cc.send(st.ErrorReply(mstanza.Error{Type: mstanza.Modify, Condition: mstanza.BadRequest}))
			}
			continue
		}
		s.router.deliver(ctx, filter.Component, st)
	}
}

// send queues st for the component without blocking. A component whose
// queue is full is disconnected, as a slow client is; send reports
// false then, and for a closing stream.
func (cc *compConn) send(st *stanza.Stanza) bool {
	cc.mu.Lock()
	if cc.closed {
		cc.mu.Unlock()
		return false
	}
	select {
	case cc.queue <- st:
		cc.mu.Unlock()
		return true
	default:
	}
	cc.mu.Unlock()
	cc.srv.log.Warn("closing a component that does not keep up", "component", cc.comp.Domain)
	cc.srv.metrics.queueOverflows.Inc()
	cc.close(streamErr(condPolicyViolation, "too many stanzas waiting for this component"))
	return false
}

// close ends the stream with final (nil for none): the writer writes
// what is queued, then final and the closing tag. During the handshake
// it wakes the reader, which writes final.
func (cc *compConn) close(final *StreamError) {
	cc.mu.Lock()
	if cc.closed {
		cc.mu.Unlock()
		return
	}
	cc.closed = true
	cc.final = final
	writing := cc.writing
	cc.mu.Unlock()
	if writing {
		close(cc.quit)
	} else {
		cc.nc.SetReadDeadline(time.Now()) // wakes a throttled read too
	}
}

// writeLoop writes the handshake's answer, then the queued stanzas in
// batches, until close.
func (cc *compConn) writeLoop() {
	s := cc.srv
	defer close(cc.writerDone)
	bw := getWriter(cc.raw)
	defer putWriter(bw)
	cc.raw.SetWriteDeadline(time.Now().Add(s.limits.WriteTimeout))
	bw.WriteString("<handshake/>")
	err := bw.Flush()
	for err == nil {
		select {
		case st := <-cc.queue:
			cc.raw.SetWriteDeadline(time.Now().Add(s.limits.WriteTimeout))
			cc.t.writeStanza(bw, st)
			cc.drain(bw)
			err = bw.Flush()
		case <-cc.quit:
			// What is queued goes first, briefly: the component may be
			// gone.
			cc.raw.SetWriteDeadline(time.Now().Add(time.Second))
			cc.drain(bw)
			cc.mu.Lock()
			final := cc.final
			cc.mu.Unlock()
			cc.t.writeClose(bw, final)
			if bw.Flush() == nil {
				// Give the component a moment to close its stream, then
				// let the reader end.
				cc.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
			} else {
				cc.raw.Close()
			}
			return
		}
	}
	// The write failed: the connection is useless.
	cc.close(nil)
	cc.raw.Close()
}

// drain writes what is queued without waiting for more.
func (cc *compConn) drain(bw *bufio.Writer) {
	for {
		select {
		case st := <-cc.queue:
			cc.t.writeStanza(bw, st)
		default:
			return
		}
	}
}

// filterDone tells the connection filter that the connection is no
// longer unauthenticated: it got through the handshake, or it ended.
func (cc *compConn) filterDone(authenticated bool) {
	if !cc.filtered {
		return
	}
	cc.filtered = false
	if authenticated {
		cc.srv.cfg.ConnFilter.Authenticated(cc.addr)
	} else {
		cc.srv.cfg.ConnFilter.Closed(cc.addr)
	}
}

// toComponent hands st to the component's stream, or bounces it with
// service-unavailable when the component is not connected (or does not
// keep up).
func (r *router) toComponent(ctx context.Context, st *stanza.Stanza, c *component) {
	if cc := c.current(); cc != nil && cc.send(st) {
		return
	}
	r.bounce(ctx, st, mstanza.Error{Type: mstanza.Wait, Condition: mstanza.ServiceUnavailable})
}

// Package proxy65 implements a XEP-0065 SOCKS5 bytestreams proxy at
// proxy.<domain>, through which two clients that cannot reach each other
// (both behind NAT) transfer files (Jingle file transfer, XEP-0234, over
// XEP-0260 SOCKS5 transport).
//
// A requester asks the service for its network address (a streamhost
// query), hands it to the target, and both connect to the proxy's SOCKS5
// listener naming the same stream: the hex SHA-1 of the stream id, the
// requester's full JID and the target's full JID, given as the CONNECT
// request's domain name (the subset of RFC 1928 that XEP-0065 §6 uses: no
// authentication, CONNECT, DOMAINNAME, port 0). The proxy pairs the two
// connections and relays bytes between them once the requester activates
// the stream with an iq set. Only local accounts may query or activate;
// the hash names the activating requester, so nobody can activate another
// user's stream.
//
// The proxy bounds the streams open at once (Options.MaxStreams), each
// stream's bandwidth (a token bucket, Options.Rate), the time two
// connections may wait for activation and the time an active stream may
// stay idle. It logs no address, neither network nor XMPP.
package proxy65

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
)

// NS is the XEP-0065 namespace.
const NS = "http://jabber.org/protocol/bytestreams"

// Defaults of Options.
const (
	DefaultSubdomain         = "proxy"
	DefaultMaxStreams        = 32
	DefaultRate              = 4 << 20 // bytes per second and stream
	DefaultActivationTimeout = time.Minute
	DefaultIdleTimeout       = 5 * time.Minute
	bufSize                  = 32 << 10
)

// Options configure the module.
type Options struct {
	// Listen is the SOCKS5 listener's address, such as ":5000" or
	// "127.0.0.1:0" (required).
	Listen string
	// PublicHost is the host name or IP address clients connect to. ""
	// means the listener's IP address when it is a specific one, else the
	// service's domain (proxy.<domain>), which must then resolve to the
	// server.
	PublicHost string
	// PublicPort is the port clients connect to (0: the listener's).
	PublicPort int
	// Subdomain is the service's label (default "proxy").
	Subdomain string
	// MaxStreams bounds the streams open or being set up at once (two
	// connections each; default 32). A connection beyond it is closed.
	MaxStreams int
	// Rate bounds each stream's bandwidth, in bytes per second, both
	// directions together (default 4 MiB/s; negative for no bound).
	Rate int64
	// ActivationTimeout is how long a connection may wait for its peer
	// and the activation (default 1 minute).
	ActivationTimeout time.Duration
	// IdleTimeout closes an active stream after that long without data
	// (default 5 minutes).
	IdleTimeout time.Duration
}

// Deps are what the module builds on: nothing.
type Deps struct{}

// Module implements XEP-0065. Create it with New.
type Module struct {
	opts Options
	host server.Host
	log  *slog.Logger

	ln    net.Listener
	slots chan struct{} // a token per open connection
	wg    sync.WaitGroup

	mu      sync.Mutex
	pending map[string]*stream // hash → a stream not yet active
	conns   map[net.Conn]struct{}
	closed  bool
	quit    chan struct{} // closed by Close
}

// stream is a pair of connections sharing a hash.
type stream struct {
	conns  [2]net.Conn
	n      int
	start  chan struct{} // closed at activation
	bucket *bucket
	last   atomic.Int64 // unix nanoseconds of the last data relayed
	done   atomic.Int32 // directions that ended cleanly
	closer sync.Once
	ended  chan struct{} // closed when both connections are
}

// end closes both connections of the stream.
func (s *stream) end() {
	s.closer.Do(func() {
		for _, c := range s.conns[:s.n] {
			c.Close()
		}
		close(s.ended)
	})
}

// New returns the module. It fails without a listen address or for an
// option out of range; the listener opens in Init.
func New(opts Options, deps Deps) (*Module, error) {
	if opts.Listen == "" {
		return nil, errors.New("proxy65: no listen address")
	}
	if opts.Subdomain == "" {
		opts.Subdomain = DefaultSubdomain
	}
	if opts.PublicPort < 0 || opts.PublicPort > 65535 {
		return nil, fmt.Errorf("proxy65: public port %d out of range", opts.PublicPort)
	}
	switch {
	case opts.MaxStreams == 0:
		opts.MaxStreams = DefaultMaxStreams
	case opts.MaxStreams < 0:
		return nil, fmt.Errorf("proxy65: max streams %d must be positive", opts.MaxStreams)
	}
	if opts.Rate == 0 {
		opts.Rate = DefaultRate
	}
	if opts.ActivationTimeout <= 0 {
		opts.ActivationTimeout = DefaultActivationTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	return &Module{
		opts:    opts,
		log:     slog.New(slog.DiscardHandler),
		slots:   make(chan struct{}, 2*opts.MaxStreams),
		pending: make(map[string]*stream),
		conns:   make(map[net.Conn]struct{}),
		quit:    make(chan struct{}),
	}, nil
}

// Name returns "proxy65".
func (*Module) Name() string { return "proxy65" }

// Init opens the SOCKS5 listener and serves it until the server shuts
// down.
func (m *Module) Init(ctx context.Context, h server.Host) error {
	m.host = h
	m.log = h.Logger()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", m.opts.Listen)
	if err != nil {
		return fmt.Errorf("proxy65: %w", err)
	}
	m.ln = ln
	h.Go(func(ctx context.Context) {
		go func() {
			<-ctx.Done()
			ln.Close()
		}()
		m.serve(ln)
	})
	return nil
}

// Addr returns the SOCKS5 listener's address (after Init).
func (m *Module) Addr() net.Addr { return m.ln.Addr() }

// Close closes the listener and every connection, and waits for their
// goroutines.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	if !m.closed {
		close(m.quit)
	}
	m.closed = true
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	if m.ln != nil {
		m.ln.Close()
	}
	m.wg.Wait()
	return nil
}

// Services hosts the proxy at proxy.<domain>.
func (m *Module) Services() []server.Service {
	return []server.Service{{
		Subdomain: m.opts.Subdomain,
		Name:      "SOCKS5 bytestreams proxy",
		Identity:  server.Identity{Category: "proxy", Type: "bytestreams", Name: "SOCKS5 bytestreams proxy"},
		Features:  []string{NS},
		IQRoutes: []server.IQRoute{
			{Type: mstanza.GetIQ, Payload: xml.Name{Space: NS, Local: "query"}, To: server.TargetHost, Handler: server.IQHandlerFunc(m.query)},
			{Type: mstanza.SetIQ, Payload: xml.Name{Space: NS, Local: "query"}, To: server.TargetHost, Handler: server.IQHandlerFunc(m.activate)},
		},
	}}
}

// local reports whether iq comes from a local account.
func (m *Module) local(iq stanza.IQ) bool {
	return iq.From.Localpart() != "" && m.host.IsLocal(iq.From.Domain().String())
}

var forbidden = mstanza.Error{Type: mstanza.Auth, Condition: mstanza.Forbidden}

// query answers the streamhost query (XEP-0065 §6.1).
func (m *Module) query(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	if !m.local(iq) {
		return w.Error(forbidden)
	}
	host, port := m.public(iq.To)
	return w.Result(stanza.Elem(xml.Name{Space: NS, Local: "query"}, nil,
		stanza.Elem(xml.Name{Space: NS, Local: "streamhost"}, []xml.Attr{
			stanza.Attr("jid", iq.To.String()), stanza.Attr("host", host), stanza.Attr("port", strconv.Itoa(port))})))
}

// public returns the host and port announced by the service at service.
func (m *Module) public(service jid.JID) (string, int) {
	host, port := m.opts.PublicHost, m.opts.PublicPort
	addr, _ := m.ln.Addr().(*net.TCPAddr)
	if port == 0 && addr != nil {
		port = addr.Port
	}
	if host == "" {
		if addr != nil && !addr.IP.IsUnspecified() {
			host = addr.IP.String()
		} else {
			host = service.Domain().String()
		}
	}
	return host, port
}

// activate starts a stream (XEP-0065 §6.3.3): the requester (iq.From)
// names the stream id and the target; both must be connected.
func (m *Module) activate(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	if !m.local(iq) {
		return w.Error(forbidden)
	}
	q, _ := iq.ChildElement(xml.Name{Space: NS, Local: "query"})
	act, ok := q.Child(xml.Name{Space: NS, Local: "activate"})
	sid := q.Attr("sid")
	target, err := jid.Parse(act.Text())
	if !ok || sid == "" || err != nil {
		return w.Error(mstanza.Error{Type: mstanza.Modify, Condition: mstanza.BadRequest})
	}
	h := Hash(sid, iq.From, target)
	m.mu.Lock()
	s := m.pending[h]
	switch {
	case s == nil:
		m.mu.Unlock()
		return w.Error(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ItemNotFound})
	case s.n < 2:
		m.mu.Unlock()
		return w.Error(mstanza.Error{Type: mstanza.Modify, Condition: mstanza.NotAcceptable})
	}
	delete(m.pending, h)
	close(s.start)
	m.mu.Unlock()
	m.log.Debug("proxy65: stream activated")
	return w.Result(nil)
}

// Hash is the SOCKS5 domain name of a stream: the hex SHA-1 of the
// stream id, the requester's and the target's full JIDs.
func Hash(sid string, requester, target jid.JID) string {
	sum := sha1.Sum([]byte(sid + requester.String() + target.String()))
	return hex.EncodeToString(sum[:])
}

// serve accepts connections until ln is closed.
func (m *Module) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		select {
		case m.slots <- struct{}{}:
		default:
			c.Close() // too many streams
			continue
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			c.Close()
			<-m.slots
			return
		}
		m.conns[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go m.handle(c)
	}
}

// handle runs one connection: the SOCKS5 handshake, the wait for the
// peer and the activation, then the relay of what it sends to its peer.
func (m *Module) handle(c net.Conn) {
	defer func() {
		c.Close()
		m.mu.Lock()
		delete(m.conns, c)
		m.mu.Unlock()
		<-m.slots
		m.wg.Done()
	}()
	deadline := time.Now().Add(m.opts.ActivationTimeout)
	c.SetDeadline(deadline)
	hash, err := handshake(c)
	if err != nil {
		return
	}
	s, i := m.join(hash, c)
	if s == nil {
		c.Write(reply(0x02, hash)) // connection not allowed by ruleset
		return
	}
	if _, err := c.Write(reply(0x00, hash)); err != nil {
		m.leave(hash, s)
		return
	}
	c.SetDeadline(time.Time{})
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-s.start:
	case <-timer.C:
		m.leave(hash, s)
		return
	case <-m.quit:
		m.leave(hash, s)
		return
	}
	// Both connections of an active stream exist: relay to the peer.
	m.relay(s, c, s.conns[1-i])
	<-s.ended
}

// join adds c to the stream hash and returns it and c's index, or nil
// when the stream has two connections already or the proxy is closing.
func (m *Module) join(hash string, c net.Conn) (*stream, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, 0
	}
	s := m.pending[hash]
	if s == nil {
		s = &stream{start: make(chan struct{}), ended: make(chan struct{}), bucket: newBucket(m.opts.Rate, time.Now())}
		m.pending[hash] = s
	}
	if s.n == 2 {
		return nil, 0
	}
	s.conns[s.n] = c
	s.n++
	return s, s.n - 1
}

// leave ends a stream that was never activated: both its connections
// are closed.
func (m *Module) leave(hash string, s *stream) {
	m.mu.Lock()
	if m.pending[hash] == s {
		delete(m.pending, hash)
	}
	m.mu.Unlock()
	s.end()
}

// relay copies what from sends to to, within the stream's bandwidth,
// until from ends or the stream is idle too long. A clean end closes
// to's writing half; when both directions ended so, or on any failure,
// both connections are closed.
func (m *Module) relay(s *stream, from, to net.Conn) {
	buf := make([]byte, bufSize)
	s.last.Store(time.Now().UnixNano())
	for {
		from.SetReadDeadline(time.Now().Add(m.opts.IdleTimeout))
		n, err := from.Read(buf)
		if n > 0 {
			s.last.Store(time.Now().UnixNano())
			if d := s.bucket.take(time.Now(), n); d > 0 {
				time.Sleep(d)
			}
			to.SetWriteDeadline(time.Now().Add(m.opts.IdleTimeout))
			if _, werr := to.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, s.last.Load())) < m.opts.IdleTimeout {
				continue // the other direction is busy
			}
			if errors.Is(err, io.EOF) {
				if cw, ok := to.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil && s.done.Add(1) < 2 {
					return // the other direction goes on
				}
			}
			break
		}
	}
	s.end()
}

// handshake reads the SOCKS5 greeting and CONNECT request (XEP-0065 §6)
// and returns the requested domain name, the stream's hash.
func handshake(c net.Conn) (string, error) {
	var b [2]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return "", err
	}
	if b[0] != 5 || b[1] == 0 {
		return "", errors.New("proxy65: not SOCKS5")
	}
	methods := make([]byte, b[1])
	if _, err := io.ReadFull(c, methods); err != nil {
		return "", err
	}
	noAuth := false
	for _, mt := range methods {
		noAuth = noAuth || mt == 0
	}
	if !noAuth {
		c.Write([]byte{5, 0xff})
		return "", errors.New("proxy65: no acceptable method")
	}
	if _, err := c.Write([]byte{5, 0}); err != nil {
		return "", err
	}
	var req [5]byte // VER CMD RSV ATYP LEN
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return "", err
	}
	if req[0] != 5 || req[1] != 1 || req[3] != 3 || req[4] != 40 {
		c.Write([]byte{5, 0x07, 0, 1, 0, 0, 0, 0, 0, 0}) // command not supported
		return "", errors.New("proxy65: not a CONNECT to a stream hash")
	}
	rest := make([]byte, 40+2)
	if _, err := io.ReadFull(c, rest); err != nil {
		return "", err
	}
	return string(rest[:40]), nil
}

// reply is a SOCKS5 reply with status rep, naming hash.
func reply(rep byte, hash string) []byte {
	out := append([]byte{5, rep, 0, 3, byte(len(hash))}, hash...)
	return append(out, 0, 0)
}

// bucket is a token bucket of bytes; a negative rate is unbounded.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate int64, now time.Time) *bucket {
	burst := float64(rate)
	if burst < bufSize {
		burst = bufSize
	}
	return &bucket{rate: float64(rate), burst: burst, tokens: burst, last: now}
}

// take spends n bytes at now and returns how long to wait before they
// may go.
func (b *bucket) take(now time.Time, n int) time.Duration {
	if b.rate < 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(b.burst, b.tokens+el*b.rate)
		b.last = now
	}
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

var (
	_ server.Module          = (*Module)(nil)
	_ server.Initializer     = (*Module)(nil)
	_ server.Closer          = (*Module)(nil)
	_ server.ServiceProvider = (*Module)(nil)
)

package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/scram"
)

// conn is one client connection, from accept to close. Until the resource
// is bound, one goroutine (serve) reads and writes; afterwards the Session
// has its own writer goroutine and serve only reads.
type conn struct {
	srv       *Server
	ctx       context.Context
	raw       net.Conn  // the TCP connection, or rc over it
	rc        *rateConn // the read rate limit, if any
	nc        net.Conn  // raw, or the TLS connection over it
	directTLS bool
	websocket bool              // RFC 7395, c.t set from the start
	leaf      *x509.Certificate // the certificate we presented

	cbUnusable bool   // the client tried a channel binding type we lack
	fastToken  string // a XEP-0484 <token/> for the SASL2 <success/>; see fast.go

	// During negotiation: the TLS session's state and the channel binding
	// types it offers, taken once after the handshake, and the stream's
	// domain as a JID.
	tlsState *tls.ConnectionState
	cbTypes  []string
	domJID   jid.JID
	// lastLogin is the authenticated account's day of last login, as
	// read for authentication.
	lastLogin time.Time

	br  *bufio.Reader
	bw  *bufio.Writer
	t   transport // the stream's framing, from the first header on
	id  string
	dom string // the virtual host this stream is for
	lng string

	// Negotiation: what it established, the authenticated account, and
	// the failed authentication attempts.
	state    streamState
	user     jid.JID
	attempts int

	// The client's IP address, if it has one (see ClientAddr);
	// filtered while the filter counts the connection as
	// unauthenticated; failedMechs has a bit per SASL mechanism that
	// failed (see authFailed).
	addr        netip.Addr
	filtered    bool
	failedMechs uint16

	// values are the modules' StreamValues, kept for the connection.
	values sessionValues

	mu      sync.Mutex
	sess    *Session
	pending *StreamError // a shutdown request that came before bind

	// runWG is done when the connection's reader has finished with its
	// session, which a resumption on another connection waits for.
	runWG sync.WaitGroup
}

// ServeC2S accepts client connections on ln that start in plain text and
// must upgrade with STARTTLS (RFC 6120 §5). It returns ErrServerClosed after
// Shutdown.
func (s *Server) ServeC2S(ln net.Listener) error { return s.serve(ln, false) }

// ServeDirectTLS accepts client connections on ln that start with a TLS
// handshake (XEP-0368), negotiating ALPN "xmpp-client".
func (s *Server) ServeDirectTLS(ln net.Listener) error { return s.serve(ln, true) }

func (s *Server) serve(ln net.Listener, direct bool) error {
	if s.cfg.TLS == nil {
		return errors.New("server: no TLS configuration: clients cannot be served")
	}
	return s.acceptLoop(ln, func(nc net.Conn, addr netip.Addr, filtered bool) error {
		// No SetNoDelay: net sets TCP_NODELAY on every TCP connection.
		c := &conn{srv: s, ctx: s.ctx, raw: nc, nc: nc, directTLS: direct, addr: addr, filtered: filtered}
		s.mu.Lock()
		if l := s.limits; l.ReadRate > 0 || l.ReadRateAuthenticated > 0 {
			// Rate 0 here (ReadRate off) waits for authentication.
			rate := int64(max(l.ReadRate, 0))
			c.rc = newRateConn(nc, rate, readBurst(rate, l.MaxPreAuthSize), s.rateClock)
			c.raw, c.nc = c.rc, c.rc
		}
		if s.closed {
			s.mu.Unlock()
			c.filterDone(false)
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.connWG.Add(1)
		s.mu.Unlock()
		go c.serve()
		return nil
	})
}

// acceptLoop accepts connections on ln until it fails or the server
// closes, backing off on temporary errors (timeouts, too many open
// files); it runs the connection filter on each (a refused connection is
// closed before anything is read or written, the TLS handshake
// included, so it costs no more than its accept) and hands the admitted
// ones to start, whose error (ErrServerClosed) ends the loop. ln is
// closed by Shutdown.
func (s *Server) acceptLoop(ln net.Listener, start func(nc net.Conn, addr netip.Addr, filtered bool) error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscallEMFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("server: accept: %w", err)
		}
		delay = 0
		addr, filtered, ok := s.admit(nc)
		if !ok {
			nc.Close()
			continue
		}
		if err := start(nc, addr, filtered); err != nil {
			return err
		}
	}
}

func (c *conn) serve() {
	s := c.srv
	handedOff := false
	c.runWG.Add(1)
	defer func() {
		if !handedOff {
			c.runWG.Done()
			c.cleanup()
		}
	}()
	// The deadline bounds all of negotiation, the TLS handshake included.
	c.raw.SetDeadline(time.Now().Add(s.limits.PreAuthTimeout))
	if c.br == nil { // a WebSocket's is there, its transport's
		c.br = bufio.NewReaderSize(c.raw, 512)
	}
	// Negotiation borrows a write buffer; the session's writer borrows its
	// own.
	bw := getWriter(c.raw)
	defer putWriter(bw)
	c.bw = bw
	if c.directTLS {
		if err := c.startTLS(); err != nil {
			return
		}
	}
	sess, err := c.negotiate()
	if err != nil {
		c.fail(err)
		return
	}
	// Read on a fresh goroutine: negotiation (TLS handshake, SASL) grows
	// this one's stack, and an idle session should not keep that.
	handedOff = true
	go func() {
		defer c.cleanup()
		c.run(sess)
	}()
}

// cleanup closes the connection and forgets it.
func (c *conn) cleanup() {
	s := c.srv
	c.raw.Close()
	c.filterDone(false)
	c.values.drop()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connWG.Done()
}

// fail ends a stream that never reached a bound session.
func (c *conn) fail(err error) {
	var se *StreamError
	c.mu.Lock()
	if c.pending != nil {
		se = c.pending
	}
	c.mu.Unlock()
	if se == nil && !errors.As(err, &se) {
		if !isNetClose(err) {
			// Network errors name the client's address: log the kind only.
			c.srv.log.Debug("stream ended during negotiation", "cause", errKind(err))
		}
		if c.websocket && errors.Is(err, io.EOF) && c.id != "" {
			// The client sent <close/>: answer it (RFC 7395 §3.6.1).
			c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			c.t.writeClose(c.bw, nil)
			c.bw.Flush()
		}
		return
	}
	if c.t == nil {
		return // no stream was opened
	}
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	if c.id == "" {
		// No header was sent yet: RFC 6120 §4.9.1.2 wants one first.
		c.open("")
	}
	c.t.writeClose(c.bw, se)
	c.bw.Flush()
}

// shutdown asks the connection to end with a stream error.
func (c *conn) shutdown(se *StreamError) {
	c.mu.Lock()
	sess := c.sess
	if sess == nil {
		c.pending = se
	}
	c.mu.Unlock()
	if sess != nil {
		sess.close(se)
		return
	}
	// Wake the negotiating goroutine; it writes the error.
	c.raw.SetReadDeadline(time.Now())
}

// closeWrite is called by the writer after the closing tag: give the client
// a moment to close its stream, then let the reader end.
func (c *conn) closeWrite() {
	c.raw.SetReadDeadline(time.Now().Add(2 * time.Second))
}

func (c *conn) startTLS() error {
	s := c.srv
	cfg := s.tlsStartTLS
	if c.directTLS {
		cfg = s.tlsDirect
	}
	// Bytes already buffered before the handshake would be lost (STARTTLS
	// injection, CVE-2011-0411 style): refuse them.
	if c.br.Buffered() > 0 {
		return streamErr(condPolicyViolation, "data after <starttls/>")
	}
	tc := tls.Server(c.raw, cfg)
	growStack()
	// The connection's pre-authentication deadline bounds the handshake;
	// shutdown wakes it as it wakes any read.
	err := tc.Handshake()
	if leaf, ok := s.leafs.LoadAndDelete(c.raw); ok {
		c.leaf = leaf.(*x509.Certificate)
	}
	if err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	c.state |= stateSecure
	cs := tc.ConnectionState()
	c.tlsState = &cs
	c.cbTypes = scram.ChannelBindingTypes(&cs)
	c.nc = tc
	c.br.Reset(tc)
	c.bw.Reset(tc)
	return nil
}

// tlsConfigs builds the two shared TLS configurations (STARTTLS and direct
// TLS with ALPN). The certificate chosen for each handshake is remembered
// by connection for tls-server-end-point channel binding.
func (s *Server) tlsConfigs() {
	base := s.cfg.TLS.Clone()
	base.MinVersion = max(base.MinVersion, tls.VersionTLS12)
	base.Certificates = nil
	base.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, err := s.getCert(hello)
		if err == nil && cert != nil {
			leaf := cert.Leaf
			if leaf == nil && len(cert.Certificate) > 0 {
				leaf, _ = x509.ParseCertificate(cert.Certificate[0])
			}
			if leaf != nil {
				s.leafs.Store(hello.Conn, leaf)
			}
		}
		return cert, err
	}
	s.tlsStartTLS = base.Clone()
	s.tlsStartTLS.NextProtos = nil
	s.tlsDirect = base.Clone()
	s.tlsDirect.NextProtos = []string{"xmpp-client"}
}

// certSelector picks a certificate by SNI from cfg, as crypto/tls would.
func certSelector(cfg *tls.Config) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cfg.GetCertificate != nil {
		get := cfg.GetCertificate
		certs := cfg.Certificates
		return func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := get(h)
			if c == nil && err == nil && len(certs) > 0 {
				return &certs[0], nil
			}
			return c, err
		}
	}
	certs := cfg.Certificates
	return func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if len(certs) == 0 {
			return nil, errors.New("server: no certificate configured")
		}
		for i := range certs {
			if h.SupportsCertificate(&certs[i]) == nil && certMatches(&certs[i], h.ServerName) {
				return &certs[i], nil
			}
		}
		return &certs[0], nil
	}
}

func certMatches(c *tls.Certificate, name string) bool {
	if name == "" {
		return true
	}
	leaf := c.Leaf
	if leaf == nil {
		return true
	}
	return leaf.VerifyHostname(name) == nil
}

func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func isNetClose(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// errKind describes in words why a stream ended, without the error's
// text, which for network errors contains IP addresses that must never
// reach the logs, and without Go type names, which tell an administrator
// nothing.
func errKind(err error) string {
	var ne net.Error
	var se *StreamError
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &se):
		return "stream error " + se.Condition
	case strings.HasPrefix(err.Error(), "tls handshake"):
		return "tls handshake failed"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF):
		return "connection closed by the client"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed in the middle of an element"
	case errors.Is(err, net.ErrClosed):
		return "connection closed by the server"
	case errors.Is(err, context.Canceled):
		return "server shutting down"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset by the client"
	case errors.As(err, &ne):
		return "network error"
	}
	return "internal error"
}

// handshakeStack makes growStack's frame big enough for the runtime to
// give the goroutine a 16 KiB stack, which holds a server-side TLS 1.3
// handshake with X25519MLKEM768 (ML-KEM keeps its polynomials on the
// stack). A bigger stack comes from the heap instead of the per-P stack
// cache, and the garbage collector shrinks it again while the connection
// waits.
const handshakeStack = 12 << 10

// growStack gives the calling goroutine, in one step, a stack that holds
// a TLS handshake. A goroutine's stack starts small and doubles when a
// call needs more; each doubling copies the stack and adjusts its
// pointers, which from deep inside the handshake costs more than growing
// once from a shallow stack just before it.
//
//go:noinline
func growStack() {
	var b [handshakeStack]byte
	touchStack(&b)
}

//go:noinline
func touchStack(b *[handshakeStack]byte) { b[len(b)-1] = 0 }

package server

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiez-im/kiez/stanza"
)

// Stream error conditions of server-to-server streams.
const (
	condS2SInvalidFrom     = "invalid-from"
	condImproperAddressing = "improper-addressing"
)

// Bounds of what a peer may make one incoming stream cost (see
// "Federation" in doc.go).
const (
	// maxS2SPairs is how many domain pairs one incoming stream may
	// authenticate: each may start a writer of ours (XEP-0288). A
	// request beyond is answered with a dialback error,
	// resource-constraint (XEP-0220's dialback error conditions: the
	// peer opens another stream for it).
	maxS2SPairs = 64
	// maxS2SDialbackFailures is how many dialback requests on one
	// incoming stream may fail to verify (each makes us dial the
	// peer's authoritative server); the next request ends the stream
	// with policy-violation.
	maxS2SDialbackFailures = 8
)

// ServeS2S accepts connections from other servers on ln, which start in
// plain text and must upgrade with STARTTLS (RFC 6120 §5), usually on
// port 5269. Config.S2S must be set. Config.ConnFilter admits them as it
// admits clients. It returns ErrServerClosed after Shutdown.
func (s *Server) ServeS2S(ln net.Listener) error { return s.serveS2S(ln, false) }

// ServeS2SDirectTLS accepts connections from other servers on ln that
// start with a TLS handshake (XEP-0368), negotiating ALPN
// "xmpp-server".
func (s *Server) ServeS2SDirectTLS(ln net.Listener) error { return s.serveS2S(ln, true) }

func (s *Server) serveS2S(ln net.Listener, direct bool) error {
	if s.cfg.TLS == nil {
		return errors.New("server: no TLS configuration: other servers cannot be served")
	}
	f := s.s2s
	if f == nil {
		return errors.New("server: no S2S configuration")
	}
	return s.acceptLoop(ln, func(nc net.Conn, addr netip.Addr, filtered bool) error {
		c := &s2sIn{f: f, raw: nc, nc: nc, direct: direct, addr: addr, filtered: filtered,
			authed: make(map[pairKey]bool), done: make(chan struct{})}
		if l := s.limits; l.ReadRate > 0 || f.cfg.ReadRate > 0 {
			rate := int64(max(l.ReadRate, 0))
			c.rc = newRateConn(nc, rate, readBurst(rate, l.MaxPreAuthSize), s.rateClock)
			c.raw, c.nc = c.rc, c.rc
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			c.filterDone(false)
			nc.Close()
			return ErrServerClosed
		}
		f.in[c] = struct{}{}
		f.mu.Unlock()
		if !s.goConn(c.serve) {
			c.cleanup()
			return ErrServerClosed
		}
		return nil
	})
}

// s2sIn is an incoming stream from another server: one goroutine reads
// it and writes the answers of negotiation and dialback; the stanzas it
// carries go to the router, and the answers to them leave on our own
// outgoing stream to that server, or, if the peer asked for a
// bidirectional stream (XEP-0288), on this one, written by a remote's
// goroutine (runBidi); from then on that goroutine writes the reader's
// dialback answers too (send).
type s2sIn struct {
	f        *federation
	raw      net.Conn  // the TCP connection, or rc over it
	rc       *rateConn // the read rate limit, if any
	nc       net.Conn  // raw, or the TLS connection over it
	br       *bufio.Reader
	bw       *bufio.Writer
	t        *tcpStream
	direct   bool
	addr     netip.Addr
	filtered bool

	tlsState *tls.ConnectionState
	sasl     bool   // authenticated by SASL EXTERNAL: no more negotiation
	local    string // the stream's to
	peer     string // the stream's from
	id       string
	// authed are the domain pairs (local: the stanzas' to, remote:
	// their from) authenticated on the stream, whose stanzas it may
	// carry.
	authed map[pairKey]bool
	// dbFailed counts the dialback requests that failed to verify.
	dbFailed int
	bidi     bool          // the peer asked for a bidirectional stream
	done     chan struct{} // closed when the stream ended

	// w is the first remote writing our stanzas on the stream
	// (XEP-0288), if any: from then on the reading goroutine's answers
	// are queued for its writer rather than written by the reader. Only
	// the reading goroutine uses the field.
	w *remote

	// wmu guards bw and wclosed once a remote writes stanzas on the
	// stream (XEP-0288) besides the reading goroutine's answers.
	wmu     sync.Mutex
	wclosed bool // our side of the stream is closed

	stopping atomic.Bool
}

// authedFrom says whether domain was authenticated on the stream, for
// any of our domains.
func (c *s2sIn) authedFrom(domain string) bool {
	for k := range c.authed {
		if k.remote == domain {
			return true
		}
	}
	return false
}

// send writes s, a serialised element, and flushes it. Once a remote
// writes our stanzas on the stream (c.w), s is queued for that writer
// instead, which writes it with the next batch; else, or if that writer
// has ended, the reader writes it itself, within Limits.WriteTimeout (the
// deadline a remote's last batch set may have passed long ago).
func (c *s2sIn) send(s string) error {
	if c.w != nil && c.w.answer(s) {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return errStreamClosed
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.f.srv.limits.WriteTimeout))
	c.bw.WriteString(s)
	return c.bw.Flush()
}

var errStreamClosed = errors.New("server: s2s: the stream was closed")

// writeStanzas writes a batch of our stanzas on a bidirectional stream
// and flushes it; it is the write side of a remote (runBidi).
func (c *s2sIn) writeStanzas(ctl []string, batch []*stanza.Stanza, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return errStreamClosed
	}
	c.nc.SetWriteDeadline(time.Now().Add(timeout))
	for _, s := range ctl {
		c.bw.WriteString(s)
	}
	for _, st := range batch {
		if err := c.t.writeStanza(c.bw, st); err != nil {
			return err
		}
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	// The stream is in use: it is not idle, whatever the peer sends.
	c.raw.SetReadDeadline(time.Now().Add(c.f.cfg.IdleTimeout))
	if c.stopping.Load() {
		c.raw.SetReadDeadline(time.Now())
	}
	return nil
}

// route makes the stream the way our stanzas for the pair k go to the
// peer, if it asked for a bidirectional stream (XEP-0288) and no stream
// for k is open or being opened.
func (c *s2sIn) route(k pairKey) {
	if !c.bidi {
		return
	}
	f := c.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.out[k] != nil {
		return
	}
	r := newRemote(f, k)
	r.in = c
	if !f.srv.goConn(r.runBidi) {
		return
	}
	f.out[k] = r
	f.retry.succeeded(k.remote)
	if c.w == nil {
		c.w = r
	}
}

// stop asks the stream to end with system-shutdown.
func (c *s2sIn) stop() {
	c.stopping.Store(true)
	c.raw.SetReadDeadline(time.Now())
}

func (c *s2sIn) cleanup() {
	c.raw.Close()
	close(c.done)
	c.filterDone(false)
	c.f.mu.Lock()
	delete(c.f.in, c)
	c.f.mu.Unlock()
}

// filterDone tells the connection filter that the connection
// authenticated or ended, as conn.filterDone does.
func (c *s2sIn) filterDone(authenticated bool) {
	if !c.filtered {
		return
	}
	c.filtered = false
	if authenticated {
		c.f.srv.cfg.ConnFilter.Authenticated(c.addr)
	} else {
		c.f.srv.cfg.ConnFilter.Closed(c.addr)
	}
}

func (c *s2sIn) serve() {
	defer c.cleanup()
	s := c.f.srv
	c.raw.SetDeadline(time.Now().Add(s.limits.PreAuthTimeout))
	c.br = bufio.NewReaderSize(c.raw, 4096)
	c.bw = bufio.NewWriterSize(c.raw, 4096)
	if c.direct {
		if err := c.startTLS(); err != nil {
			s.log.Debug("s2s: incoming stream failed", "cause", errKind(err))
			return
		}
	}
	err := c.run()
	var se *StreamError
	switch {
	case c.stopping.Load():
		se = streamErr(condSystemShutdown, "")
	case errors.As(err, &se):
	case errors.Is(err, io.EOF), isTimeout(err) && len(c.authed) > 0:
		// The peer closed its stream, or it idled: close ours.
	default:
		s.log.Debug("s2s: incoming stream failed", "cause", errKind(err))
		return
	}
	if se != nil {
		s.log.Debug("s2s: incoming stream ended", "cause", errKind(se))
	}
	if c.t == nil {
		return
	}
	c.wmu.Lock()
	c.wclosed = true
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	if c.id == "" {
		writeS2SOpen(c.bw, newID(), c.local, "")
	}
	c.t.writeClose(c.bw, se)
	c.bw.Flush()
	c.wmu.Unlock()
	if se == nil && !errors.Is(err, io.EOF) {
		c.drain()
	}
}

// drain reads the peer's side of a stream we closed for idleness until
// its closing tag, for a few seconds at most: what the peer sent before it
// saw ours still goes to the router (RFC 6120 §4.4).
func (c *s2sIn) drain() {
	c.raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	ctx, cancel := context.WithCancel(c.f.srv.ctx)
	defer cancel()
	for !c.stopping.Load() {
		start, err := c.t.next()
		if err != nil {
			return
		}
		if stanza.KindOf(start.Name) != 0 && start.Name.Space == nsClient {
			if err := c.f.receive(ctx, c.t, start, c.pairAuthed); err != nil {
				return
			}
			continue
		}
		if _, err := c.t.readElement(); err != nil {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *s2sIn) startTLS() error {
	s := c.f.srv
	if c.br.Buffered() > 0 {
		return streamErr(condPolicyViolation, "data after <starttls/>")
	}
	cfg := s.cfg.TLS.Clone()
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	cfg.Certificates = nil
	cfg.GetCertificate = s.getCert
	cfg.ClientAuth = tls.RequestClientCert // verified by verifyPeer: SASL EXTERNAL or dialback
	cfg.NextProtos = nil
	if c.direct {
		cfg.NextProtos = []string{"xmpp-server"}
	}
	tc := tls.Server(c.raw, cfg)
	growStack()
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	cs := tc.ConnectionState()
	c.tlsState = &cs
	c.nc = tc
	c.br.Reset(tc)
	c.bw.Reset(tc)
	return nil
}

// run negotiates the stream and reads it until it ends.
func (c *s2sIn) run() error {
	s := c.f.srv
	for {
		limit := s.limits.MaxPreAuthSize
		if len(c.authed) > 0 {
			limit = s.limits.MaxStanzaSize
		}
		if c.t == nil {
			c.t = newTCPStream(c.br, nsServer, limit, s.limits.MaxDepth)
		} else {
			c.t.restart(limit)
		}
		h, err := c.t.readOpen()
		if err != nil {
			return err
		}
		c.id = newID()
		to := strings.ToLower(h.to)
		if !s.serves(to) {
			writeS2SOpen(c.bw, c.id, "", h.from)
			return streamErr(condHostUnknown, "")
		}
		if c.local != "" && to != c.local {
			writeS2SOpen(c.bw, c.id, c.local, h.from)
			return streamErr(condHostUnknown, "the domain changed during negotiation")
		}
		c.local = to
		writeS2SOpen(c.bw, c.id, c.local, h.from)
		if major, _, _ := strings.Cut(h.version, "."); major != "1" {
			return streamErr(condUnsupportedVersion, "")
		}
		c.peer = strings.ToLower(h.from)
		if c.peer != "" && !c.f.allowed(c.peer) {
			return streamErr(condPolicyViolation, "not federating with that domain")
		}
		if err := c.writeFeatures(); err != nil {
			return err
		}
		restart, err := c.elements()
		if err != nil || !restart {
			return err
		}
	}
}

// writeFeatures writes the stream features. After SASL EXTERNAL, the new
// stream may carry ours (XEP-0288): it becomes the pair's route before the
// peer can read the features, so that nothing we route once it has them
// goes another way, while the write lock keeps the route's writer from
// writing a stanza before them.
func (c *s2sIn) writeFeatures() error {
	if c.sasl {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.route(pairKey{local: c.local, remote: c.peer})
	}
	c.t.writeFeatures(c.bw, c.features())
	return c.bw.Flush()
}

// features returns the stream features for the stream's state.
func (c *s2sIn) features() []byte {
	if c.tlsState == nil {
		return []byte(featureStartTLS)
	}
	if c.sasl {
		return nil
	}
	var b []byte
	if !c.f.cfg.NoBidi {
		b = append(b, `<bidi xmlns='urn:xmpp:features:bidi'/>`...)
	}
	b = append(b, `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>`...)
	if c.peer != "" && c.f.verifyPeer(c.tlsState, c.peer) == nil {
		b = append(b, `<mechanism>EXTERNAL</mechanism>`...)
	}
	b = append(b, `</mechanisms>`...)
	if !c.f.cfg.NoDialback {
		b = append(b, `<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>`...)
	}
	return b
}

// elements reads the stream's elements until it must restart (true) or
// ends.
func (c *s2sIn) elements() (restart bool, err error) {
	s := c.f.srv
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	for {
		if len(c.authed) > 0 {
			c.raw.SetReadDeadline(time.Now().Add(c.f.cfg.IdleTimeout))
			if c.stopping.Load() {
				return false, errS2SClosed
			}
			c.t.wait()
		}
		start, err := c.t.next()
		if err != nil {
			return false, err
		}
		switch {
		case c.tlsState == nil:
			if start.Name.Space != nsTLS || start.Name.Local != "starttls" {
				return false, streamErr(condPolicyViolation, "STARTTLS is required")
			}
			if _, err := c.t.readElement(); err != nil {
				return false, err
			}
			if err := c.send(`<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`); err != nil {
				return false, err
			}
			return true, c.startTLS()
		case start.Name.Space == nsBidi && start.Name.Local == "bidi" && !c.f.cfg.NoBidi && len(c.authed) == 0:
			// XEP-0288 §2.2: asked for before authentication; nothing
			// is answered, our stanzas follow it.
			if _, err := c.t.readElement(); err != nil {
				return false, err
			}
			c.bidi = true
		case start.Name.Space == nsSASL && start.Name.Local == "auth" && !c.sasl && len(c.authed) == 0:
			ok, err := c.external(start)
			if err != nil || ok {
				return ok, err
			}
		case start.Name.Space == nsDialback && start.Name.Local == "result":
			if err := c.dialbackResult(ctx, start); err != nil {
				return false, err
			}
		case start.Name.Space == nsDialback && start.Name.Local == "verify":
			if err := c.dialbackVerify(start); err != nil {
				return false, err
			}
		case start.Name.Space == nsStream && start.Name.Local == "error":
			// The peer ends the stream (RFC 6120 §4.9.1.1, a server
			// shutting down): we close ours, with no error of our own.
			toks, err := c.t.readElement()
			if err != nil {
				return false, err
			}
			s.log.Debug("s2s: incoming stream ended", "cause", "the peer sent a stream error: "+streamErrorCondition(toks))
			return false, io.EOF
		case stanza.KindOf(start.Name) != 0 && start.Name.Space == nsClient:
			if len(c.authed) == 0 {
				return false, streamErr(condNotAuthorized, "")
			}
			if err := c.f.receive(ctx, c.t, start, c.pairAuthed); err != nil {
				return false, err
			}
		default:
			return false, streamErr(condUnsupportedStanza, "")
		}
	}
}

// pairAuthed says whether the domain from, and the pair of from and to,
// were authenticated on the stream.
func (c *s2sIn) pairAuthed(from, to string) (fromOK, pairOK bool) {
	return c.authedFrom(from), c.authed[pairKey{local: to, remote: from}]
}

// authenticated records that the pair k was authenticated on the stream.
func (c *s2sIn) authenticated(k pairKey) {
	s := c.f.srv
	if len(c.authed) == 0 {
		c.raw.SetDeadline(time.Time{})
		c.t.setLimit(s.limits.MaxStanzaSize)
		if c.rc != nil {
			rate := int64(max(c.f.cfg.ReadRate, 0))
			c.rc.setRate(rate, readBurst(rate, s.limits.MaxStanzaSize))
		}
		c.filterDone(true)
	}
	c.authed[k] = true
	s.log.Debug("s2s: incoming stream authenticated", "remote", k.remote)
}

// external runs SASL EXTERNAL (XEP-0178): the peer's certificate must be
// valid for the authorization identity, or for the stream's from.
func (c *s2sIn) external(start xml.StartElement) (bool, error) {
	toks, err := c.t.readElement()
	if err != nil {
		return false, err
	}
	var text string
	for _, t := range toks {
		if cd, ok := t.(xml.CharData); ok {
			text += string(cd)
		}
	}
	domain := c.peer
	text = strings.TrimSpace(text)
	if text != "" && text != "=" {
		b, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return false, c.saslFailure("incorrect-encoding")
		}
		domain = strings.ToLower(string(b))
	}
	if attr(start, "mechanism") != "EXTERNAL" {
		return false, c.saslFailure("invalid-mechanism")
	}
	if domain == "" || domain != c.peer || !c.f.allowed(domain) || c.f.verifyPeer(c.tlsState, domain) != nil {
		return false, c.saslFailure("not-authorized")
	}
	if err := c.send(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`); err != nil {
		return false, err
	}
	c.sasl = true
	c.authenticated(pairKey{local: c.local, remote: domain})
	return true, nil
}

func (c *s2sIn) saslFailure(cond string) error {
	return c.send(`<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><` + cond + `/></failure>`)
}

// dialbackResult verifies an initiating server's dialback key with its
// authoritative server (XEP-0220 §2.2) and answers it.
func (c *s2sIn) dialbackResult(ctx context.Context, start xml.StartElement) error {
	toks, err := c.t.readElement()
	if err != nil {
		return err
	}
	if attr(start, "type") != "" {
		// An answer: we ask nothing on incoming streams.
		return nil
	}
	from, to := strings.ToLower(attr(start, "from")), strings.ToLower(attr(start, "to"))
	key := charData(toks)
	s := c.f.srv
	if !c.authed[pairKey{local: to, remote: from}] {
		if c.dbFailed >= maxS2SDialbackFailures {
			return streamErr(condPolicyViolation, "too many failed dialback requests")
		}
		if len(c.authed) >= maxS2SPairs {
			return c.send(`<db:result from='` + escapeString(to) + `' to='` + escapeString(from) + `' type='error'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>`)
		}
	}
	valid := false
	switch {
	case c.f.cfg.NoDialback, from == "", !c.f.allowed(from), !s.serves(to):
		c.dbFailed++
	case c.sasl && c.authedFrom(from):
		// Its certificate proved the domain: a pair with another of
		// ours needs no key verified. After dialback, each pair does.
		valid = true
	default:
		vctx, cancel := context.WithTimeout(ctx, c.f.cfg.ConnectTimeout)
		valid, err = c.f.verifyKey(vctx, to, from, c.id, key)
		cancel()
		if err != nil {
			s.log.Debug("s2s: dialback verification failed", "remote", from, "cause", s2sErrKind(err))
		}
		if !valid {
			c.dbFailed++
		}
	}
	typ := "invalid"
	if valid {
		typ = "valid"
	}
	if err := c.send(`<db:result from='` + escapeString(to) + `' to='` + escapeString(from) + `' type='` + typ + `'/>`); err != nil {
		return err
	}
	if valid {
		k := pairKey{local: to, remote: from}
		c.authenticated(k)
		// XEP-0288 §4: the reverse of a pair verified by dialback.
		c.route(k)
	}
	return nil
}

// dialbackVerify answers a receiving server that checks a key we gave it
// (XEP-0220 §2.3: we are the authoritative server).
func (c *s2sIn) dialbackVerify(start xml.StartElement) error {
	toks, err := c.t.readElement()
	if err != nil {
		return err
	}
	return c.send(c.f.verifyAnswer(attr(start, "from"), attr(start, "to"), attr(start, "id"), charData(toks)))
}

// verifyAnswer is the answer of the authoritative server to a
// <db:verify/> from, to, with the stream id id and the key key.
func (f *federation) verifyAnswer(from, to, id, key string) string {
	typ := "invalid"
	if f.srv.serves(to) {
		if hmac.Equal([]byte(key), []byte(f.dialbackKey(from, to, id))) {
			typ = "valid"
		}
	}
	return `<db:verify from='` + escapeString(to) + `' to='` + escapeString(from) + `' id='` + escapeString(id) + `' type='` + typ + `'/>`
}

func charData(toks []xml.Token) string {
	var b strings.Builder
	for _, t := range toks {
		if cd, ok := t.(xml.CharData); ok {
			b.Write(cd)
		}
	}
	return strings.TrimSpace(b.String())
}

// dialbackKey is the dialback key of XEP-0185 for a stream from
// originating to receiving with the receiving server's stream id.
func (f *federation) dialbackKey(receiving, originating, id string) string {
	k := sha256.Sum256(f.secret)
	m := hmac.New(sha256.New, []byte(hex.EncodeToString(k[:])))
	m.Write([]byte(receiving + " " + originating + " " + id))
	return hex.EncodeToString(m.Sum(nil))
}

// verifyKey asks the authoritative server of remote whether key is the
// one it gave for the stream id (XEP-0220 §2.2), on a new stream from
// local over TLS.
func (f *federation) verifyKey(ctx context.Context, local, remote, id, key string) (bool, error) {
	o, err := f.connect(ctx, local, remote, true)
	if err != nil {
		return false, err
	}
	defer o.nc.Close()
	stop := context.AfterFunc(ctx, func() { o.nc.SetDeadline(time.Now()) })
	defer stop()
	o.bw.WriteString(`<db:verify from='` + escapeString(local) + `' to='` + escapeString(remote) + `' id='` + escapeString(id) + `'>` + escapeString(key) + `</db:verify>`)
	if err := o.bw.Flush(); err != nil {
		return false, err
	}
	for {
		start, err := o.nonza()
		if err != nil {
			return false, err
		}
		if start.Name.Space == nsDialback && start.Name.Local == "verify" && attr(start, "id") == id {
			o.t.writeClose(o.bw, nil)
			o.bw.Flush()
			return attr(start, "type") == "valid", nil
		}
	}
}

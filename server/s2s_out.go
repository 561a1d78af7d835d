package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
)

// remote is the outgoing stream of one domain pair and the stanzas
// waiting for it. One goroutine (run) connects, then writes what is
// queued; another reads the peer's side of the stream. Or the remote is
// an incoming stream the peer made bidirectional (XEP-0288): then one
// goroutine (runBidi) writes what is queued on it.
type remote struct {
	f    *federation
	key  pairKey
	in   *s2sIn        // the bidirectional incoming stream, if any
	wake chan struct{} // something was queued, or stop was called

	mu    sync.Mutex
	queue []*stanza.Stanza
	// ctl are answers of the reading goroutine to the peer's dialback
	// requests (serialised elements), written before the next batch by
	// the writer, the stream's only one.
	ctl     []string
	done    bool // the stream ended: enqueue refuses
	stopped bool // the server is shutting down
	nc      net.Conn
}

type enqueueResult uint8

const (
	enqueued enqueueResult = iota
	queueFull
	remoteGone
)

func newRemote(f *federation, k pairKey) *remote {
	return &remote{f: f, key: k, wake: make(chan struct{}, 1)}
}

func (r *remote) enqueue(st *stanza.Stanza) enqueueResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.done:
		return remoteGone
	case len(r.queue) >= r.f.cfg.QueueSize:
		return queueFull
	}
	r.queue = append(r.queue, st)
	r.signal()
	return enqueued
}

// answer queues ctl, a serialised element, for the writer; false if the
// stream ended or too many wait (the peer floods us with requests).
func (r *remote) answer(ctl string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done || len(r.ctl) >= maxS2SPairs {
		return false
	}
	r.ctl = append(r.ctl, ctl)
	r.signal()
	return true
}

func (r *remote) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// stop ends the stream for shutdown.
func (r *remote) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.signal()
}

// finish takes the stream out of the table and returns what was still
// queued.
func (r *remote) finish() []*stanza.Stanza {
	f := r.f
	f.mu.Lock()
	if f.out[r.key] == r {
		delete(f.out, r.key)
	}
	f.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	q := r.queue
	r.queue = nil
	return q
}

// bounceAll answers the stanzas with cond.
func (r *remote) bounceAll(sts []*stanza.Stanza, cond mstanza.Condition) {
	s := r.f.srv
	ctx, cancel := endContext(s.ctx)
	defer cancel()
	for _, st := range sts {
		s.router.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: cond})
	}
}

// run connects, then writes the queue until the stream fails, idles or
// the server shuts down.
func (r *remote) run() {
	f := r.f
	s := f.srv
	log := s.log.With("remote", r.key.remote)
	ctx, cancel := context.WithTimeout(s.ctx, f.cfg.ConnectTimeout)
	o, err := f.connect(ctx, r.key.local, r.key.remote, false)
	cancel()
	if err != nil {
		log.Debug("s2s: outgoing stream failed", "cause", s2sErrKind(err))
		if !errors.Is(err, context.Canceled) {
			f.retry.failed(r.key.remote)
		}
		r.bounceAll(r.finish(), bounceCondition(err))
		return
	}
	f.retry.succeeded(r.key.remote)
	log.Debug("s2s: outgoing stream established", "auth", o.auth, "bidi", o.bidi)
	r.mu.Lock()
	r.nc = o.nc
	r.mu.Unlock()
	readDone := make(chan struct{})
	activity := make(chan struct{}, 1)
	var readErr error
	go func() {
		readErr = o.readLoop(s.ctx, activity, r.answer)
		close(readDone)
	}()
	shutdown, readEnded, endErr := r.pump(o.writeStanzas, readDone, activity, f.cfg.IdleTimeout)
	var se *StreamError
	switch {
	case shutdown:
		se = streamErr(condSystemShutdown, "")
	case readEnded:
		endErr = readErr
		// A stream error of ours (a stanza the peer may not send on a
		// bidirectional stream); the peer's own end the stream with
		// another error type.
		errors.As(readErr, &se)
	}
	left := r.finish()
	// Close our side: the stream error, if any, and the closing tag; the
	// peer answers with its own closing tag, which the reader waits for.
	o.nc.SetWriteDeadline(time.Now().Add(time.Second))
	o.t.writeClose(o.bw, se)
	o.bw.Flush()
	if !readEnded {
		o.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		<-readDone
	}
	o.nc.Close()
	if endErr != nil && !errors.Is(endErr, io.EOF) {
		log.Debug("s2s: outgoing stream ended", "cause", s2sErrKind(endErr))
	}
	// What came in while the stream closed goes on a new stream.
	r.requeueOrBounce(left, endErr)
}

// runBidi writes the queue on the incoming stream r.in until that
// stream ends; the stream's own goroutine closes it.
func (r *remote) runBidi() {
	_, _, endErr := r.pump(r.in.writeStanzas, r.in.done, nil, 0)
	if endErr != nil && !errors.Is(endErr, errStreamClosed) {
		// A write failed: end the stream, which its reader notices.
		r.in.raw.Close()
	}
	r.requeueOrBounce(r.finish(), endErr)
}

// pump writes what is queued with write until ended is closed (the
// stream's reader stopped), the server shuts down, a write fails, or,
// if idleTimeout is not zero, nothing was written nor read (activity)
// for that long.
func (r *remote) pump(write func([]string, []*stanza.Stanza, time.Duration) error, ended, activity <-chan struct{}, idleTimeout time.Duration) (shutdown, readEnded bool, err error) {
	var idle <-chan time.Time
	var timer *time.Timer
	if idleTimeout > 0 {
		timer = time.NewTimer(idleTimeout)
		defer timer.Stop()
		idle = timer.C
	}
	for {
		select {
		case <-r.wake:
		case <-activity:
			timer.Reset(idleTimeout)
			continue
		case <-idle:
			return false, false, nil
		case <-ended:
			return false, true, nil
		}
		r.mu.Lock()
		batch, ctl, stopped := r.queue, r.ctl, r.stopped
		r.queue, r.ctl = nil, nil
		r.mu.Unlock()
		if stopped {
			r.requeueOrBounce(batch, errS2SClosed)
			return true, false, nil
		}
		if len(batch) == 0 && len(ctl) == 0 {
			continue
		}
		if err := write(ctl, batch, r.f.srv.limits.WriteTimeout); err != nil {
			if errors.Is(err, errStreamClosed) {
				// Nothing was written: finish hands the stanzas on to
				// a new stream.
				r.mu.Lock()
				r.queue = append(batch, r.queue...)
				r.mu.Unlock()
			} else {
				r.bounceAll(batch, mstanza.RemoteServerTimeout)
			}
			return false, false, err
		}
		if timer != nil {
			timer.Reset(idleTimeout)
		}
	}
}

// requeueOrBounce routes stanzas again on a new stream, or, when the
// server is shutting down, bounces them.
func (r *remote) requeueOrBounce(sts []*stanza.Stanza, cause error) {
	if len(sts) == 0 {
		return
	}
	s := r.f.srv
	ctx, cancel := endContext(s.ctx)
	defer cancel()
	for _, st := range sts {
		if err := r.f.RouteRemote(ctx, st); err != nil {
			s.router.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: bounceCondition(cause)})
		}
	}
}

// s2sOut is an outgoing stream being negotiated or established.
type s2sOut struct {
	f        *federation
	nc       net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	t        *tcpStream
	from, to string
	id       string // the receiving server's stream id
	auth     string // "sasl" or "dialback"
	bidi     bool   // the peer may send its stanzas on it (XEP-0288)
	// lastInner are the inner tokens of the element nonza read last.
	lastInner []xml.Token
}

// s2sTarget is a place to dial for a domain.
type s2sTarget struct {
	addr   string
	direct bool // XEP-0368 direct TLS
}

// resolve returns where to dial domain: the Hosts override, else the
// _xmpps-server._tcp SRV records (direct TLS), then _xmpp-server._tcp,
// else the domain on port 5269 (RFC 6120 §3.2).
func (f *federation) resolve(ctx context.Context, domain string) []s2sTarget {
	if hp, ok := f.cfg.Hosts[domain]; ok {
		return []s2sTarget{{addr: hp}}
	}
	var out []s2sTarget
	for _, svc := range []struct {
		name   string
		direct bool
	}{{"xmpps-server", true}, {"xmpp-server", false}} {
		_, srvs, err := f.cfg.Resolver.LookupSRV(ctx, svc.name, "tcp", domain)
		if err != nil {
			continue
		}
		sort.SliceStable(srvs, func(i, j int) bool { return srvs[i].Priority < srvs[j].Priority })
		for _, srv := range srvs {
			if srv.Target == "." {
				continue // the service is decidedly not available
			}
			out = append(out, s2sTarget{addr: net.JoinHostPort(srv.Target, strconv.Itoa(int(srv.Port))), direct: svc.direct})
		}
	}
	if len(out) == 0 {
		out = append(out, s2sTarget{addr: net.JoinHostPort(domain, "5269")})
	}
	return out
}

// connect opens a stream from the local domain from to the remote domain
// to, with TLS. Unless verifyOnly, it also authenticates: SASL EXTERNAL
// when the peer offers it, else dialback. A bidirectional stream is read
// at S2SConfig.ReadRate, as incoming ones are.
func (f *federation) connect(ctx context.Context, from, to string, verifyOnly bool) (*s2sOut, error) {
	var errs []error
	for _, tg := range f.resolve(ctx, to) {
		nc, err := f.cfg.Dial(ctx, "tcp", tg.addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var rc *rateConn
		if !verifyOnly && !f.cfg.NoBidi && f.cfg.ReadRate > 0 {
			f.srv.mu.Lock()
			clk := f.srv.rateClock
			f.srv.mu.Unlock()
			rc = newRateConn(nc, 0, 0, clk) // no limit until bidi is negotiated
			nc = rc
		}
		o, err := f.negotiateOut(ctx, nc, tg.direct, from, to, verifyOnly)
		if err != nil {
			nc.Close()
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if rc != nil && o.bidi {
			rate := int64(f.cfg.ReadRate)
			rc.setRate(rate, readBurst(rate, f.srv.limits.MaxStanzaSize))
		}
		return o, nil
	}
	return nil, fmt.Errorf("s2s: connecting to %s: %w", to, errors.Join(errs...))
}

// clientTLS is the TLS configuration of an outgoing stream: our
// certificate for from, the peer's verified afterwards (verifyPeer).
func (f *federation) clientTLS(from, to string, direct bool) *tls.Config {
	cfg := &tls.Config{
		ServerName:         to,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified by verifyPeer, which decides between SASL and dialback
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if f.srv.getCert == nil {
				return &tls.Certificate{}, nil
			}
			c, err := f.srv.getCert(&tls.ClientHelloInfo{ServerName: from})
			if err != nil || c == nil {
				return &tls.Certificate{}, nil
			}
			return c, nil
		},
	}
	if direct {
		cfg.NextProtos = []string{"xmpp-server"}
	}
	return cfg
}

// verifyPeer checks the peer's certificate chain, and that it presents
// domain (RFC 6120 §13.7.2, RFC 6125): as a DNS-ID, an XmppAddr or the
// SRV-ID _xmpp-server.domain (see xmppIdentityOK). A mismatch is an
// x509.HostnameError.
func (f *federation) verifyPeer(cs *tls.ConnectionState, domain string) error {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if otherNamesOnly(leaf) {
		// A subjectAltName of otherNames only, critical as RFC 5280
		// §4.2.1.6 has it when the subject is empty: the x509 package
		// reads none of its names and leaves it unhandled; we handle it.
		c := *leaf
		c.UnhandledCriticalExtensions = nil
		for _, id := range leaf.UnhandledCriticalExtensions {
			if !id.Equal(oidSubjectAltName) {
				c.UnhandledCriticalExtensions = append(c.UnhandledCriticalExtensions, id)
			}
		}
		leaf = &c
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         f.cfg.RootCAs,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return err
	}
	if err := leaf.VerifyHostname(domain); err != nil && !(xmppIdentityOK(leaf, domain) && dnsConstraintsAllow(chains, domain)) {
		return err
	}
	return nil
}

// dnsConstraintsAllow says whether the DNS name constraints of the CAs
// of one of chains allow domain. The x509 package checks them against
// DNS-IDs only; an XmppAddr or SRV-ID names a domain too.
func dnsConstraintsAllow(chains [][]*x509.Certificate, domain string) bool {
	for _, chain := range chains {
		ok := true
		for _, ca := range chain[1:] {
			if len(ca.PermittedDNSDomains) > 0 && !slices.ContainsFunc(ca.PermittedDNSDomains, func(c string) bool { return underConstraint(domain, c) }) ||
				slices.ContainsFunc(ca.ExcludedDNSDomains, func(c string) bool { return underConstraint(domain, c) }) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// underConstraint says whether domain is within a DNS name constraint
// (RFC 5280 §4.2.1.10): the domain itself or a sub-domain, or, for a
// constraint with a leading dot, a sub-domain only.
func underConstraint(domain, constraint string) bool {
	domain, constraint = strings.ToLower(domain), strings.ToLower(constraint)
	if constraint == "" {
		return true
	}
	if strings.HasPrefix(constraint, ".") {
		return strings.HasSuffix(domain, constraint) && len(domain) > len(constraint)
	}
	return domain == constraint || strings.HasSuffix(domain, "."+constraint)
}

// otherNamesOnly says whether cert's subjectAltName extension is a
// well-formed one that names it by XmppAddr or SRV-ID only.
func otherNamesOnly(cert *x509.Certificate) bool {
	if len(cert.DNSNames)+len(cert.EmailAddresses)+len(cert.IPAddresses)+len(cert.URIs) > 0 {
		return false
	}
	ext := sanExtension(cert)
	if ext == nil {
		return false
	}
	addrs, srvs, err := certOtherNames(ext)
	return err == nil && len(addrs)+len(srvs) > 0
}

// s2sFeatures is what a receiving server's stream features offer.
type s2sFeatures struct {
	startTLS, external, dialback, bidi bool
}

func parseS2SFeatures(toks []xml.Token) s2sFeatures {
	var ft s2sFeatures
	var inMech bool
	for _, t := range toks {
		switch tt := t.(type) {
		case xml.StartElement:
			switch {
			case tt.Name.Space == nsTLS && tt.Name.Local == "starttls":
				ft.startTLS = true
			case tt.Name.Space == nsDialbackFt && tt.Name.Local == "dialback":
				ft.dialback = true
			case tt.Name.Space == nsBidiFt && tt.Name.Local == "bidi":
				ft.bidi = true
			case tt.Name.Space == nsSASL && tt.Name.Local == "mechanism":
				inMech = true
			}
		case xml.EndElement:
			inMech = false
		case xml.CharData:
			if inMech && string(tt) == "EXTERNAL" {
				ft.external = true
			}
		}
	}
	return ft
}

// writeS2SOpen writes the opening of a server-to-server stream.
func writeS2SOpen(w *bufio.Writer, id, from, to string) {
	w.WriteString(`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'`)
	if id != "" {
		w.WriteString(` id='` + escapeString(id) + `'`)
	}
	if from != "" {
		w.WriteString(` from='` + escapeString(from) + `'`)
	}
	if to != "" {
		w.WriteString(` to='` + escapeString(to) + `'`)
	}
	w.WriteString(` version='1.0'>`)
}

// negotiateOut runs the initiating server's side of stream negotiation
// (RFC 6120 §4.3) on nc.
func (f *federation) negotiateOut(ctx context.Context, nc net.Conn, direct bool, from, to string, verifyOnly bool) (*s2sOut, error) {
	s := f.srv
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	o := &s2sOut{f: f, nc: nc, from: from, to: to}
	o.br = bufio.NewReaderSize(nc, 4096)
	o.bw = bufio.NewWriterSize(nc, 4096)
	var tlsState *tls.ConnectionState
	startTLS := func() error {
		tc := tls.Client(nc, f.clientTLS(from, to, direct))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		cs := tc.ConnectionState()
		tlsState = &cs
		o.nc = tc
		o.br.Reset(tc)
		o.bw.Reset(tc)
		return nil
	}
	if direct {
		if err := startTLS(); err != nil {
			return nil, err
		}
	}
	limit := s.limits.MaxStanzaSize
	o.t = newTCPStream(o.br, nsServer, limit, s.limits.MaxDepth)
	first := true
	for {
		if !first {
			o.t.restart(limit)
		}
		first = false
		writeS2SOpen(o.bw, "", from, to)
		if err := o.bw.Flush(); err != nil {
			return nil, err
		}
		h, err := o.t.readOpen()
		if err != nil {
			return nil, err
		}
		o.id = h.id
		ft, err := o.readFeatures()
		if err != nil {
			return nil, err
		}
		if tlsState == nil {
			if !ft.startTLS {
				return nil, errors.New("the peer does not offer STARTTLS")
			}
			o.bw.WriteString(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
			if err := o.bw.Flush(); err != nil {
				return nil, err
			}
			start, err := o.nonza()
			if err != nil {
				return nil, err
			}
			if start.Name.Space != nsTLS || start.Name.Local != "proceed" {
				return nil, errors.New("STARTTLS refused")
			}
			if err := startTLS(); err != nil {
				return nil, err
			}
			continue
		}
		if o.auth != "" || verifyOnly {
			return o, nil // after SASL, the new stream's features; or dialback verification only
		}
		certErr := f.verifyPeer(tlsState, to)
		if certErr != nil && f.cfg.NoDialback {
			return nil, fmt.Errorf("certificate of %s: %w", to, certErr)
		}
		if ft.bidi && !f.cfg.NoBidi {
			// XEP-0288 §2.2: before authenticating; written with it.
			o.bw.WriteString(`<bidi xmlns='urn:xmpp:bidi'/>`)
			o.bidi = true
		}
		switch {
		case ft.external:
			o.bw.WriteString(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>` +
				base64.StdEncoding.EncodeToString([]byte(from)) + `</auth>`)
			if err := o.bw.Flush(); err != nil {
				return nil, err
			}
			start, err := o.nonza()
			if err != nil {
				return nil, err
			}
			if start.Name.Space == nsSASL && start.Name.Local == "success" {
				o.auth = "sasl"
				continue
			}
			if !ft.dialback || f.cfg.NoDialback {
				return nil, errors.New("SASL EXTERNAL refused")
			}
			// Refused (the peer may not trust our CA): dialback on the
			// same stream.
			if err := o.dialback(); err != nil {
				return nil, err
			}
			o.auth = "dialback"
			return o, nil
		case ft.dialback && !f.cfg.NoDialback:
			if err := o.dialback(); err != nil {
				return nil, err
			}
			o.auth = "dialback"
			return o, nil
		}
		return nil, errors.New("no authentication method in common")
	}
}

// readFeatures reads the stream features.
func (o *s2sOut) readFeatures() (s2sFeatures, error) {
	start, err := o.nonza()
	if err != nil {
		return s2sFeatures{}, err
	}
	if start.Name.Space != nsStream || start.Name.Local != "features" {
		return s2sFeatures{}, errors.New("expected stream features")
	}
	return parseS2SFeatures(o.lastInner), nil
}

// nonza reads the next stream-level element; a stream error from the
// peer becomes an error.
func (o *s2sOut) nonza() (xml.StartElement, error) {
	start, err := o.t.next()
	if err != nil {
		return start, err
	}
	return start, o.readNonza(start)
}

// readNonza reads the rest of the stream-level element start.
func (o *s2sOut) readNonza(start xml.StartElement) error {
	toks, err := o.t.readElement()
	if err != nil {
		return err
	}
	o.lastInner = toks
	if start.Name.Space == nsStream && start.Name.Local == "error" {
		return fmt.Errorf("the peer sent a stream error: %s", streamErrorCondition(toks))
	}
	return nil
}

// dialbackAnswer returns the answer to start, the element readNonza read
// last, if it is a dialback request of the peer; else "".
func (o *s2sOut) dialbackAnswer(start xml.StartElement) string {
	if start.Name.Space != nsDialback || attr(start, "type") != "" {
		return ""
	}
	from, to := attr(start, "from"), attr(start, "to")
	switch start.Name.Local {
	case "verify":
		return o.f.verifyAnswer(from, to, attr(start, "id"), charData(o.lastInner))
	case "result":
		return `<db:result from='` + escapeString(to) + `' to='` + escapeString(from) + `' type='error'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>`
	}
	return ""
}

// streamErrorCondition returns the condition of a stream error's inner
// tokens.
func streamErrorCondition(toks []xml.Token) string {
	for _, t := range toks {
		if se, ok := t.(xml.StartElement); ok && se.Name.Space == nsStreams && se.Name.Local != "text" {
			return se.Name.Local
		}
	}
	return condUndefined
}

// dialback asks the receiving server to verify our key (XEP-0220 §2.1).
func (o *s2sOut) dialback() error {
	key := o.f.dialbackKey(o.to, o.from, o.id)
	o.bw.WriteString(`<db:result from='` + escapeString(o.from) + `' to='` + escapeString(o.to) + `'>` + key + `</db:result>`)
	if err := o.bw.Flush(); err != nil {
		return err
	}
	for {
		start, err := o.nonza()
		if err != nil {
			return err
		}
		if start.Name.Space != nsDialback || start.Name.Local != "result" {
			continue
		}
		if attr(start, "type") != "valid" {
			return errors.New("dialback refused")
		}
		return nil
	}
}

// writeStanzas writes the answers ctl and a batch, and flushes them.
func (o *s2sOut) writeStanzas(ctl []string, batch []*stanza.Stanza, timeout time.Duration) error {
	o.nc.SetWriteDeadline(time.Now().Add(timeout))
	for _, s := range ctl {
		o.bw.WriteString(s)
	}
	for _, st := range batch {
		if err := o.t.writeStanza(o.bw, st); err != nil {
			return err
		}
	}
	return o.bw.Flush()
}

// readLoop reads the peer's side of an established outgoing stream until
// it ends. On a bidirectional stream (XEP-0288) the peer's stanzas go to
// the router if they are from the domain the stream is to and to the one
// it is from, and each tells activity that the stream is in use; else
// nothing is expected but whitespace, a stream error and the closing
// tag. The peer's dialback requests are handed to answer, which queues
// their answers for the writer: a key to verify (<db:verify/>, we are
// its authoritative server) is answered as on an incoming stream; a
// domain pair to authenticate on our stream (<db:result/>, XEP-0288 §2)
// is refused with the dialback error resource-constraint, upon which
// the peer opens a stream of its own for it (XEP-0220's dialback error
// conditions), rather than waiting for an answer that never comes.
func (o *s2sOut) readLoop(ctx context.Context, activity chan<- struct{}, answer func(string) bool) error {
	o.nc.SetReadDeadline(time.Time{})
	authed := func(from, to string) (bool, bool) { return from == o.to, from == o.to && to == o.from }
	for {
		o.t.wait()
		start, err := o.t.next()
		if err != nil {
			return err
		}
		if !o.bidi || stanza.KindOf(start.Name) == 0 || start.Name.Space != nsClient {
			if err := o.readNonza(start); err != nil {
				return err
			}
			if a := o.dialbackAnswer(start); a != "" && !answer(a) {
				return streamErr(condPolicyViolation, "too many dialback requests")
			}
			continue
		}
		if err := o.f.receive(ctx, o.t, start, authed); err != nil {
			return err
		}
		select {
		case activity <- struct{}{}:
		default:
		}
	}
}

func attr(start xml.StartElement, name string) string {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// s2sErrKind describes why an s2s stream failed for the log: a kind,
// with domains and certificate problems but never an IP address (a DNS
// error's text names the resolver, a network error's the peer).
func s2sErrKind(err error) string {
	var (
		se   *StreamError
		dns  *net.DNSError
		cert x509.HostnameError
		ua   x509.UnknownAuthorityError
		inv  x509.CertificateInvalidError
		ne   net.Error
	)
	switch {
	case err == nil, errors.As(err, &se):
		return errKind(err)
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "dns: " + dns.Name + " not found"
		}
		return "dns: lookup of " + dns.Name + " failed"
	case errors.As(err, &cert):
		return "certificate: " + cert.Error()
	case errors.As(err, &ua):
		return "certificate: " + ua.Error()
	case errors.As(err, &inv):
		return "certificate: " + inv.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &ne):
		return "network error"
	}
	// Our own errors (authentication refused, no STARTTLS) name domains
	// at most.
	return RedactAddresses(redactNetError(err))
}

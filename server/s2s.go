package server

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server/metrics"
	"github.com/kiez-im/kiez/stanza"
)

// Namespaces of server-to-server streams.
const (
	nsServer     = "jabber:server"
	nsDialback   = "jabber:server:dialback"
	nsDialbackFt = "urn:xmpp:features:dialback"
	nsBidi       = "urn:xmpp:bidi"
	nsBidiFt     = "urn:xmpp:features:bidi"
)

// S2SConfig configures federation: streams to and from other servers
// (RFC 6120, content namespace jabber:server). TLS is mandatory in both
// directions: STARTTLS, or direct TLS (XEP-0368) where the peer's DNS
// offers it. A peer is authenticated by its certificate (PKIX, SASL
// EXTERNAL as XEP-0178 says; the certificate names the domain by a
// DNS-ID, an XmppAddr or the SRV-ID _xmpp-server.<domain>, RFC 6120
// §13.7.1.2) or, when its certificate is not valid for its domain, by
// Server Dialback (XEP-0220) over TLS unless NoDialback.
//
// Streams are bidirectional (XEP-0288) unless NoBidi: an incoming stream
// offers it, an outgoing one asks for it when offered, and then one TCP
// connection carries the stanzas of both servers. The receiving server
// sends on it only for the domain pairs the initiating server
// authenticated, reversed: with SASL EXTERNAL the stream's to and from,
// with dialback each pair verified on it; stanzas it carries back pass
// the same checks as on any incoming stream.
type S2SConfig struct {
	// Hosts maps a remote domain to the "host:port" to dial for it, with
	// STARTTLS, instead of what DNS says (private networks, tests).
	Hosts map[string]string
	// Resolver looks up the SRV records _xmpps-server._tcp (direct TLS)
	// and _xmpp-server._tcp (STARTTLS) of a remote domain; without any,
	// the domain itself is dialled on port 5269. Nil is
	// net.DefaultResolver.
	Resolver Resolver
	// Dial opens the TCP connections to other servers; nil is a
	// net.Dialer's DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Allow, if not empty, lists the only domains federated with, in
	// both directions; Deny lists domains never federated with.
	Allow []string
	Deny  []string
	// NoDialback turns Server Dialback off: then only peers with a
	// certificate valid for their domain federate, in both directions.
	NoDialback bool
	// NoBidi turns bidirectional streams (XEP-0288) off: each server
	// sends its stanzas on a stream it opened, two TCP connections per
	// pair of servers, as with peers that do not offer it.
	NoBidi bool
	// RootCAs verifies peers' certificates; nil is the system's pool.
	RootCAs *x509.CertPool
	// IdleTimeout closes streams that carried no stanza for that long
	// (default 10 min).
	IdleTimeout time.Duration
	// ConnectTimeout bounds resolving, dialling and negotiating an
	// outgoing stream, and a dialback verification (default 30 s).
	ConnectTimeout time.Duration
	// QueueSize bounds the stanzas waiting for one remote domain while
	// its stream is being established or written (default 1000); the
	// ones beyond are bounced with resource-constraint.
	QueueSize int
	// ReadRate is how many bytes a second the server reads from an
	// authenticated incoming stream, and from the peer's side of a
	// bidirectional stream it opened (default 1 MiB/s; negative is no
	// limit). Before authentication, Limits.ReadRate applies as for
	// clients; Limits.MaxStanzaSize and MaxDepth bound elements.
	ReadRate int
	// RetryMin and RetryMax bound the back-off after an outgoing stream
	// to a domain failed to be established: no new attempt is made for
	// RetryMin (default 1 s), doubled after each further failure up to
	// RetryMax (default 5 min), and stanzas for the domain bounce at
	// once with remote-server-not-found meanwhile (those queued for an
	// attempt in flight wait for it). An established stream resets it.
	RetryMin, RetryMax time.Duration
	// Now is the clock of the back-off; nil is time.Now. Tests set it.
	Now func() time.Time
}

// Resolver looks up SRV records, as *net.Resolver does.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
}

func (c S2SConfig) withDefaults() S2SConfig {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1000
	}
	if c.ReadRate == 0 {
		c.ReadRate = 1 << 20
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Dial == nil {
		d := &net.Dialer{KeepAlive: -1}
		c.Dial = d.DialContext
	}
	return c
}

// federation is the server's s2s side: the outgoing streams by domain
// pair, with their queues, and the incoming streams. It is the server's
// RemoteRouter.
type federation struct {
	srv    *Server
	cfg    S2SConfig
	secret []byte // the dialback secret (XEP-0185), new at every start
	allow  map[string]bool
	deny   map[string]bool
	retry  *backoff // unreachable domains (s2s_backoff.go)

	mu     sync.Mutex
	out    map[pairKey]*remote
	in     map[*s2sIn]struct{}
	closed bool
}

// pairKey is a stream's domain pair: the local domain (or service) a
// stanza is from and the remote domain it is to.
type pairKey struct{ local, remote string }

func newFederation(s *Server, cfg S2SConfig) (*federation, error) {
	f := &federation{
		srv:    s,
		cfg:    cfg.withDefaults(),
		secret: make([]byte, 32),
		out:    make(map[pairKey]*remote),
		in:     make(map[*s2sIn]struct{}),
		retry:  newBackoff(cfg.Now, cfg.RetryMin, cfg.RetryMax),
	}
	rand.Read(f.secret)
	set := func(list []string, what string) (map[string]bool, error) {
		m := make(map[string]bool, len(list))
		for _, d := range list {
			if d == "" || strings.ContainsAny(d, "@/ ") {
				return nil, fmt.Errorf("server: s2s: invalid domain %q in %s", d, what)
			}
			m[strings.ToLower(d)] = true
		}
		return m, nil
	}
	var err error
	if f.allow, err = set(cfg.Allow, "Allow"); err != nil {
		return nil, err
	}
	if f.deny, err = set(cfg.Deny, "Deny"); err != nil {
		return nil, err
	}
	for d, hp := range cfg.Hosts {
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return nil, fmt.Errorf("server: s2s: host of %q: %w", d, err)
		}
	}
	return f, nil
}

// serves says whether domain is one of the server's: a virtual host, a
// service or a component.
func (s *Server) serves(domain string) bool {
	return s.local[domain] || s.services[domain] != nil || s.components[domain] != nil
}

// allowed says whether the server federates with domain.
func (f *federation) allowed(domain string) bool {
	if f.srv.serves(domain) || f.deny[domain] {
		return false
	}
	return len(f.allow) == 0 || f.allow[domain]
}

var errS2SClosed = errors.New("server: s2s: shutting down")

// RouteRemote queues st for the stream to its 'to' domain, opening that
// stream if there is none (unless the domain is in its retry back-off).
// Stanzas that cannot be sent are bounced to
// their sender here; an error makes the router bounce st with
// remote-server-not-found.
func (f *federation) RouteRemote(ctx context.Context, st *stanza.Stanza) error {
	k := pairKey{local: st.From.Domainpart(), remote: st.To.Domainpart()}
	if k.local == "" || !f.allowed(k.remote) {
		return fmt.Errorf("server: s2s: not federating with %s", k.remote)
	}
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return errS2SClosed
		}
		r := f.out[k]
		if r == nil && f.retry.waiting(k.remote) {
			f.mu.Unlock()
			return fmt.Errorf("server: s2s: %s unreachable, not retried yet", k.remote)
		}
		if r == nil {
			r = newRemote(f, k)
			if !f.srv.goConn(r.run) {
				f.mu.Unlock()
				return errS2SClosed
			}
			f.out[k] = r
		}
		f.mu.Unlock()
		switch r.enqueue(st) {
		case enqueued:
			return nil
		case queueFull:
			f.srv.router.bounce(ctx, st, mstanza.Error{Type: mstanza.Wait, Condition: mstanza.ResourceConstraint})
			return nil
		}
		// The stream ended meanwhile: take a new one.
	}
}

// goConn runs f as a connection's goroutine, which Shutdown waits for,
// unless the server is closed.
func (s *Server) goConn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.connWG.Add(1)
	go func() {
		defer s.connWG.Done()
		f()
	}()
	return true
}

// shutdown closes the outgoing and incoming streams; their goroutines
// end on their own, and Shutdown waits for them.
func (f *federation) shutdown() {
	f.mu.Lock()
	f.closed = true
	outs := make([]*remote, 0, len(f.out))
	for _, r := range f.out {
		outs = append(outs, r)
	}
	ins := make([]*s2sIn, 0, len(f.in))
	for c := range f.in {
		ins = append(ins, c)
	}
	f.mu.Unlock()
	for _, r := range outs {
		r.stop()
	}
	for _, c := range ins {
		c.stop()
	}
}

// registerMetrics adds the number of s2s streams to the connections by
// transport, kiez_connections{transport="s2s"}.
func (f *federation) registerMetrics(r *metrics.Registry) {
	if r == nil {
		return
	}
	r.GaugeFunc("kiez_connections", "Open client connections, negotiating or bound, by transport.",
		func() float64 { return float64(f.count()) }, metrics.Label{Name: "transport", Value: "s2s"})
}

// count returns the number of incoming and outgoing streams; an incoming
// stream that also carries our stanzas (XEP-0288) counts once.
func (f *federation) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.in)
	for _, r := range f.out {
		if r.in == nil {
			n++
		}
	}
	return n
}

// receive reads the rest of a stanza from a peer's authenticated stream
// and routes it on the stanza path of local ones. authed tells whether
// the stanza's from domain was authenticated on the stream, and whether
// its pair of from and to domains was: a stanza from another domain ends
// the stream with invalid-from, one to a domain not ours with
// host-unknown, one for a pair not authenticated with invalid-from.
func (f *federation) receive(ctx context.Context, t *tcpStream, start xml.StartElement, authed func(from, to string) (fromOK, pairOK bool)) error {
	st, err := t.readStanza(start)
	if err != nil {
		var ae *stanza.AddressError
		if errors.As(err, &ae) {
			return streamErr(condImproperAddressing, "")
		}
		return err
	}
	from, to := st.From.Domainpart(), st.To.Domainpart()
	fromOK, pairOK := authed(from, to)
	switch {
	case !fromOK:
		return streamErr(condS2SInvalidFrom, "")
	case to == "":
		return streamErr(condImproperAddressing, "")
	case !f.srv.serves(to):
		return streamErr(condHostUnknown, "")
	case !pairOK:
		return streamErr(condS2SInvalidFrom, "that domain pair was not authenticated on this stream")
	}
	f.srv.router.deliver(ctx, filter.Remote, st)
	return nil
}

// bounceCondition is the stanza error for stanzas that could not be sent
// because of err.
func bounceCondition(err error) mstanza.Condition {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return mstanza.RemoteServerTimeout
	}
	var se *StreamError
	if errors.As(err, &se) && se.Condition == condConnectionTimeout {
		return mstanza.RemoteServerTimeout
	}
	return mstanza.RemoteServerNotFound
}

var _ RemoteRouter = (*federation)(nil)

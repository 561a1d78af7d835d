package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// target says where and how the client connects.
type target struct {
	addr    string // loopback host:port
	domain  string
	mech    string // a SCRAM mechanism name
	timeout time.Duration
	tls     *tls.Config
	salted  *saltedCache
}

// conn is one client-to-server stream: a lean hand-written client, so that
// the load client spends little CPU per stanza on the cores it shares with
// the server.
type conn struct {
	t      *target
	raw    net.Conn // TCP
	nc     net.Conn // TLS after STARTTLS
	split  *splitter
	readTO time.Duration
	feats  *node
	ids    int

	wmu sync.Mutex // serialises writes

	// jid is the full JID bound by the server.
	jid string
}

// streamError is a <stream:error/> from the server.
type streamError struct{ cond string }

func (e *streamError) Error() string { return "stream error: " + e.cond }

// saslFailure is a SASL <failure/> from the server.
type saslFailure struct{ cond string }

func (e *saslFailure) Error() string { return "sasl failure: " + e.cond }

// iqError is an <iq type='error'/> answer.
type iqError struct{ cond string }

func (e *iqError) Error() string { return "iq error: " + e.cond }

// dial connects, opens a stream and negotiates STARTTLS. The stream is not
// authenticated yet.
func dial(ctx context.Context, t *target) (*conn, error) {
	d := net.Dialer{Timeout: t.timeout}
	nc, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	c := &conn{t: t, raw: nc, nc: nc, readTO: t.timeout}
	c.split = newSplitter(nc, c.refreshDeadline)
	if err := c.startTLS(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *conn) refreshDeadline() {
	var d time.Time
	if c.readTO > 0 {
		d = time.Now().Add(c.readTO)
	}
	c.nc.SetReadDeadline(d)
}

// setReadTimeout sets how long a read may wait; 0 waits for ever (idle
// sessions, receivers).
func (c *conn) setReadTimeout(d time.Duration) { c.readTO = d }

func (c *conn) startTLS(ctx context.Context) error {
	if err := c.openStream(); err != nil {
		return err
	}
	if c.feats.find("starttls") == nil {
		return errors.New("the server offers no STARTTLS")
	}
	if err := c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		return err
	}
	el, err := c.next()
	if err != nil {
		return err
	}
	if name(el) != "proceed" {
		return fmt.Errorf("starttls: got %q", truncate(el, 200))
	}
	tc := tls.Client(c.raw, c.t.tls)
	hctx, cancel := context.WithTimeout(ctx, c.t.timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	c.nc = tc
	c.split = newSplitter(tc, c.refreshDeadline)
	return c.openStream()
}

// openStream sends a stream header and reads the server's header and
// features.
func (c *conn) openStream() error {
	c.split.restart()
	if err := c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" +
		escape(c.t.domain) + "' version='1.0'>"); err != nil {
		return err
	}
	hdr, err := c.split.next()
	if err != nil {
		return fmt.Errorf("stream header: %w", err)
	}
	if name(hdr) != "stream" {
		return fmt.Errorf("expected a stream header, got %q", truncate(hdr, 200))
	}
	el, err := c.next()
	if err != nil {
		return fmt.Errorf("stream features: %w", err)
	}
	if name(el) != "features" {
		return fmt.Errorf("expected stream features, got %q", truncate(el, 200))
	}
	c.feats, err = parseNode(el)
	return err
}

// login authenticates with the target's SCRAM mechanism, restarts the
// stream and binds a server-chosen resource.
func (c *conn) login(user, pass string) error {
	if !slices.Contains(c.mechanisms(), c.t.mech) {
		return fmt.Errorf("mechanism %s not offered (offered: %v)", c.t.mech, c.mechanisms())
	}
	if err := c.scram(user, pass); err != nil {
		return err
	}
	if err := c.openStream(); err != nil {
		return err
	}
	return c.bind()
}

// mechanisms lists the SASL mechanisms the server offers.
func (c *conn) mechanisms() []string {
	var out []string
	if m := c.feats.find("mechanisms"); m != nil {
		for _, n := range m.Children {
			if n.XMLName.Local == "mechanism" {
				out = append(out, strings.TrimSpace(n.Text))
			}
		}
	}
	return out
}

func (c *conn) bind() error {
	id := c.id("bind")
	if err := c.send("<iq type='set' id='" + id + "'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"); err != nil {
		return err
	}
	el, err := c.waitIQ(id)
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	n, err := parseNode(el)
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	j := n.find("jid")
	if j == nil {
		return fmt.Errorf("bind: no jid in %q", truncate(el, 200))
	}
	c.jid = strings.TrimSpace(j.Text)
	return nil
}

// bare returns the bound bare JID.
func (c *conn) bare() string {
	if i := strings.IndexByte(c.jid, '/'); i >= 0 {
		return c.jid[:i]
	}
	return c.jid
}

func (c *conn) id(prefix string) string {
	c.ids++
	return prefix + strconv.Itoa(c.ids)
}

// next returns the next top-level element; a stream error becomes a
// *streamError. The slice is valid until the next call.
func (c *conn) next() ([]byte, error) {
	el, err := c.split.next()
	if err != nil {
		return nil, err
	}
	if name(el) == "error" && strings.HasPrefix(string(el), "<stream:") {
		cond := "unknown"
		if n, err := parseNode(el); err == nil {
			cond = n.condition()
		}
		return nil, &streamError{cond}
	}
	return el, nil
}

// waitIQ reads until the iq answer with the given id, answering the
// server's pings and dropping everything else on the way. An error answer
// becomes an *iqError.
func (c *conn) waitIQ(id string) ([]byte, error) {
	for {
		el, err := c.next()
		if err != nil {
			return nil, err
		}
		if name(el) != "iq" {
			continue
		}
		if attr(el, "id") != id {
			c.answerIQ(el)
			continue
		}
		if attr(el, "type") == "error" {
			return el, &iqError{errorCondition(el)}
		}
		return el, nil
	}
}

// errorCondition returns the error condition in el, or "unknown".
func errorCondition(el []byte) string {
	n, err := parseNode(el)
	if err != nil {
		return "unknown"
	}
	return n.condition()
}

// answerIQ answers a get or set iq from the server: a ping with a result,
// anything else with service-unavailable, so that the server never counts
// a busy client as dead.
func (c *conn) answerIQ(el []byte) {
	typ := attr(el, "type")
	if typ != "get" && typ != "set" {
		return
	}
	head := "<iq id='" + escape(attr(el, "id")) + "'"
	if from := attr(el, "from"); from != "" {
		head += " to='" + escape(from) + "'"
	}
	if strings.Contains(string(el), "urn:xmpp:ping") {
		c.send(head + " type='result'/>")
		return
	}
	c.send(head + " type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
}

// send writes raw XML; it is safe for concurrent use.
func (c *conn) send(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.t.timeout))
	_, err := c.nc.Write([]byte(s))
	return err
}

// sendBytes is send for a reused buffer.
func (c *conn) sendBytes(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.t.timeout))
	_, err := c.nc.Write(b)
	return err
}

// close ends the stream, waits up to wait for the server's end of stream
// and closes the connection.
func (c *conn) close(wait time.Duration) {
	if wait > 0 && c.send("</stream:stream>") == nil {
		c.readTO = wait
		for {
			if _, err := c.split.next(); err != nil {
				break
			}
		}
	}
	c.nc.Close()
}

// abort closes the connection without ending the stream.
func (c *conn) abort() { c.raw.Close() }

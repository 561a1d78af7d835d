package servertest

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
)

// Client is a logged-in mellium client session whose incoming stanzas are
// collected for the test to inspect.
type Client struct {
	*xmpp.Session
	t    testing.TB
	in   chan *stanza.Stanza
	done chan error
	n    int

	mu      sync.Mutex
	answers []answerer
}

// answerer answers the iqs it matches; see Answer.
type answerer struct {
	match  func(*stanza.Stanza) bool
	answer func(*stanza.Stanza) *stanza.Stanza
}

// Answer makes the client answer the iq gets and sets for which match
// returns true with what answer returns, as a real client answers the
// server's queries (XEP-0115 disco#info, pings). The client library
// answers every other iq with service-unavailable. Answered iqs are still
// collected for Expect.
func (c *Client) Answer(match func(*stanza.Stanza) bool, answer func(iq *stanza.Stanza) *stanza.Stanza) {
	c.mu.Lock()
	c.answers = append(c.answers, answerer{match, answer})
	c.mu.Unlock()
}

// Connect logs in as user and starts reading stanzas. The session is
// closed when the test ends.
func (s *Server) Connect(t testing.TB, user jid.JID, password string, mechs ...sasl.Mechanism) *Client {
	t.Helper()
	// The context outlives the login: mellium v0.22 sets a deadline in the
	// past on the connection if the context ends while a watcher of the
	// negotiation still runs, so it is only cancelled when the test ends.
	// Its timeout only guards against a hung login.
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	sess, err := s.Login(ctx, user, password, mechs...)
	if err != nil {
		t.Fatalf("login as %s: %v", user, err)
	}
	return NewClient(t, sess)
}

// NewClient wraps an established session.
func NewClient(t testing.TB, sess *xmpp.Session) *Client {
	c := &Client{Session: sess, t: t, in: make(chan *stanza.Stanza, 1024), done: make(chan error, 1)}
	go func() {
		c.done <- sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			st, err := stanza.Read(&closing{r: r, name: start.Name}, *start, 0)
			if err != nil {
				return nil
			}
			if st.Kind == stanza.IQKind && (st.Type == stanza.Get || st.Type == stanza.Set) {
				c.mu.Lock()
				answers := c.answers
				c.mu.Unlock()
				for _, a := range answers {
					if a.match(st) {
						if _, err := xmlstream.Copy(r, a.answer(st).TokenReader()); err != nil {
							return err
						}
						break
					}
				}
			}
			select {
			case c.in <- st:
			default:
			}
			return nil
		}))
	}()
	t.Cleanup(func() { sess.Close(); sess.Conn().Close() })
	return c
}

// closing turns mellium's inner-element reader into one that ends with
// the stanza's end element, as stanza.Read expects.
type closing struct {
	r    xml.TokenReader
	name xml.Name
	done bool
}

func (c *closing) Token() (xml.Token, error) {
	if c.done {
		return nil, io.EOF
	}
	t, err := c.r.Token()
	if err == io.EOF || (t == nil && err == nil) {
		c.done = true
		return xml.EndElement{Name: c.name}, nil
	}
	return t, err
}

// Send writes a stanza.
func (c *Client) Send(st *stanza.Stanza) {
	c.t.Helper()
	// No cancellable context: mellium v0.22 reacts to a context that ends
	// after Send returned by setting a write deadline in the past, which
	// makes the next write on the stream (ours, or its automatic iq
	// answers) fail with a timeout.
	if err := c.Session.Send(context.Background(), st.TokenReader()); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// SendRaw writes raw XML onto the stream, bypassing the client library's
// checks (for tests of bad input).
func (c *Client) SendRaw(xmlText string) error {
	_, err := c.Session.Conn().Write([]byte(xmlText))
	return err
}

// Sync returns once the server has processed everything sent before it:
// it sends an iq to the server and waits for the answer.
func (c *Client) Sync() {
	c.t.Helper()
	c.Expect(ByID(c.sendSync()))
}

// sendSync sends the iq of a sync and returns its id.
func (c *Client) sendSync() string {
	c.t.Helper()
	c.n++
	id := fmt.Sprintf("sync-%d", c.n)
	name := xml.Name{Space: "urn:kiez:test:sync", Local: "sync"}
	c.Send(&stanza.Stanza{Kind: stanza.IQKind, ID: id, Type: stanza.Get, To: c.LocalAddr().Domain(),
		Inner: []xml.Token{xml.StartElement{Name: name}, xml.EndElement{Name: name}}})
	return id
}

// patience bounds every wait of this package. It is no deadline a
// working server has to beat, only a guard that turns a hang into a
// failure: tests wait for events, never for time to pass.
const patience = 30 * time.Second

// Expect waits for an incoming stanza for which match returns true,
// discarding others, and fails the test if the stream ends first (or
// nothing matches for a long time: a hang).
func (c *Client) Expect(match func(*stanza.Stanza) bool) *stanza.Stanza {
	c.t.Helper()
	return c.ExpectNoneUntil(func(*stanza.Stanza) bool { return false }, match)
}

// ExpectNoneUntil waits for an incoming stanza for which until returns
// true and returns it, like Expect, but fails the test if a stanza for
// which bad (and not until) returns true comes before it. Others are
// discarded.
func (c *Client) ExpectNoneUntil(bad, until func(*stanza.Stanza) bool) *stanza.Stanza {
	c.t.Helper()
	timeout := time.NewTimer(patience)
	defer timeout.Stop()
	for {
		select {
		case st := <-c.in:
			if until(st) {
				return st
			}
			if bad(st) {
				var b bytesBuf
				st.WriteTo(&b)
				c.t.Fatalf("unexpected stanza: %s", b.String())
			}
		case err := <-c.done:
			c.t.Fatalf("stream ended while waiting for a stanza: %v", err)
			return nil
		case <-timeout.C:
			c.t.Fatalf("no matching stanza within %v: hung?", patience)
			return nil
		}
	}
}

// SyncNone is Sync that fails the test if a stanza for which bad returns
// true arrives before the server's answer. The server writes to a client
// in order, so the answer comes after everything the server had queued
// for the client when it handled the sync: to prove that a stanza from
// another client was not delivered, Sync that client first. Stanzas that
// an earlier Expect discarded are not seen.
func (c *Client) SyncNone(bad func(*stanza.Stanza) bool) {
	c.t.Helper()
	id := c.sendSync()
	c.ExpectNoneUntil(bad, ByID(id))
}

// ExpectNone fails the test if a stanza matching match arrives within d.
// A quiet window proves little on a loaded machine; where the server's
// ordering allows, SyncNone proves absence without one.
func (c *Client) ExpectNone(d time.Duration, match func(*stanza.Stanza) bool) {
	c.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case st := <-c.in:
			if match(st) {
				var b bytesBuf
				st.WriteTo(&b)
				c.t.Fatalf("unexpected stanza: %s", b.String())
			}
		case <-timeout:
			return
		}
	}
}

// Done returns a channel that yields the error that ended the stream.
func (c *Client) Done() <-chan error { return c.done }

// ByID matches stanzas with the given id.
func ByID(id string) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool { return st.ID == id }
}

// Body matches messages whose body is text.
func Body(text string) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		b, ok := st.ChildText(xml.Name{Local: "body"})
		return st.Kind == stanza.Message && ok && b == text
	}
}

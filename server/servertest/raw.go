package servertest

import (
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Raw is a client that speaks XMPP as raw text, for tests of what happens
// before a session exists (registration, authentication) or of what a
// library client would never send.
type Raw struct {
	t   testing.TB
	c   net.Conn
	buf strings.Builder
}

// RawHeader opens a client stream to localhost.
const RawHeader = `<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

// DialRaw connects to the STARTTLS listener and negotiates TLS; it
// returns the client and the stream features offered on the TLS stream.
func (s *Server) DialRaw(t testing.TB) (*Raw, string) {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return NewRaw(t, c)
}

// NewRaw negotiates TLS on c, as DialRaw does. c is closed when the test
// ends.
func NewRaw(t testing.TB, c net.Conn) (*Raw, string) {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	r := &Raw{t: t, c: c}
	r.Send(RawHeader)
	r.Expect("</stream:features>")
	r.Send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	r.Expect("<proceed")
	tc := tls.Client(r.c, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	r.c = tc
	r.Send(RawHeader)
	return r, r.Expect("</stream:features>")
}

// Send writes s.
func (r *Raw) Send(s string) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(patience))
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

var emptyIQ = regexp.MustCompile(`<iq[^<>]*/>`)

// Expect reads until what was received contains one of want (or, for
// "<iq/>", a complete iq) and returns it all.
func (r *Raw) Expect(want ...string) string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(patience))
	b := make([]byte, 4096)
	has := func() bool {
		s := r.buf.String()
		for _, w := range want {
			if w == "<iq/>" && (strings.Contains(s, "</iq>") || emptyIQ.MatchString(s)) || strings.Contains(s, w) {
				return true
			}
		}
		return false
	}
	for !has() {
		n, err := r.c.Read(b)
		r.buf.Write(b[:n])
		if err != nil && !has() {
			r.t.Fatalf("waiting for %q: %v; got %q", want, err, r.buf.String())
		}
	}
	s := r.buf.String()
	r.buf.Reset()
	return s
}

// IQ sends an iq and returns the answer.
func (r *Raw) IQ(s string) string {
	r.t.Helper()
	r.Send(s)
	return r.Expect("<iq/>")
}

// AuthPlain authenticates with SASL PLAIN and returns the answer.
func (r *Raw) AuthPlain(user, pass string) string {
	r.t.Helper()
	r.Send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)) + `</auth>`)
	return r.Expect("<success", "</failure>")
}

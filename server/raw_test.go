package server_test

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server/servertest"
)

// rawClient speaks XMPP byte by byte, for tests of what a library client
// would never send.
type rawClient struct {
	t   *testing.T
	c   net.Conn
	buf strings.Builder
}

const header = `<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c}
}

func (r *rawClient) send(s string) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// expect reads until what was received contains one of want, and returns
// it all.
func (r *rawClient) expect(want ...string) string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	has := func() bool {
		for _, w := range want {
			if strings.Contains(r.buf.String(), w) {
				return true
			}
		}
		return false
	}
	for !has() {
		n, err := r.c.Read(b)
		r.buf.Write(b[:n])
		if err != nil {
			if has() {
				break
			}
			r.t.Fatalf("waiting for %q: %v; got %q", want, err, r.buf.String())
		}
	}
	s := r.buf.String()
	r.buf.Reset()
	return s
}

// expectClosed reads until the server closes the connection.
func (r *rawClient) expectClosed() string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	for {
		n, err := r.c.Read(b)
		r.buf.Write(b[:n])
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatalf("connection still open; got %q", r.buf.String())
			}
			return r.buf.String()
		}
	}
}

// streamError expects a stream error with the condition and the closing tag.
func (r *rawClient) streamError(cond string) {
	r.t.Helper()
	got := r.expectClosed()
	if !strings.Contains(got, "<stream:error><"+cond+" ") || !strings.Contains(got, "</stream:stream>") {
		r.t.Fatalf("want stream error %s; got %q", cond, got)
	}
}

func (r *rawClient) startTLS() {
	r.t.Helper()
	r.send(header)
	r.expect("</stream:features>")
	r.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	r.expect("<proceed")
	tc := tls.Client(r.c, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		r.t.Fatal(err)
	}
	r.c = tc
	r.send(header)
	r.expect("</stream:features>")
}

func (r *rawClient) authPlain(user, pass string) string {
	r.t.Helper()
	r.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)) + `</auth>`)
	return r.expect("<success", "</failure>")
}

func (r *rawClient) login(user, pass string) {
	r.t.Helper()
	r.startTLS()
	if got := r.authPlain(user, pass); !strings.Contains(got, "<success") {
		r.t.Fatalf("auth: %q", got)
	}
	r.send(header)
	r.expect("</stream:features>")
	r.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
	r.expect("</iq>")
}

func TestStreamHygiene(t *testing.T) {
	srv := servertest.Start(t, serverConfig())
	srv.AddUser(t, "alice", "pw")
	big := strings.Repeat("x", 300<<10)
	for _, tc := range []struct {
		name  string
		setup func(r *rawClient)
		send  string
		cond  string
	}{
		{"stanza before TLS", func(r *rawClient) { r.send(header); r.expect("</stream:features>") },
			`<message to='alice@localhost'><body>hi</body></message>`, "not-authorized"},
		{"stanza before auth", (*rawClient).startTLS,
			`<message to='alice@localhost'><body>hi</body></message>`, "not-authorized"},
		{"iq before bind", func(r *rawClient) {
			r.startTLS()
			r.authPlain("alice", "pw")
			r.send(header)
			r.expect("</stream:features>")
		}, `<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>`, "not-authorized"},
		{"DTD in prolog", nil, `<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY lol "lol">]>` + header, "restricted-xml"},
		{"comment", func(r *rawClient) { r.send(header); r.expect("</stream:features>") }, `<!-- hi -->`, "restricted-xml"},
		{"processing instruction", func(r *rawClient) { r.send(header); r.expect("</stream:features>") }, `<?foo bar?>`, "restricted-xml"},
		{"entity reference", func(r *rawClient) { r.login("alice", "pw") }, `<message to='alice@localhost'><body>&lol;</body></message>`, "restricted-xml"},
		{"invalid UTF-8", func(r *rawClient) { r.login("alice", "pw") }, "<message to='alice@localhost'><body>\xff\xfe</body></message>", "not-well-formed"},
		{"forbidden character", func(r *rawClient) { r.login("alice", "pw") }, "<message to='alice@localhost'><body>\x01</body></message>", "not-well-formed"},
		{"unclosed tag mismatch", func(r *rawClient) { r.login("alice", "pw") }, "<message><body></message>", "not-well-formed"},
		{"oversize before auth", (*rawClient).startTLS, `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + strings.Repeat("A", 11<<10) + `</auth>`, "policy-violation"},
		{"oversize stanza", func(r *rawClient) { r.login("alice", "pw") }, `<message to='alice@localhost'><body>` + big + `</body></message>`, "policy-violation"},
		{"too deep", func(r *rawClient) { r.login("alice", "pw") }, `<message>` + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + `</message>`, "policy-violation"},
		{"unknown host", nil, strings.Replace(header, "to='localhost'", "to='example.net'", 1), "host-unknown"},
		{"wrong namespace", nil, strings.Replace(header, "jabber:client", "jabber:server", 1), "invalid-namespace"},
		{"unsupported version", nil, strings.Replace(header, "version='1.0' xmlns", "version='2.0' xmlns", 1), "unsupported-version"},
		{"no STARTTLS", func(r *rawClient) { r.send(header); r.expect("</stream:features>") },
			`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>`, "policy-violation"},
		{"unknown top-level element", func(r *rawClient) { r.login("alice", "pw") }, `<foo xmlns='urn:example'/>`, "unsupported-stanza-type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, srv.Addr)
			if tc.setup != nil {
				tc.setup(r)
			}
			go func() {
				// The server may close before all of a large write is read.
				r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(r.c, tc.send)
			}()
			r.streamError(tc.cond)
		})
	}
}

func TestAuthFailuresThenClose(t *testing.T) {
	cfg := serverConfig()
	cfg.Limits.AuthAttempts = 3
	srv := servertest.Start(t, cfg)
	srv.AddUser(t, "alice", "pw")
	r := dialRaw(t, srv.Addr)
	r.startTLS()
	for i := 0; i < 2; i++ {
		if got := r.authPlain("alice", "nope"); !strings.Contains(got, "<not-authorized/>") {
			t.Fatalf("attempt %d: %q", i, got)
		}
	}
	r.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-UNKNOWN'>=</auth>`)
	r.streamError("policy-violation")
}

func TestSASLRawFailures(t *testing.T) {
	srv := servertest.Start(t, serverConfig())
	srv.AddUser(t, "alice", "pw")
	for _, tc := range []struct {
		name, auth, want string
	}{
		{"unknown mechanism", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-UNKNOWN'>=</auth>`, "<invalid-mechanism/>"},
		{"bad base64", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!</auth>`, "<incorrect-encoding/>"},
		{"wrong password", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00nope")) + `</auth>`, "<not-authorized/>"},
		{"authzid of another user", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + base64.StdEncoding.EncodeToString([]byte("bob@localhost\x00alice\x00pw")) + `</auth>`, "<invalid-authzid/>"},
		{"scram m= extension", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` + base64.StdEncoding.EncodeToString([]byte("n,,m=ext,n=alice,r=abcdefghijkl")) + `</auth>`, "<failure"},
		{"scram authzid of another user", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` + base64.StdEncoding.EncodeToString([]byte("n,a=bob@localhost,n=alice,r=abcdefghijkl")) + `</auth>`, "<invalid-authzid/>"},
		{"scram plus without binding flag", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>` + base64.StdEncoding.EncodeToString([]byte("n,,n=alice,r=abcdefghijkl")) + `</auth>`, "<failure"},
		{"scram y flag while PLUS offered", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` + base64.StdEncoding.EncodeToString([]byte("y,,n=alice,r=abcdefghijkl")) + `</auth>`, "<failure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, srv.Addr)
			r.startTLS()
			r.send(tc.auth)
			got := r.expect("</failure>")
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %s", got, tc.want)
			}
			// The stream stays usable: a correct attempt succeeds.
			if got := r.authPlain("alice", "pw"); !strings.Contains(got, "<success") {
				t.Fatalf("retry: %q", got)
			}
		})
	}
}

func TestPreAuthTimeout(t *testing.T) {
	cfg := serverConfig()
	cfg.Limits.PreAuthTimeout = 300 * time.Millisecond
	srv := servertest.Start(t, cfg)
	r := dialRaw(t, srv.Addr)
	r.send(header)
	r.streamError("connection-timeout")
}

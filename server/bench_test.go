package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/storage/memory"
)

// discardConn is a net.Conn that accepts and drops all writes, so the
// benchmark measures the server's work, not a peer's.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)          { return len(p), nil }
func (discardConn) SetWriteDeadline(time.Time) error     { return nil }
func (discardConn) SetReadDeadline(time.Time) error      { return nil }
func (discardConn) Close() error                         { return nil }
func (discardConn) RemoteAddr() net.Addr                 { return &net.TCPAddr{} }
func (discardConn) LocalAddr() net.Addr                  { return &net.TCPAddr{} }
func (discardConn) SetDeadline(t time.Time) error        { return nil }
func (discardConn) Read(p []byte) (int, error)           { return 0, io.EOF }
func (discardConn) ConnectionState() tls.ConnectionState { return tls.ConnectionState{} }

// repeatReader yields its text over and over.
type repeatReader struct {
	s string
	i int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.s[r.i:])
		n += c
		r.i = (r.i + c) % len(r.s)
	}
	return n, nil
}

func benchSession(srv *Server, full string) *Session {
	j := jid.MustParse(full)
	c := &conn{srv: srv, raw: discardConn{}, nc: discardConn{}}
	s := newSession(c, j, 1<<20)
	s.available.Store(true)
	srv.sessions.bind(s)
	return s
}

// BenchmarkRouteMessage measures the server's work for one chat message
// between two bound sessions, in process: reading and parsing it from the
// sender's stream, routing it to the recipient's bare JID, and writing it
// onto the recipient's stream by its writer goroutine. TLS and the network
// are left out.
func BenchmarkRouteMessage(b *testing.B) {
	srv, err := New(context.Background(), Config{Domains: []string{"localhost"}, Accounts: memory.New()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	alice := benchSession(srv, "alice@localhost/phone")
	bob := benchSession(srv, "bob@localhost/laptop")
	msg := `<message to='bob@localhost' type='chat' id='` + strings.Repeat("a", 12) + `'><body>` +
		strings.Repeat("x", 64) + `</body></message>`
	in := newXMLIn(bufio.NewReader(&repeatReader{s: msg}), 1<<16, 32)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start, err := in.next()
		if err != nil {
			b.Fatal(err)
		}
		st, err := in.readStanza(start)
		if err != nil {
			b.Fatal(err)
		}
		srv.router.inbound(ctx, alice, st)
	}
	b.StopTimer()
	for { // let the writer finish before the server closes
		bob.qmu.Lock()
		idle := !bob.writing
		bob.qmu.Unlock()
		if idle {
			break
		}
		time.Sleep(time.Millisecond)
	}
}

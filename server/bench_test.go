package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/metrics"
	"github.com/kiez-im/kiez/stanza"
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

// sinkConn is a discardConn that counts the bytes written to it and
// wakes a waiter after each write: the receiving end of a benchmark.
type sinkConn struct {
	discardConn
	n     atomic.Int64
	wrote chan struct{} // capacity 1
}

func newSinkConn() *sinkConn { return &sinkConn{wrote: make(chan struct{}, 1)} }

func (c *sinkConn) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	select {
	case c.wrote <- struct{}{}:
	default: // a wake-up is pending already
	}
	return len(p), nil
}

// waitFor returns once n bytes in all were written.
func (c *sinkConn) waitFor(n int64) {
	for c.n.Load() < n {
		<-c.wrote
	}
}

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
	return benchSessionOn(srv, full, discardConn{})
}

// benchSessionOn binds an available session whose stream is written to nc.
// Like a session whose bind result is not written yet, it is held: no
// writer runs, and what is sent to it only queues, until release.
func benchSessionOn(srv *Server, full string, nc net.Conn) *Session {
	j := jid.MustParse(full)
	c := &conn{srv: srv, raw: nc, nc: nc}
	c.t = newTCPStream(bufio.NewReader(nc), nsClient, 1<<16, 32)
	s := newSession(c, j, 1<<20)
	s.available.Store(true)
	srv.sessions.bind(s)
	return s
}

// BenchmarkRouteMessage measures the whole path of one chat message
// between two bound sessions, in process: reading and parsing it from the
// sender's stream, routing it to the recipient's bare JID, and writing it
// onto the recipient's stream by its writer goroutine. An iteration ends
// when the recipient's connection has received all its bytes, so one
// message is in flight at a time and each one wakes the recipient's idle
// writer, as a message to an idle client does. TLS and the network are
// left out.
func BenchmarkRouteMessage(b *testing.B) {
	benchRouteMessage(b, Config{Domains: []string{"localhost"}, Accounts: memory.New()})
}

// BenchmarkRouteMessageMetrics is BenchmarkRouteMessage with metrics on:
// the message is counted as received and sent.
func BenchmarkRouteMessageMetrics(b *testing.B) {
	benchRouteMessage(b, Config{Domains: []string{"localhost"}, Accounts: memory.New(), Metrics: metrics.NewRegistry()})
}

func benchRouteMessage(b *testing.B, cfg Config) {
	srv, err := New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	alice := benchSession(srv, "alice@localhost/phone")
	sink := newSinkConn()
	bob := benchSessionOn(srv, "bob@localhost/laptop", sink)
	bob.release() // as after the bind result: bob's writer may run
	msg := `<message to='bob@localhost' type='chat' id='` + strings.Repeat("a", 12) + `'><body>` +
		strings.Repeat("x", 64) + `</body></message>`
	in := newXMLIn(bufio.NewReader(&repeatReader{s: msg}), nsClient, 1<<16, 32)
	ctx := context.Background()
	route := func() {
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
	// One message first, to learn its size on bob's stream: the writer
	// flushes it from its buffer in one write.
	route()
	sink.waitFor(1)
	size := sink.n.Load()
	want := size
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		route()
		want += size
		sink.waitFor(want)
	}
	b.StopTimer()
	if got := sink.n.Load(); got != want {
		b.Fatalf("bob received %d bytes, want %d", got, want)
	}
	for { // let the writer finish before the server closes
		bob.qmu.Lock()
		idle := !bob.writing
		bob.qmu.Unlock()
		if idle {
			break
		}
		runtime.Gosched()
	}
	if cfg.Metrics != nil {
		in, out := srv.metrics.in[stanza.Message].Value(), srv.metrics.out[stanza.Message].Value()
		if n := uint64(b.N) + 1; in != n || out != n {
			b.Fatalf("%d messages counted in and %d out, want %d", in, out, n)
		}
	}
}

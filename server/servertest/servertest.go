// Package servertest starts real Kiez servers on loopback for tests, and
// connects real clients (mellium's client side) to them.
package servertest

import (
	"context"
	"crypto/tls"
	"net"
	"testing"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// Domain is the virtual host test servers serve unless told otherwise.
const Domain = "localhost"

// Server is a running test server.
type Server struct {
	*server.Server
	// Addr is the STARTTLS c2s listener, TLSAddr the direct TLS one.
	Addr, TLSAddr string
	Domain        string
	Config        server.Config

	pipe *pipeListener
}

// DialInProcess opens a connection to the server's STARTTLS service
// through an in-memory pipe instead of a socket, for benchmarks of the
// server's own cost: everything but the kernel's network stack runs.
func (s *Server) DialInProcess() (net.Conn, error) {
	return s.pipe.dial()
}

// Start runs a server on 127.0.0.1 with cfg, filling in what is unset: the
// domain "localhost", a self-signed certificate, an in-memory account
// store and a low SCRAM iteration count. It is shut down when the test
// ends.
func Start(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	if len(cfg.Domains) == 0 {
		cfg.Domains = []string{Domain}
	}
	if cfg.TLS == nil {
		cert, _, _, err := server.SelfSigned(cfg.Domains...)
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	if cfg.Accounts == nil {
		cfg.Accounts = memory.New()
	}
	if cfg.SCRAMIterations == 0 {
		cfg.SCRAMIterations = 4096
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pipe := newPipeListener()
	go srv.ServeC2S(ln)
	go srv.ServeDirectTLS(tln)
	go srv.ServeC2S(pipe)
	t.Cleanup(func() {
		// A generous bound, only there so that a hung shutdown fails the
		// test instead of hanging it.
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
	})
	return &Server{Server: srv, Addr: ln.Addr().String(), TLSAddr: tln.Addr().String(), Domain: cfg.Domains[0], Config: cfg, pipe: pipe}
}

// AddUser creates an account localpart@Domain and returns its bare JID.
func (s *Server) AddUser(t testing.TB, localpart, password string) jid.JID {
	t.Helper()
	j := jid.MustParse(localpart + "@" + s.Domain)
	if err := s.CreateUser(context.Background(), j, password); err != nil {
		t.Fatal(err)
	}
	return j
}

// Login connects to the STARTTLS listener as user (a bare or full JID; a
// resource in it is requested at bind) with password, using SCRAM-SHA-256.
func (s *Server) Login(ctx context.Context, user jid.JID, password string, mechs ...sasl.Mechanism) (*xmpp.Session, error) {
	if len(mechs) == 0 {
		mechs = []sasl.Mechanism{sasl.ScramSha256}
	}
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		return nil, err
	}
	sess, err := xmpp.NewClientSession(ctx, user, conn,
		xmpp.StartTLS(s.ClientTLS()),
		xmpp.SASL("", password, mechs...),
		BindResource(),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return sess, nil
}

// ClientTLS is a client TLS configuration that accepts the test server's
// self-signed certificate.
func (s *Server) ClientTLS() *tls.Config {
	return &tls.Config{ServerName: s.Domain, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
}

package server_test

import (
	"net"
	"testing"

	"github.com/kiez-im/kiez/internal/loginclient"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

// BenchmarkLogin measures one whole client login, in process: a stream
// header, STARTTLS and the TLS handshake (the default X25519MLKEM768 key
// exchange), SCRAM-SHA-1 without channel binding, a stream restart,
// resource binding and the closing of the stream, as examples/loadclient
// does it. The client is internal/loginclient's lean one, which keeps its
// SaltedPassword, over an in-memory pipe (servertest.DialInProcess), so
// that most of the time is the server's; the client's half of the TLS
// handshake is in the figure too, and the same in every run.
func BenchmarkLogin(b *testing.B) {
	srv := servertest.Start(b, server.Config{})
	srv.AddUser(b, "u0", "benchpw")
	cl := benchClient(srv)
	login := func() { benchLogin(b, srv, cl.Login) }
	login() // derives the client's SaltedPassword
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		login()
	}
}

// benchClient returns a client for the account u0 of srv, with
// SCRAM-SHA-1 as BenchmarkLogin has always measured.
func benchClient(srv *servertest.Server) *loginclient.Client {
	return &loginclient.Client{Domain: srv.Domain, User: "u0", Password: "benchpw", SCRAM: "SCRAM-SHA-1"}
}

// benchLogin logs in once with login, on a new in-process connection to
// srv.
func benchLogin(b *testing.B, srv *servertest.Server, login func(net.Conn) error) {
	nc, err := srv.DialInProcess()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	if err := login(nc); err != nil {
		b.Fatal(err)
	}
}

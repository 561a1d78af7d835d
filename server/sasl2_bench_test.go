package server_test

import (
	"testing"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

// BenchmarkLoginSASL2 is BenchmarkLogin with SASL2 and Bind 2 (XEP-0388,
// XEP-0386): the same SCRAM-SHA-1 exchange, but the resource is bound,
// and stream management enabled, inside <authenticate/>, with no stream
// restart nor bind iq. Compare the two with
//
//	go test ./server/ -run '^$' -bench 'BenchmarkLogin(SASL2)?$' -benchmem
func BenchmarkLoginSASL2(b *testing.B) {
	srv := servertest.Start(b, server.Config{})
	srv.AddUser(b, "u0", "benchpw")
	cl := benchClient(srv)
	login := func() { benchLogin(b, srv, cl.LoginSASL2) }
	login() // derives the client's SaltedPassword
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		login()
	}
}

package server_test

import (
	"testing"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

// BenchmarkLoginFAST is BenchmarkLoginSASL2 with a XEP-0484 token
// (HT-SHA-256-NONE, asked for once in a SCRAM login): one round trip and
// no key stretching. Compare with
//
//	go test ./server/ -run '^$' -bench 'BenchmarkLogin(SASL2|FAST)$' -benchmem
func BenchmarkLoginFAST(b *testing.B) {
	srv := servertest.Start(b, server.Config{})
	srv.AddUser(b, "u0", "benchpw")
	cl := benchClient(srv)
	login := func() { benchLogin(b, srv, cl.LoginFAST) }
	login() // SCRAM, asking for the token
	login()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		login()
	}
}

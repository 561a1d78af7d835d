package server_test

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"log"
	"net"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

// Hello answers <iq type='get'><hello xmlns='urn:example:hello'/></iq> sent
// to the server: a complete module.
type Hello struct{}

func (Hello) Name() string { return "hello" }

func (Hello) IQRoutes() []server.IQRoute {
	return []server.IQRoute{{
		Type: mstanza.GetIQ, To: server.TargetHost,
		Payload: xml.Name{Space: "urn:example:hello", Local: "hello"},
		Handler: server.IQHandlerFunc(func(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
			return w.Result(stanza.TextElem(xml.Name{Space: "urn:example:hello", Local: "hello"}, "hi "+iq.From.Localpart()))
		}),
	}}
}

func (Hello) Features(t server.Target) []string {
	if t == server.TargetHost {
		return []string{"urn:example:hello"}
	}
	return nil
}

// Embedding Kiez: a server for localhost with a self-signed certificate,
// accounts in memory and one custom module.
func ExampleNew() {
	cert, _, _, err := server.SelfSigned("localhost")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	srv, err := server.New(ctx, server.Config{
		Domains:  []string{"localhost"},
		TLS:      &tls.Config{Certificates: []tls.Certificate{cert}},
		Accounts: memory.New(),
		Modules:  []server.Module{Hello{}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.CreateUser(ctx, jid.MustParse("alice@localhost"), "correct horse battery"); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // ":5222" in production
	if err != nil {
		log.Fatal(err)
	}
	go srv.ServeC2S(ln)

	users, _ := srv.Users(ctx, "localhost")
	fmt.Println(users)

	shutdownCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	// Output: [alice@localhost]
}

var (
	_ server.IQProvider      = Hello{}
	_ server.FeatureProvider = Hello{}
)

// Limits for mobile clients: a session with stream management resumption
// (XEP-0198) waits ten minutes for a client that lost its network, which
// it advertises as max='600', and a client may leave up to 1000 stanzas
// unacknowledged or waiting before it counts as too slow.
func ExampleLimits() {
	cfg := server.Config{
		Domains: []string{"localhost"},
		Limits:  server.Limits{ResumeTimeout: 10 * time.Minute, QueueSize: 1000},
	}
	fmt.Println(cfg.Limits.ResumeTimeout.Seconds())
	// Output: 600
}

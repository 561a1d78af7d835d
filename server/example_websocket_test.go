package server_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// An HTTPS server serves XMPP over WebSocket beside the modules' routes,
// and web clients find it through host-meta.
func ExampleServer_WebSocketRoutes() {
	srv, err := server.New(context.Background(), server.Config{
		Domains:     []string{"example.org"},
		Accounts:    memory.New(),
		HTTPBaseURL: func(domain string) string { return "https://" + domain + "/" },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	mux := http.NewServeMux()
	mux.Handle("/", srv.HTTPHandler())
	opts := server.WebSocketOptions{AllowedOrigins: []string{"https://chat.example.net"}}
	for _, r := range srv.WebSocketRoutes(opts) {
		mux.Handle(r.Pattern, r.Handler)
	}
	// In production: (&http.Server{Handler: mux, TLSConfig: ...}).ServeTLS(ln, "", "")

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://example.org/.well-known/host-meta.json", nil))
	fmt.Print(rec.Body.String())
	// Output: {"links":[{"rel":"urn:xmpp:alt-connections:websocket","href":"wss://example.org/xmpp-websocket"}]}
}

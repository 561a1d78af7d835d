package main

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/kiez-im/kiez/server"
)

// httpHandler returns what the https and http listeners serve: the
// modules' HTTP routes and, with [http] websocket, XMPP over WebSocket at
// /xmpp-websocket (RFC 7395) and its discovery at /.well-known/host-meta
// and host-meta.json (XEP-0156). WebSocket streams need TLS, so a plain
// http listener refuses them with 403.
func httpHandler(c httpConfig, srv *server.Server) http.Handler {
	if !c.WebSocket {
		return srv.HTTPHandler()
	}
	mux := http.NewServeMux()
	mux.Handle("/", srv.HTTPHandler())
	for _, r := range srv.WebSocketRoutes(server.WebSocketOptions{AllowedOrigins: c.WebSocketOrigins}) {
		mux.Handle(r.Pattern, r.Handler)
	}
	return mux
}

// checkOrigins accepts "*" and origins such as "https://chat.example.org"
// or "http://localhost:8080": a scheme and a host, nothing else.
func checkOrigins(origins []string) error {
	for _, o := range origins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
			u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%q is not an origin such as \"https://chat.example.org\" (a scheme and a host, an optional port), or \"*\"", o)
		}
	}
	return nil
}

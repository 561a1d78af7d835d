package server

import (
	"bufio"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kiez-im/kiez/server/scram"
)

// WebSocketPath is where WebSocketRoutes serves XMPP over WebSocket, the
// path clients and Prosody use.
const WebSocketPath = "/xmpp-websocket"

// WebSocketOptions configures the WebSocket endpoint (RFC 7395).
type WebSocketOptions struct {
	// AllowedOrigins lists the origins, such as "https://chat.example.org",
	// of the web pages whose scripts may open streams; "*" allows every
	// origin. Requests without an Origin header (native clients) and
	// requests from the page's own origin (the Origin's host is the
	// request's Host, as for a web client served by the same server) are
	// always allowed. A browser sends the logged-in page's origin, so the
	// list keeps other sites' scripts from using a visitor's browser to
	// reach the server.
	AllowedOrigins []string
	// AllowPlainHTTP accepts requests that did not come over TLS, for a
	// TLS-terminating reverse proxy in front of a plain HTTP listener.
	// The stream is then treated as encrypted, without channel binding,
	// and the connection filter sees the proxy's address. Without it such
	// requests are refused with 403.
	AllowPlainHTTP bool
}

// WebSocketRoutes returns the HTTP routes of XMPP over WebSocket: the
// endpoint at WebSocketPath (WebSocketHandler) and its discovery per
// XEP-0156, GET /.well-known/host-meta and /.well-known/host-meta.json
// (HostMetaHandler). An HTTP server serves them beside HTTPHandler.
func (s *Server) WebSocketRoutes(opts WebSocketOptions) []HTTPRoute {
	hm := s.HostMetaHandler(WebSocketPath)
	return []HTTPRoute{
		{Pattern: "GET " + WebSocketPath, Handler: s.WebSocketHandler(opts)},
		{Pattern: "GET /.well-known/host-meta", Handler: hm},
		{Pattern: "GET /.well-known/host-meta.json", Handler: hm},
	}
}

// WebSocketHandler returns the handler of XMPP client streams over
// WebSocket (RFC 7395, on RFC 6455): a GET upgrading HTTP/1.1 with
// subprotocol "xmpp", from an allowed origin (see WebSocketOptions). The
// stream is negotiated as on a TLS connection, without STARTTLS: SASL
// (with tls-exporter channel binding on TLS 1.3), binding, stream
// management, with the same limits: a message may be as large as an
// element (Limits.MaxPreAuthSize, then MaxStanzaSize), reads are
// rate-limited, the connection filter admits the client's address, and a
// session whose WebSocket dropped waits for resumption on another.
//
// Refusals: 400 (not a WebSocket upgrade, or no "xmpp" subprotocol),
// 403 (origin not allowed, or no TLS), 426 (another WebSocket version),
// 505 (not HTTP/1.1), 503 (the server is shutting down). A connection the
// connection filter refuses is closed without an answer.
func (s *Server) WebSocketHandler(opts WebSocketOptions) http.Handler {
	origins := make(map[string]bool, len(opts.AllowedOrigins))
	for _, o := range opts.AllowedOrigins {
		origins[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 1 {
			http.Error(w, "WebSocket needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
			return
		}
		if !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "websocket") {
			http.Error(w, "a WebSocket upgrade is expected", http.StatusBadRequest)
			return
		}
		if r.Header.Get("Sec-WebSocket-Version") != "13" {
			w.Header().Set("Sec-WebSocket-Version", "13")
			http.Error(w, "WebSocket version 13 only", http.StatusUpgradeRequired)
			return
		}
		key := r.Header.Get("Sec-WebSocket-Key")
		if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
			http.Error(w, "bad Sec-WebSocket-Key", http.StatusBadRequest)
			return
		}
		if !headerHas(r.Header, "Sec-WebSocket-Protocol", "xmpp") {
			http.Error(w, `the "xmpp" subprotocol is required (RFC 7395)`, http.StatusBadRequest)
			return
		}
		if !originAllowed(r, origins) {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		if r.TLS == nil && !opts.AllowPlainHTTP {
			http.Error(w, "XMPP over WebSocket needs TLS", http.StatusForbidden)
			return
		}
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "cannot take over the connection", http.StatusInternalServerError)
			return
		}
		s.serveWebSocket(nc, brw, r.TLS, key)
	})
}

// serveWebSocket completes the upgrade on a hijacked connection and
// serves its stream.
func (s *Server) serveWebSocket(nc net.Conn, brw *bufio.ReadWriter, cs *tls.ConnectionState, key string) {
	addr, filtered, ok := s.admit(nc)
	if !ok {
		nc.Close()
		return
	}
	// The deadline bounds the upgrade's answer and negotiation after it.
	nc.SetDeadline(time.Now().Add(s.limits.PreAuthTimeout))
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Accept: ")
	brw.WriteString(base64.StdEncoding.EncodeToString(sum[:]))
	brw.WriteString("\r\n\r\n")
	if err := brw.Flush(); err != nil {
		if filtered {
			s.cfg.ConnFilter.Closed(addr)
		}
		nc.Close()
		return
	}
	wire := &wsWire{Conn: nc, pre: brw.Reader}
	c := &conn{srv: s, ctx: s.ctx, raw: wire, nc: wire, websocket: true, addr: addr, filtered: filtered, state: stateSecure}
	if cs != nil {
		c.tlsState = cs
		// No tls-server-end-point: the HTTP server chose the certificate
		// and does not say which.
		for _, t := range scram.ChannelBindingTypes(cs) {
			if t != scram.TLSServerEndPoint {
				c.cbTypes = append(c.cbTypes, t)
			}
		}
	}
	s.mu.Lock()
	if l := s.limits; l.ReadRate > 0 || l.ReadRateAuthenticated > 0 {
		rate := int64(max(l.ReadRate, 0))
		c.rc = newRateConn(wire, rate, readBurst(rate, l.MaxPreAuthSize), s.rateClock)
		c.raw, c.nc = c.rc, c.rc
	}
	if s.closed {
		s.mu.Unlock()
		c.filterDone(false)
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.mu.Unlock()
	c.br = bufio.NewReaderSize(c.raw, 512)
	c.t = newWebSocketStream(wire, c.br, s.limits.MaxPreAuthSize, s.limits.MaxDepth)
	go c.serve()
}

// headerHas reports whether the comma-separated values of header name
// hold token, compared without case.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// originAllowed applies WebSocketOptions.AllowedOrigins to r.
func originAllowed(r *http.Request, allowed map[string]bool) bool {
	o := r.Header.Get("Origin")
	if o == "" || allowed["*"] || allowed[strings.ToLower(o)] {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// HostMetaHandler returns the handler of XEP-0156 discovery: GET
// /.well-known/host-meta answers in XRD (XML), /.well-known/host-meta.json
// in JSON, both listing the WebSocket endpoint at path
// (urn:xmpp:alt-connections:websocket) with Access-Control-Allow-Origin: *
// so that web clients on other sites may read them. The URL is
// Config.HTTPBaseURL of the requested host, if it is one of the server's
// domains, else of the first domain, with wss for https; without a base
// URL it is the request's own host.
func (s *Server) HostMetaHandler(path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		href := s.webSocketURL(r, path)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "max-age=3600")
		if strings.HasSuffix(r.URL.Path, ".json") {
			w.Header().Set("Content-Type", "application/json")
			type link struct {
				Rel  string `json:"rel"`
				Href string `json:"href"`
			}
			json.NewEncoder(w).Encode(struct {
				Links []link `json:"links"`
			}{[]link{{relWebSocket, href}}})
			return
		}
		w.Header().Set("Content-Type", "application/xrd+xml; charset=utf-8")
		w.Write([]byte(`<?xml version='1.0' encoding='utf-8'?>` + "\n" +
			`<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>` + "\n" +
			`  <Link rel='` + relWebSocket + `' href='` + escapeString(href) + `'/>` + "\n" +
			`</XRD>` + "\n"))
	})
}

// relWebSocket is XEP-0156's link relation of a WebSocket endpoint.
const relWebSocket = "urn:xmpp:alt-connections:websocket"

// webSocketURL returns the ws(s) URL of path for the host r asks about.
func (s *Server) webSocketURL(r *http.Request, path string) string {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	domain := s.domains[0].String()
	if s.local[host] {
		domain = host
	}
	var base string
	if s.cfg.HTTPBaseURL != nil {
		base = s.cfg.HTTPBaseURL(domain)
	}
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host + "/"
	}
	u := strings.TrimRight(base, "/") + "/" + strings.TrimLeft(path, "/")
	switch {
	case strings.HasPrefix(u, "https://"):
		return "wss://" + u[len("https://"):]
	case strings.HasPrefix(u, "http://"):
		return "ws://" + u[len("http://"):]
	}
	return u
}

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
)

// The HTTPS and HTTP listeners serve the modules' HTTP routes
// (server.HTTPHandler), such as file upload's PUT and GET.

// httpShutdownTimeout bounds the wait for HTTP requests in progress at
// shutdown, before the XMPP streams are closed; requests still running
// then are cut off.
const httpShutdownTimeout = 5 * time.Second

// retryAfter is the Retry-After, in seconds, of a request refused because
// max_concurrent_requests are running.
const retryAfter = "5"

// checkHTTP validates the [http] table and that the HTTP listeners have a
// URL to give clients. Errors start with the key at fault.
func (c *config) checkHTTP() error {
	if u := c.HTTP.ExternalURL; u != "" {
		if err := checkExternalURL(u); err != nil {
			return fmt.Errorf("http.external_url: %v", err)
		}
	}
	if err := checkOrigins(c.HTTP.WebSocketOrigins); err != nil {
		return fmt.Errorf("http.websocket_origins: %v", err)
	}
	if len(c.Listen.HTTP) > 0 && len(c.Listen.HTTPS) == 0 && c.HTTP.ExternalURL == "" {
		return errors.New("listen.http: set http.external_url too, to the URL clients reach your reverse proxy at: with no https listener kiezd has no URL of its own to give them")
	}
	return nil
}

// checkExternalURL accepts an https URL with a host, an optional port and
// an optional path, nothing else: clients send files and their contacts
// fetch them there, so never in plain text.
func checkExternalURL(s string) error {
	u, err := url.Parse(s)
	bad := fmt.Errorf("%q is not an https URL such as \"https://upload.example.org/\" or \"https://example.org:5281\" (no query, fragment or user)", s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" ||
		u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return bad
	}
	return nil
}

// namedAddr is a listen address and the key it is configured under.
type namedAddr struct{ key, addr string }

// checkDuplicateAddrs rejects two listeners on one port, one of them on
// all interfaces or both on the same host: the second could not bind.
// Port 0 (any free port) is never a clash.
func (c *config) checkDuplicateAddrs() error {
	var all []namedAddr
	add := func(key string, addrs ...string) {
		for _, a := range addrs {
			if a != "" {
				all = append(all, namedAddr{key, a})
			}
		}
	}
	add("listen.c2s", c.Listen.C2S...)
	add("listen.direct_tls", c.Listen.DirectTLS...)
	add("listen.https", c.Listen.HTTPS...)
	add("listen.http", c.Listen.HTTP...)
	add("metrics.listen", c.Metrics.Listen...)
	if c.componentsOn() {
		add("components.listen", c.Components.Listen...)
	}
	if a := c.TLS.ACME; a.Enabled {
		add("tls.acme.listen", a.Listen)
		add("tls.acme.http_listen", a.HTTPListen)
	}
	wildcard := func(host string) bool {
		ip := net.ParseIP(host)
		return host == "" || ip != nil && ip.IsUnspecified()
	}
	for i, a := range all {
		ha, pa, _ := net.SplitHostPort(a.addr) // validated before
		if pa == "0" {
			continue
		}
		for _, b := range all[:i] {
			hb, pb, _ := net.SplitHostPort(b.addr)
			if pa == pb && (ha == hb || wildcard(ha) || wildcard(hb)) {
				return fmt.Errorf("%s: %q takes the port of %q in %s", a.key, a.addr, b.addr, b.key)
			}
		}
	}
	return nil
}

// warnings are what check-config and serve point out without refusing
// the configuration.
func (c *config) warnings() []string {
	var w []string
	for _, a := range c.Listen.HTTP {
		host, _, _ := net.SplitHostPort(a)
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			w = append(w, fmt.Sprintf("listen.http %q is reachable from other machines, unencrypted; unless only your reverse proxy can reach it, use a loopback address such as \"127.0.0.1:5280\"", a))
		}
	}
	w = append(w, c.componentWarnings()...)
	return append(w, c.metricsWarnings()...)
}

// httpBaseURL returns server.Config.HTTPBaseURL: external_url for every
// domain if it is set, else https://DOMAIN:PORT/ with httpsPort, the port
// of the first https listener; nil if neither is there.
func (c *config) httpBaseURL(httpsPort string) func(domain string) string {
	if u := c.HTTP.ExternalURL; u != "" {
		return func(string) string { return u }
	}
	if httpsPort == "" {
		return nil
	}
	return func(domain string) string {
		host := domain
		switch {
		case httpsPort == "443":
		case strings.HasPrefix(domain, "["): // an IPv6 literal
			host = domain + ":" + httpsPort
		default:
			host = net.JoinHostPort(domain, httpsPort)
		}
		return "https://" + host + "/"
	}
}

// newHTTPServer returns the server of the https and http listeners: h
// behind the max_concurrent_requests cap, with the [http] timeouts, for
// TLS the certificates of tlsCfg (the XMPP listeners') with ALPN h2 and
// http/1.1, and an error log without client addresses.
//
// Timeouts: a request's headers must arrive within read_header_timeout;
// the whole request, upload or download, must be done within
// request_timeout (http.Server's ReadTimeout and WriteTimeout, counted
// per request, per stream with HTTP/2), which a handler may change for
// its request with http.ResponseController; an idle connection is closed
// after idle_timeout.
func newHTTPServer(c httpConfig, h http.Handler, tlsCfg *tls.Config, logger *slog.Logger) *http.Server {
	t := tlsCfg.Clone()
	t.MinVersion = max(t.MinVersion, tls.VersionTLS12)
	t.NextProtos = []string{"h2", "http/1.1"}
	return &http.Server{
		Handler:           limitRequests(h, int(c.MaxConcurrentRequests), logger),
		TLSConfig:         t,
		ReadHeaderTimeout: time.Duration(c.ReadHeaderTimeout),
		ReadTimeout:       time.Duration(c.RequestTimeout),
		WriteTimeout:      time.Duration(c.RequestTimeout),
		IdleTimeout:       time.Duration(c.IdleTimeout),
		ErrorLog:          httpErrorLog(logger),
	}
}

// limitRequests runs at most n requests of h at a time. Others are
// answered at once with 503 and Retry-After, without reading their
// bodies: HTTP/2 resets the stream; an HTTP/1 request with a body gets
// "Connection: close" and its connection is dropped, since net/http
// would otherwise read (up to 256 KiB of) the body after the handler
// returns, to reuse the connection, and wait for it as long as
// request_timeout. Hitting the cap is logged at most once a minute.
func limitRequests(h http.Handler, n int, logger *slog.Logger) http.Handler {
	slots := make(chan struct{}, n)
	var warned atomic.Int64 // Unix time of the last warning
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
		default:
			w.Header().Set("Retry-After", retryAfter)
			if r.ProtoMajor == 1 && r.ContentLength != 0 {
				w.Header().Set("Connection", "close")
				// The response is written before the body would be
				// read; a read deadline already past makes that read
				// fail at once. No background read runs yet: it starts
				// once the body has been read.
				http.NewResponseController(w).SetReadDeadline(time.Now())
			}
			http.Error(w, "too many requests at once; retry later", http.StatusServiceUnavailable)
			now, last := time.Now().Unix(), warned.Load()
			if now-last >= 60 && warned.CompareAndSwap(last, now) {
				logger.Warn("http: max_concurrent_requests are running; refusing further requests with 503", "max_concurrent_requests", n)
			}
			return
		}
		defer func() { <-slots }()
		h.ServeHTTP(w, r)
	})
}

// httpErrorLog returns the http.Server.ErrorLog: net/http's messages go
// to logger without the client addresses they carry ("http: TLS
// handshake error from 192.0.2.7:41000: ..."). Handshake failures and
// HTTP/2 protocol errors, which any client or scanner causes, are logged
// at debug level, panics in handlers as errors, anything else as a
// warning.
func httpErrorLog(logger *slog.Logger) *stdlog.Logger {
	return stdlog.New(errorLogWriter{logger}, "", 0)
}

type errorLogWriter struct{ log *slog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := scrubIPs(strings.TrimSuffix(string(p), "\n"))
	level := slog.LevelWarn
	switch {
	case strings.Contains(msg, "panic serving"):
		level = slog.LevelError
	case strings.Contains(msg, "TLS handshake error"), strings.HasPrefix(msg, "http2:"):
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// ipCandidate matches what may be an IP address, with a port, a zone or
// brackets; scrubIPs keeps what does not parse as one.
var ipCandidate = regexp.MustCompile(`\[[0-9A-Za-z:.%_-]+\](?::[0-9]+)?|[0-9A-Fa-f]*[:.][0-9A-Fa-f:.]*[0-9A-Fa-f](?:%[0-9A-Za-z_.-]+)?`)

// scrubIPs replaces the IP addresses in s, with their ports, by
// "[address]".
func scrubIPs(s string) string {
	return ipCandidate.ReplaceAllStringFunc(s, func(m string) string {
		host := m
		if h, _, err := net.SplitHostPort(m); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if i := strings.IndexByte(host, '%'); i >= 0 {
			host = host[:i]
		}
		if net.ParseIP(host) == nil {
			return m
		}
		return "[address]"
	})
}

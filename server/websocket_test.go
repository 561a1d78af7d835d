package server_test

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/metrics"
	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/server/servertest"
)

// wsClient is a minimal RFC 6455 client speaking RFC 7395: each message
// one element, frames masked.
type wsClient struct {
	t  *testing.T
	c  *tls.Conn // nil on plain HTTP
	w  io.Writer
	br *bufio.Reader
}

const wsOpen = `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>`

// startWS serves srv's WebSocket routes over TLS on 127.0.0.1 and returns
// the address.
func startWS(t *testing.T, srv *servertest.Server, opts server.WebSocketOptions) string {
	t.Helper()
	mux := http.NewServeMux()
	for _, r := range srv.WebSocketRoutes(opts) {
		mux.Handle(r.Pattern, r.Handler)
	}
	ts := httptest.NewUnstartedServer(mux)
	ts.TLS = srv.Config.TLS.Clone()
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().String()
}

// wsHandshake sends an upgrade request with the headers hdr (in
// addition to the usual ones; an empty value removes one) and returns the
// connection and the response.
func wsHandshake(t *testing.T, addr string, hdr map[string]string) (*tls.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(patience))
	h := map[string]string{
		"Host":                   "localhost",
		"Upgrade":                "websocket",
		"Connection":             "Upgrade",
		"Sec-WebSocket-Key":      "dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version":  "13",
		"Sec-WebSocket-Protocol": "xmpp",
	}
	for k, v := range hdr {
		h[k] = v
	}
	req := "GET /xmpp-websocket HTTP/1.1\r\n"
	for k, v := range h {
		if v != "" {
			req += k + ": " + v + "\r\n"
		}
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, resp
}

func dialWS(t *testing.T, addr string) *wsClient {
	t.Helper()
	c, br, resp := wsHandshake(t, addr, nil)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	// RFC 6455 §1.3's example key and its answer.
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept = %q", got)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "xmpp" {
		t.Fatalf("Sec-WebSocket-Protocol = %q", got)
	}
	return &wsClient{t: t, c: c, w: c, br: br}
}

// frame sends one frame, masked if mask.
func (w *wsClient) frame(fin bool, op byte, payload []byte, mask bool) {
	w.t.Helper()
	b := []byte{op, 0}
	if fin {
		b[0] |= 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b[1] = byte(n)
	case n <= 0xFFFF:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := append([]byte(nil), payload...)
	if mask {
		b[1] |= 0x80
		var key [4]byte
		rand.Read(key[:])
		b = append(b, key[:]...)
		for i := range p {
			p[i] ^= key[i&3]
		}
	}
	if _, err := w.w.Write(append(b, p...)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *wsClient) send(s string) { w.t.Helper(); w.frame(true, 0x1, []byte(s), true) }

// recv returns the next message or control frame from the server.
func (w *wsClient) recv() (op byte, payload string) {
	w.t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		w.t.Fatalf("reading a frame: %v", err)
	}
	if h[0]&0x80 == 0 || h[0]&0x70 != 0 || h[1]&0x80 != 0 {
		w.t.Fatalf("bad frame header %x: fragmented, extended or masked", h)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		io.ReadFull(w.br, e[:])
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		io.ReadFull(w.br, e[:])
		n = binary.BigEndian.Uint64(e[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(w.br, p); err != nil {
		w.t.Fatalf("reading a frame: %v", err)
	}
	return h[0] & 0x0F, string(p)
}

// expect reads messages until one matches pattern, and returns its
// submatches. Each message must be one element declaring its namespace.
func (w *wsClient) expect(pattern string) []string {
	w.t.Helper()
	rx := regexp.MustCompile(pattern)
	var got []string
	for {
		op, p := w.recv()
		if op != 0x1 {
			w.t.Fatalf("waiting for %s: frame of opcode %d (%q) after %q", pattern, op, p, got)
		}
		wellFormed(w.t, p)
		if m := rx.FindStringSubmatch(p); m != nil {
			return m
		}
		got = append(got, p)
	}
}

// expectClose reads until the close frame and returns its code and the
// messages before it.
func (w *wsClient) expectClose() (code int, before string) {
	w.t.Helper()
	for {
		op, p := w.recv()
		switch op {
		case 0x1:
			before += p
		case 0x8:
			if len(p) < 2 {
				return 1005, before
			}
			return int(binary.BigEndian.Uint16([]byte(p))), before
		default:
			w.t.Fatalf("opcode %d", op)
		}
	}
}

// wellFormed checks that msg is one element with its namespace declared.
func wellFormed(t *testing.T, msg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(msg))
	var start xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("message %q: %v", msg, err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			start = s
			break
		}
	}
	if start.Name.Space == "" {
		t.Fatalf("message %q: no namespace", msg)
	}
	if err := d.Skip(); err != nil {
		t.Fatalf("message %q: %v", msg, err)
	}
	if rest, _ := io.ReadAll(io.MultiReader(strings.NewReader(msg[d.InputOffset():]))); strings.TrimSpace(string(rest)) != "" {
		t.Fatalf("message %q holds more than one element", msg)
	}
}

// login authenticates with SCRAM-SHA-256-PLUS bound to the WebSocket's TLS
// connection (tls-exporter) and returns the features after the restart.
func (w *wsClient) login(user, pass string) string {
	w.t.Helper()
	w.send(wsOpen)
	w.expect(`^<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='[^']+' from='localhost' version='1.0'`)
	feats := w.expect(`^<stream:features xmlns:stream='http://etherx.jabber.org/streams'>.*</stream:features>$`)[0]
	if strings.Contains(feats, "starttls") || strings.Contains(feats, "tls-server-end-point") ||
		!strings.Contains(feats, "<mechanism>SCRAM-SHA-256-PLUS</mechanism>") || !strings.Contains(feats, "type='tls-exporter'") {
		w.t.Fatalf("features before authentication: %q", feats)
	}
	cs := w.c.ConnectionState()
	cl, err := scram.NewClient(scram.MechSHA256Plus, user, pass, "", &cs, scram.TLSExporter)
	if err != nil {
		w.t.Fatal(err)
	}
	first, _, _ := cl.Step(nil)
	w.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>` + base64.StdEncoding.EncodeToString(first) + `</auth>`)
	ch := w.expect(`<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>([^<]+)</challenge>`)[1]
	sf, _ := base64.StdEncoding.DecodeString(ch)
	final, _, err := cl.Step(sf)
	if err != nil {
		w.t.Fatal(err)
	}
	w.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + base64.StdEncoding.EncodeToString(final) + `</response>`)
	ok := w.expect(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>([^<]*)</success>`)[1]
	sv, _ := base64.StdEncoding.DecodeString(ok)
	if _, done, err := cl.Step(sv); err != nil || !done {
		w.t.Fatalf("server signature: done %v, %v", done, err)
	}
	w.send(wsOpen)
	w.expect(`^<open `)
	return w.expect(`^<stream:features.*$`)[0]
}

func (w *wsClient) bind(res string) {
	w.t.Helper()
	w.send(`<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + res + `</resource></bind></iq>`)
	w.expect(`^<iq xmlns=['"]jabber:client['"].*<jid>[^<]*/` + regexp.QuoteMeta(res) + `</jid>`)
}

// TestWebSocket logs in over a real WebSocket (RFC 7395) with SCRAM and
// channel binding, binds, exchanges messages with a TCP client, enables
// stream management, loses the WebSocket and resumes on a new one, where
// the unacknowledged messages are redelivered, and closes the stream.
func TestWebSocket(t *testing.T) {
	srv, _ := startSM(t, 0)
	addr := startWS(t, srv, server.WebSocketOptions{})

	a := dialWS(t, addr)
	feats := a.login("alice", "pw")
	if !strings.Contains(feats, `<sm xmlns='urn:xmpp:sm:3'/>`) {
		t.Fatalf("features after authentication: %q", feats)
	}
	a.bind("web")
	// Strophe.js (Converse.js) establishes an RFC 3921 session after
	// binding, even when it is optional.
	a.send(`<iq xmlns='jabber:client' type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`)
	if m := a.expect(`^<iq [^>]*id=['"]sess['"].*$`)[0]; !regexp.MustCompile(`type=['"]result['"]`).MatchString(m) {
		t.Fatalf("session after binding: %q", m)
	}
	a.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	id := a.expect(`<enabled xmlns='urn:xmpp:sm:3' id='([^']+)' resume='true'`)[1]
	a.send(`<presence xmlns='jabber:client'/>`)

	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")
	b.message("alice@localhost/web", "m1")
	a.expect(`^<message xmlns=['"]jabber:client['"].*<body>m1</body>`)
	a.send(`<message xmlns='jabber:client' to='bob@localhost/pc' type='chat' id='w1'><body>hi-bob</body></message>`)
	b.await(`<body>hi-bob</body>`)

	// A ping is answered with a pong with its payload.
	a.frame(true, 0x9, []byte("beat"), true)
	for {
		op, p := a.recv()
		if op == 0xA {
			if p != "beat" {
				t.Fatalf("pong %q", p)
			}
			break
		}
	}

	// The WebSocket closes without <close/>: the session waits for its
	// client (RFC 7395 §3.6.2).
	a.frame(true, 0x8, binary.BigEndian.AppendUint16(nil, 1001), true)
	a.c.Close()
	b.message("alice@localhost/web", "m2")
	b.sync("s1")

	a2 := dialWS(t, addr)
	a2.login("alice", "pw")
	a2.send(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='1'/>`)
	a2.expect(`<resumed xmlns='urn:xmpp:sm:3' previd='` + regexp.QuoteMeta(id) + `' h='2'/>`)
	a2.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	var got []string
	for {
		_, p := a2.recv()
		if strings.HasPrefix(p, `<a xmlns='urn:xmpp:sm:3'`) {
			break
		}
		got = append(got, p)
	}
	all := strings.Join(got, "\n")
	if strings.Count(all, "<body>m2</body>") != 1 || strings.Contains(all, "<body>m1</body>") {
		t.Fatalf("after resumption with m1 acknowledged, want m2 once: %q", all)
	}
	a2.send(`<message xmlns='jabber:client' to='bob@localhost/pc' type='chat' id='w2'><body>back</body></message>`)
	b.await(`<body>back</body>`)

	// A clean close: <close/> answered with <close/> and the close frame.
	a2.send(`<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`)
	code, before := a2.expectClose()
	if code != 1000 || !strings.Contains(before, `<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`) {
		t.Fatalf("close: code %d after %q", code, before)
	}
}

// TestWebSocketUpgradeRefused checks the handshake's refusals: no "xmpp"
// subprotocol, a foreign origin, another version, no upgrade.
func TestWebSocketUpgradeRefused(t *testing.T) {
	srv := servertest.Start(t, serverConfig())
	addr := startWS(t, srv, server.WebSocketOptions{AllowedOrigins: []string{"https://chat.example.org"}})
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no subprotocol", map[string]string{"Sec-WebSocket-Protocol": ""}, 400},
		{"another subprotocol", map[string]string{"Sec-WebSocket-Protocol": "chat, mqtt"}, 400},
		{"foreign origin", map[string]string{"Origin": "https://evil.example"}, 403},
		{"version 8", map[string]string{"Sec-WebSocket-Version": "8"}, 426},
		{"no upgrade", map[string]string{"Upgrade": "", "Connection": "keep-alive"}, 400},
		{"bad key", map[string]string{"Sec-WebSocket-Key": "short"}, 400},
		{"listed origin", map[string]string{"Origin": "https://chat.example.org"}, 101},
		{"same origin", map[string]string{"Origin": "https://localhost"}, 101},
		{"no origin", nil, 101},
		{"several subprotocols", map[string]string{"Sec-WebSocket-Protocol": "chat, xmpp"}, 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, resp := wsHandshake(t, addr, tc.hdr)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// TestWebSocketMalformed sends what RFC 6455 and RFC 7395 forbid and
// checks the stream error and the close code.
func TestWebSocketMalformed(t *testing.T) {
	cfg := serverConfig()
	cfg.Limits.MaxPreAuthSize = 2048
	srv := servertest.Start(t, cfg)
	addr := startWS(t, srv, server.WebSocketOptions{})
	for _, tc := range []struct {
		name  string
		send  func(w *wsClient)
		cond  string
		code  int
		first bool // the error comes before <open/>
	}{
		{"unmasked", func(w *wsClient) { w.frame(true, 0x1, []byte(wsOpen), false) }, "not-well-formed", 1002, true},
		{"binary", func(w *wsClient) { w.frame(true, 0x2, []byte(wsOpen), true) }, "unsupported-encoding", 1003, true},
		{"stream header", func(w *wsClient) { w.send(strings.TrimPrefix(header, "<?xml version='1.0'?>")) }, "invalid-namespace", 1000, true},
		{"two elements", func(w *wsClient) {
			w.send(wsOpen)
			w.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/>`)
		}, "not-well-formed", 1000, false},
		{"cut short", func(w *wsClient) {
			w.send(wsOpen)
			w.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>`)
		}, "not-well-formed", 1000, false},
		{"too big", func(w *wsClient) {
			w.send(wsOpen)
			w.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + strings.Repeat("A", 4096) + `</auth>`)
		}, "policy-violation", 1009, false},
		{"too big in fragments", func(w *wsClient) {
			w.send(wsOpen)
			for i := range 3 {
				op := byte(0x0) // continuation
				if i == 0 {
					op = 0x1
				}
				w.frame(false, op, []byte(strings.Repeat(" ", 1000)), true)
			}
		}, "policy-violation", 1009, false},
		{"invalid UTF-8", func(w *wsClient) { w.frame(true, 0x1, []byte("<open \xff/>"), true) }, "not-well-formed", 1007, true},
		{"continuation first", func(w *wsClient) { w.frame(true, 0x0, []byte(wsOpen), true) }, "not-well-formed", 1002, true},
		{"no namespace", func(w *wsClient) {
			w.send(wsOpen)
			w.send(`<iq type='get' id='x'><query xmlns='jabber:iq:version'/></iq>`)
		}, "not-authorized", 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := dialWS(t, addr)
			tc.send(w)
			code, before := w.expectClose()
			if code != tc.code || !strings.Contains(before, "<"+tc.cond+" ") ||
				!strings.Contains(before, `<stream:error xmlns:stream='http://etherx.jabber.org/streams'>`) ||
				!strings.HasSuffix(before, `<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`) {
				t.Fatalf("close code %d (want %d) after %q, want %s", code, tc.code, before, tc.cond)
			}
			if !strings.HasPrefix(before, "<open ") {
				t.Fatalf("no <open/> before the error: %q", before)
			}
		})
	}
}

// TestHostMeta fetches XEP-0156's host-meta in XRD and JSON and finds the
// WebSocket endpoint under the server's HTTP base URL.
func TestHostMeta(t *testing.T) {
	cfg := serverConfig()
	cfg.HTTPBaseURL = func(domain string) string { return "https://" + domain + ":5281/" }
	srv := servertest.Start(t, cfg)
	addr := startWS(t, srv, server.WebSocketOptions{})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	const want = "wss://localhost:5281/xmpp-websocket"
	get := func(path string) []byte {
		t.Helper()
		resp, err := client.Get("https://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s: %s, Access-Control-Allow-Origin %q", path, resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	var xrd struct {
		XMLName xml.Name `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
		Links   []struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"Link"`
	}
	if err := xml.Unmarshal(get("/.well-known/host-meta"), &xrd); err != nil {
		t.Fatal(err)
	}
	if len(xrd.Links) != 1 || xrd.Links[0].Rel != "urn:xmpp:alt-connections:websocket" || xrd.Links[0].Href != want {
		t.Fatalf("host-meta links: %+v", xrd.Links)
	}
	var js struct {
		Links []struct{ Rel, Href string }
	}
	if err := json.Unmarshal(get("/.well-known/host-meta.json"), &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Links) != 1 || js.Links[0].Rel != "urn:xmpp:alt-connections:websocket" || js.Links[0].Href != want {
		t.Fatalf("host-meta.json links: %+v", js.Links)
	}
}

// TestWebSocketMetrics: a WebSocket session and its connection are
// counted as transport "websocket".
func TestWebSocketMetrics(t *testing.T) {
	reg := metrics.NewRegistry()
	srv := servertest.Start(t, server.Config{Metrics: reg})
	srv.AddUser(t, "alice", "pw")
	addr := startWS(t, srv, server.WebSocketOptions{})
	a := dialWS(t, addr)
	a.login("alice", "pw")
	a.bind("web")
	text, got := scrape(t, reg)
	wantSamples(t, text, got, map[string]float64{
		`kiez_sessions{transport="websocket"}`:    1,
		`kiez_connections{transport="websocket"}`: 1,
		`kiez_sessions{transport="tcp"}`:          0,
		`kiez_connections{transport="tcp"}`:       0,
	})
}

// TestWebSocketPlainHTTP: without TLS the upgrade is refused, unless the
// options allow plain HTTP (behind a TLS-terminating proxy); the stream
// then offers no channel binding.
func TestWebSocketPlainHTTP(t *testing.T) {
	srv := servertest.Start(t, serverConfig())
	srv.AddUser(t, "alice", "pw")
	for _, allow := range []bool{false, true} {
		mux := http.NewServeMux()
		for _, r := range srv.WebSocketRoutes(server.WebSocketOptions{AllowPlainHTTP: allow}) {
			mux.Handle(r.Pattern, r.Handler)
		}
		ts := httptest.NewServer(mux)
		t.Cleanup(ts.Close)
		c, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(patience))
		io.WriteString(c, "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !allow {
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("plain HTTP: status %d, want 403", resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("plain HTTP allowed: status %d", resp.StatusCode)
		}
		w := &wsClient{t: t, br: br, w: c}
		w.send(wsOpen)
		feats := w.expect(`^<stream:features.*$`)[0]
		if strings.Contains(feats, "PLUS") || strings.Contains(feats, "starttls") || !strings.Contains(feats, "SCRAM-SHA-256") {
			t.Fatalf("features: %q", feats)
		}
	}
}

// TestWebSocketCloseDuringNegotiation: <close/> before authentication is
// answered with <close/> and the close frame.
func TestWebSocketCloseDuringNegotiation(t *testing.T) {
	srv := servertest.Start(t, serverConfig())
	w := dialWS(t, startWS(t, srv, server.WebSocketOptions{}))
	w.send(wsOpen)
	w.expect(`^<stream:features`)
	w.send(`<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`)
	if code, before := w.expectClose(); code != 1000 || before != `<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>` {
		t.Fatalf("close code %d after %q", code, before)
	}
}

// TestWebSocketSASL2 logs in over a WebSocket with SASL2 (SCRAM-SHA-256-PLUS
// bound by tls-exporter) and Bind 2, asking for a FAST token, exchanges
// messages with a TCP client, then logs in on a second WebSocket with the
// token by HT-SHA-256-EXPR (bound to that WebSocket's TLS connection)
// and exchanges a message again. No stream restart happens.
func TestWebSocketSASL2(t *testing.T) {
	srv, _ := startSM(t, 0)
	addr := startWS(t, srv, server.WebSocketOptions{})
	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")
	b64 := base64.StdEncoding
	const ua = `<user-agent id='8a7d5e4c-0c5e-4a43-9d0e-2d2b7c6f1f10'><software>kiez ws test</software></user-agent>`
	const bind = `<bind xmlns='urn:xmpp:bind:0'><tag>web</tag><enable xmlns='urn:xmpp:sm:3'/></bind>`

	// exchange checks that the session bound as full talks with bob.
	exchange := func(w *wsClient, full, body string) {
		t.Helper()
		b.message(full, body)
		w.expect(`^<message xmlns=['"]jabber:client['"].*<body>` + body + `</body>`)
		w.send(`<message xmlns='jabber:client' to='bob@localhost/pc' type='chat'><body>re-` + body + `</body></message>`)
		b.await(`<body>re-` + body + `</body>`)
	}
	open := func() (*wsClient, string) {
		w := dialWS(t, addr)
		w.send(wsOpen)
		w.expect(`^<open `)
		feats := w.expect(`^<stream:features .*</stream:features>$`)[0]
		return w, feats
	}

	w, feats := open()
	if !strings.Contains(feats, `<authentication xmlns='urn:xmpp:sasl:2'><mechanism>SCRAM-SHA-512-PLUS</mechanism>`) ||
		!strings.Contains(feats, `<fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-EXPR</mechanism><mechanism>HT-SHA-256-NONE</mechanism></fast>`) {
		t.Fatalf("features: %q", feats)
	}
	cs := w.c.ConnectionState()
	cl, err := scram.NewClient(scram.MechSHA256Plus, "alice", "pw", "", &cs, scram.TLSExporter)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := cl.Step(nil)
	w.send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256-PLUS'><initial-response>` + b64.EncodeToString(first) +
		`</initial-response>` + ua + bind + `<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-EXPR'/></authenticate>`)
	ch, _ := b64.DecodeString(w.expect(`^<challenge xmlns='urn:xmpp:sasl:2'>([^<]+)</challenge>$`)[1])
	final, _, err := cl.Step(ch)
	if err != nil {
		t.Fatal(err)
	}
	w.send(`<response xmlns='urn:xmpp:sasl:2'>` + b64.EncodeToString(final) + `</response>`)
	m := w.expect(`^<success xmlns='urn:xmpp:sasl:2'><additional-data>([^<]+)</additional-data>` +
		`<authorization-identifier>([^<]+)</authorization-identifier><bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3'/></bound>` +
		`<token xmlns='urn:xmpp:fast:0' expiry='[^']+' token='([^']+)'/></success>$`)
	sv, _ := b64.DecodeString(m[1])
	if _, done, err := cl.Step(sv); err != nil || !done {
		t.Fatalf("server signature: %v", err)
	}
	full, token := m[2], m[3]
	exchange(w, full, "one")
	w.send(`<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`)
	w.expect(`^<close `)

	w, _ = open()
	cs = w.c.ConnectionState()
	cb, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	w.send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-EXPR'><initial-response>` +
		b64.EncodeToString(append([]byte("alice\x00"), fastMAC(token, "Initiator", cb...)...)) +
		`</initial-response>` + ua + bind + fastElem + `</authenticate>`)
	m = w.expect(`^<success xmlns='urn:xmpp:sasl:2'><additional-data>([^<]+)</additional-data>` +
		`<authorization-identifier>([^<]+)</authorization-identifier>`)
	if v, _ := b64.DecodeString(m[1]); !hmac.Equal(v, fastMAC(token, "Responder", cb...)) {
		t.Fatalf("wrong server HMAC: %q", m[0])
	}
	exchange(w, m[2], "two")
}

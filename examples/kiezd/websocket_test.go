package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/server/servertest"
)

// wsConn is a minimal RFC 6455 client connection speaking RFC 7395.
type wsConn struct {
	t  *testing.T
	c  *tls.Conn
	br *bufio.Reader
}

// dialWS opens a WebSocket to the wss URL u with subprotocol xmpp and
// origin (none if ""), and returns it with the HTTP status.
func dialWS(t *testing.T, u, origin string) (*wsConn, int) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "wss" {
		t.Fatalf("WebSocket URL %q", u)
	}
	cfg := clientTLS()
	cfg.NextProtos = []string{"http/1.1"}
	c, err := tls.Dial("tcp", pu.Host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET " + pu.Path + " HTTP/1.1\r\nHost: " + pu.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	io.WriteString(c, req+"\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &wsConn{t: t, c: c, br: br}, resp.StatusCode
}

func (w *wsConn) send(s string) {
	w.t.Helper()
	key := [4]byte{1, 2, 3, 4}
	b := []byte{0x81}
	if n := len(s); n <= 125 {
		b = append(b, 0x80|byte(n))
	} else {
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	}
	b = append(b, key[:]...)
	for i := range len(s) {
		b = append(b, s[i]^key[i&3])
	}
	if _, err := w.c.Write(b); err != nil {
		w.t.Fatal(err)
	}
}

// expect reads text messages until one matches pattern.
func (w *wsConn) expect(pattern string) []string {
	w.t.Helper()
	rx := regexp.MustCompile(pattern)
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			w.t.Fatalf("waiting for %s: %v", pattern, err)
		}
		n := int(h[1] & 0x7F)
		if n == 126 {
			var e [2]byte
			io.ReadFull(w.br, e[:])
			n = int(binary.BigEndian.Uint16(e[:]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(w.br, p); err != nil {
			w.t.Fatal(err)
		}
		if h[0]&0x0F != 1 {
			w.t.Fatalf("waiting for %s: opcode %d", pattern, h[0]&0x0F)
		}
		if m := rx.FindStringSubmatch(string(p)); m != nil {
			return m
		}
	}
}

// kiezd serves XMPP over WebSocket on its HTTPS listener out of the box,
// found through host-meta: a browser-like client logs in with SCRAM and
// exchanges messages with a TCP client; a page from another site is
// refused.
func TestWebSocket(t *testing.T) {
	file, _ := testConfig(t, "")
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", u); code != 0 {
			t.Fatal(stderr)
		}
	}
	d := startServe(t, nil, "-config", file)
	https := d.bound.HTTPS[0].String()
	resp, err := webClient(t, false).Get("https://" + https + "/.well-known/host-meta.json")
	if err != nil {
		t.Fatal(err)
	}
	var hm struct{ Links []struct{ Rel, Href string } }
	err = json.NewDecoder(resp.Body).Decode(&hm)
	resp.Body.Close()
	if err != nil || resp.Header.Get("Access-Control-Allow-Origin") != "*" || len(hm.Links) != 1 ||
		hm.Links[0].Rel != "urn:xmpp:alt-connections:websocket" {
		t.Fatalf("host-meta.json: %v %+v", err, hm)
	}
	_, port, _ := strings.Cut(https, ":")
	wsURL := hm.Links[0].Href
	if wsURL != "wss://localhost:"+port+"/xmpp-websocket" {
		t.Fatalf("WebSocket URL %q", wsURL)
	}

	if _, status := dialWS(t, wsURL, "https://evil.example"); status != http.StatusForbidden {
		t.Fatalf("a page from another site: status %d", status)
	}

	bobSess, err := login(t, d.bound.C2S[0], false, "bob@localhost", "password")
	if err != nil {
		t.Fatal(err)
	}
	bob := servertest.NewClient(t, bobSess)

	a, status := dialWS(t, wsURL, "https://localhost:"+port)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: status %d", status)
	}
	open := `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>`
	a.send(open)
	a.expect(`^<stream:features`)
	cl, err := scram.NewClient(scram.MechSHA256, "alice", "password", "", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := cl.Step(nil)
	a.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` + base64.StdEncoding.EncodeToString(first) + `</auth>`)
	ch, _ := base64.StdEncoding.DecodeString(a.expect(`<challenge [^>]*>([^<]+)</challenge>`)[1])
	final, _, err := cl.Step(ch)
	if err != nil {
		t.Fatal(err)
	}
	a.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + base64.StdEncoding.EncodeToString(final) + `</response>`)
	a.expect(`^<success `)
	a.send(open)
	a.expect(`^<stream:features`)
	a.send(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>`)
	a.expect(`<jid>alice@localhost/web</jid>`)
	a.send(`<presence xmlns='jabber:client'/>`)
	a.send(`<message xmlns='jabber:client' to='` + bobSess.LocalAddr().String() + `' type='chat' id='m1'><body>from the browser</body></message>`)
	bob.Expect(servertest.Body("from the browser"))
	bob.SendRaw(`<message to='alice@localhost/web' type='chat' id='m2'><body>to the browser</body></message>`)
	a.expect(`<body>to the browser</body>`)
}

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server"
)

// webModule serves HTTP as file upload will: GET /web/url answers with
// the URL the module would give clients of localhost for /web/file;
// /web/hold signals held and waits for release; /web/panic panics.
type webModule struct {
	host    server.Host
	held    chan struct{}
	release chan struct{}
}

func newWebModule() *webModule {
	return &webModule{held: make(chan struct{}, 16), release: make(chan struct{})}
}

func (*webModule) Name() string { return "web" }

func (m *webModule) Init(ctx context.Context, h server.Host) error {
	m.host = h
	return nil
}

func (m *webModule) HTTPRoutes() []server.HTTPRoute {
	return []server.HTTPRoute{
		{Pattern: "GET /web/url", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, m.host.HTTPURL("localhost", "/web/file"))
		})},
		{Pattern: "/web/hold", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.held <- struct{}{}
			<-m.release
			io.WriteString(w, "done")
		})},
		{Pattern: "GET /web/panic", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panic("module bug")
		})},
	}
}

var (
	_ server.Initializer  = (*webModule)(nil)
	_ server.HTTPProvider = (*webModule)(nil)
)

// startWeb runs kiezd with the config file and a webModule.
func startWeb(t *testing.T, file string) (*daemon, *webModule) {
	t.Helper()
	m := newWebModule()
	d := startServeWith(t, nil, []server.Module{m}, "-config", file)
	if d.ended {
		t.Fatalf("serve exited with %d:\n%s", d.code, d.stderr)
	}
	return d, m
}

// webClient speaks HTTP/2 (h2 true) or HTTP/1.1 over TLS, accepting the
// self-signed certificate, and plain HTTP/1.1.
func webClient(t *testing.T, h2 bool) *http.Client {
	var p http.Protocols
	p.SetHTTP1(!h2)
	p.SetHTTP2(h2)
	cfg := clientTLS()
	if !h2 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	tr := &http.Transport{TLSClientConfig: cfg, Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get fetches url and returns the response with its body read.
func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// The HTTPS listener serves the modules' routes with HTTP/2 and HTTP/1.1
// and the XMPP listeners' certificate; the plain HTTP listener, when
// configured, serves them too; modules are given https://DOMAIN:PORT/.
func TestHTTPS(t *testing.T) {
	file, dir := testConfig(t, "http = [\"127.0.0.1:0\"]\n")
	d, _ := startWeb(t, file)
	https := "https://" + d.bound.HTTPS[0].String()
	_, port, _ := net.SplitHostPort(d.bound.HTTPS[0].String())
	wantURL := "https://localhost:" + port + "/web/file"
	crt := pemDER(t, filepath.Join(dir, "data", "tls", "localhost.crt"))

	for _, tc := range []struct {
		h2        bool
		proto     string
		negotiate string
	}{{true, "HTTP/2.0", "h2"}, {false, "HTTP/1.1", "http/1.1"}} {
		resp, body := get(t, webClient(t, tc.h2), https+"/web/url")
		if resp.StatusCode != http.StatusOK || body != wantURL {
			t.Errorf("%s: GET /web/url = %s %q, want 200 %q", tc.proto, resp.Status, body, wantURL)
		}
		if resp.Proto != tc.proto || resp.TLS.NegotiatedProtocol != tc.negotiate {
			t.Errorf("spoke %s, ALPN %q; want %s, %q", resp.Proto, resp.TLS.NegotiatedProtocol, tc.proto, tc.negotiate)
		}
		if !slices.Equal(resp.TLS.PeerCertificates[0].Raw, crt) {
			t.Errorf("%s: the HTTPS listener does not present the XMPP listeners' certificate", tc.proto)
		}
	}
	if resp, _ := get(t, webClient(t, true), https+"/nothing"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing = %s, want 404", resp.Status)
	}

	resp, body := get(t, webClient(t, false), "http://"+d.bound.HTTP[0].String()+"/web/url")
	if resp.StatusCode != http.StatusOK || body != wantURL {
		t.Errorf("plain HTTP: GET /web/url = %s %q, want 200 %q", resp.Status, body, wantURL)
	}
	if code := d.stop(t); code != 0 {
		t.Errorf("exit %d:\n%s", code, d.stderr)
	}
}

// external_url is the base of the URLs modules give, whatever the
// listeners; without an https listener the plain one needs it.
func TestHTTPExternalURL(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"https://upload.example.org/", "https://upload.example.org/web/file"},
		{"https://example.org/xmpp", "https://example.org/xmpp/web/file"},
	} {
		file, _ := testConfig(t, "http = [\"127.0.0.1:0\"]\n[http]\nexternal_url = \""+tc.base+"\"\n")
		data, _ := os.ReadFile(file)
		os.WriteFile(file, []byte(strings.Replace(string(data), `https = ["127.0.0.1:0"]`, `https = []`, 1)), 0o600)

		code, stdout, stderr := kiezd(t, "", "-config", file, "check-config")
		if code != 0 || !strings.Contains(stdout, "HTTP URLs:    "+tc.base+"\n") || !strings.Contains(stdout, "https:        off\n") {
			t.Errorf("check-config: exit %d\n%s%s", code, stdout, stderr)
		}
		d, _ := startWeb(t, file)
		if len(d.bound.HTTPS) != 0 {
			t.Errorf("https = [] still listens on %v", d.bound.HTTPS)
		}
		resp, body := get(t, webClient(t, false), "http://"+d.bound.HTTP[0].String()+"/web/url")
		if resp.StatusCode != http.StatusOK || body != tc.want {
			t.Errorf("GET /web/url = %s %q, want 200 %q", resp.Status, body, tc.want)
		}
		d.stop(t)
	}
}

// At most max_concurrent_requests run at once; the next gets 503 and
// Retry-After at once, without its body being read; afterwards requests
// pass again.
func TestHTTPConcurrencyCap(t *testing.T) {
	file, _ := testConfig(t, "[http]\nmax_concurrent_requests = 2\n")
	d, m := startWeb(t, file)
	https := "https://" + d.bound.HTTPS[0].String()
	c := webClient(t, true)
	results := make(chan string, 2)
	for range 2 {
		go func() {
			resp, err := c.Get(https + "/web/hold")
			if err != nil {
				results <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- resp.Status + " " + string(body)
		}()
	}
	<-m.held
	<-m.held

	resp, body := get(t, c, https+"/web/url")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != retryAfter {
		t.Errorf("third request: %s, Retry-After %q, %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"), body)
	}

	// An HTTP/1.1 upload whose body never comes is answered all the same,
	// and the connection closed.
	conn, err := tls.Dial("tcp", d.bound.HTTPS[0].String(), &tls.Config{ServerName: "localhost", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "PUT /web/hold HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n")
	br := bufio.NewReader(conn)
	put, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, put.Body)
	if put.StatusCode != http.StatusServiceUnavailable || put.Header.Get("Retry-After") != retryAfter || !put.Close {
		t.Errorf("upload over the cap: %s, Retry-After %q, close %v; want 503, Retry-After, close", put.Status, put.Header.Get("Retry-After"), put.Close)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("after the 503 the connection is still open (read: %v)", err)
	}

	close(m.release)
	for range 2 {
		if r := <-results; r != "200 OK done" {
			t.Errorf("held request: %s", r)
		}
	}
	if resp, _ := get(t, c, https+"/web/url"); resp.StatusCode != http.StatusOK {
		t.Errorf("after the held requests ended: %s", resp.Status)
	}
	d.stop(t)
	if !strings.Contains(d.stderr.String(), "max_concurrent_requests are running") {
		t.Errorf("the refusals were not logged:\n%s", d.stderr)
	}
}

// A stop waits for HTTP requests in progress: the listeners close at
// once, a request being handled still gets its answer.
func TestHTTPGracefulShutdown(t *testing.T) {
	file, _ := testConfig(t, "")
	d, m := startWeb(t, file)
	addr := d.bound.HTTPS[0].String()
	result := make(chan string, 1)
	go func() {
		resp, err := webClient(t, false).Get("https://" + addr + "/web/hold")
		if err != nil {
			result <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- resp.Status + " " + string(body)
	}()
	<-m.held
	d.sigs <- syscall.SIGTERM
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break // the listener is closed
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the HTTPS listener still accepts after SIGTERM")
		}
	}
	close(m.release)
	if r := <-result; r != "200 OK done" {
		t.Errorf("request in progress at shutdown: %s", r)
	}
	select {
	case code := <-d.done:
		d.code, d.ended = code, true
		if code != 0 {
			t.Errorf("exit %d:\n%s", code, d.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("kiezd did not stop:\n%s", d.stderr)
	}
	if strings.Contains(d.stderr.String(), "cut off") {
		t.Errorf("the request was cut off:\n%s", d.stderr)
	}
}

// net/http's own log lines name the client: a failed TLS handshake
// ("http: TLS handshake error from 127.0.0.1:…") and a panicking handler
// are logged without the address.
func TestHTTPLogPrivacy(t *testing.T) {
	file, _ := testConfig(t, "[log]\nlevel = \"debug\"\n")
	d, _ := startWeb(t, file)
	addr := d.bound.HTTPS[0].String()

	// A client that does not accept the self-signed certificate aborts
	// the handshake.
	if c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "localhost"}); err == nil {
		c.Close()
		t.Fatal("the self-signed certificate was accepted")
	}
	resp, err := webClient(t, false).Get("https://" + addr + "/web/panic?token=s3cret")
	if err == nil {
		resp.Body.Close()
	}
	waitFor := func(s string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(d.stderr.String(), s); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", s, d.stderr)
			}
		}
	}
	waitFor("http: TLS handshake error from [address]")
	waitFor("http: panic serving [address]: module bug")
	d.stop(t)

	out := d.stderr.String()
	for _, a := range slices.Concat(d.bound.C2S, d.bound.DirectTLS, d.bound.HTTPS, d.bound.HTTP, d.bound.S2S) {
		out = strings.ReplaceAll(out, a.String(), "LISTENER")
	}
	for _, forbidden := range []string{"127.0.0.1", "s3cret"} {
		if strings.Contains(out, forbidden) {
			t.Errorf("the log contains %q:\n%s", forbidden, d.stderr)
		}
	}
}

func TestScrubIPs(t *testing.T) {
	for in, want := range map[string]string{
		"http: TLS handshake error from 127.0.0.1:54321: EOF":                    "http: TLS handshake error from [address]: EOF",
		"http: TLS handshake error from [::1]:54321: remote error":               "http: TLS handshake error from [address]: remote error",
		"http2: server: error reading preface from client [fe80::1%eth0]:80":     "http2: server: error reading preface from client [address]",
		"from 2001:db8::7 and 198.51.100.7, ::ffff:192.0.2.1":                    "from [address] and [address], [address]",
		"http: panic serving 192.0.2.1:1: x\n/src/net/http/server.go:2100 +0x1f": "http: panic serving [address]: x\n/src/net/http/server.go:2100 +0x1f",
		"tls: bad certificate; 12:30 a.b.c deadbeef:cafe 1.2.3":                  "tls: bad certificate; 12:30 a.b.c deadbeef:cafe 1.2.3",
	} {
		if got := scrubIPs(in); got != want {
			t.Errorf("scrubIPs(%q) = %q, want %q", in, got, want)
		}
	}
}

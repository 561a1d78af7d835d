package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// metricLine is a sample of the Prometheus text format:
// name{label="value",...} value.
var metricLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$`)

// scrapeMetrics fetches http://addr/metrics and parses it strictly: every
// line is a # HELP or # TYPE comment or a sample. It returns the text and
// the samples by name and labels.
func scrapeMetrics(t *testing.T, addr string) (string, map[string]float64) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		m := metricLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("not a comment or a sample: %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if _, dup := out[m[1]+m[2]]; dup {
			t.Fatalf("%s%s twice", m[1], m[2])
		}
		out[m[1]+m[2]] = v
	}
	return string(body), out
}

// TestMetrics scrapes a running kiezd over HTTP after a failed login, two
// logins (STARTTLS and direct TLS), messages (one to an account offline),
// an upload and a ban, and checks that the counts moved as they should,
// that the endpoint serves nothing but GET /metrics, and that nothing in
// it names a user or an address.
func TestMetrics(t *testing.T) {
	file, _ := testConfig(t, "[metrics]\nlisten = [\"127.0.0.1:0\"]\n")
	for _, u := range []string{"alice", "bob", "carol"} {
		if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", u+"@localhost"); code != 0 {
			t.Fatal(stderr)
		}
	}
	d := startServe(t, nil, "-config", file)
	if d.ended || len(d.bound.Metrics) != 1 {
		t.Fatalf("metrics listeners: %v\n%s", d.bound.Metrics, d.stderr)
	}
	addr := d.bound.Metrics[0].String()
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("metrics on %s", addr)
	}
	if code, _, stderr := kiezd(t, "", "-config", file, "ban", "198.51.100.0/24"); code != 0 {
		t.Fatal(stderr)
	}

	if sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "wrong"); err == nil {
		logout(sess)
		t.Fatal("logged in with a wrong password")
	}
	sa, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := login(t, d.bound.DirectTLS[0], true, "bob@localhost", "password")
	if err != nil {
		t.Fatal(err)
	}
	a, b := servertest.NewClient(t, sa), servertest.NewClient(t, sb)
	b.Send(&stanza.Stanza{Kind: stanza.Presence})
	b.Sync()
	chat := func(to, body string) *stanza.Stanza {
		name := xml.Name{Space: stanza.NSClient, Local: "body"}
		return &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: jid.MustParse(to),
			Inner: []xml.Token{xml.StartElement{Name: name}, xml.CharData(body), xml.EndElement{Name: name}}}
	}
	a.Send(chat("bob@localhost", "hello bob"))
	b.Expect(servertest.Body("hello bob"))
	b.Sync() // bob's writer counted the message before it wrote this answer
	a.Send(chat("carol@localhost", "hello carol"))
	a.Sync()

	// An upload: a slot, the PUT, and the GET twice on one HTTP/1.1
	// connection, so that the first GET's handler has returned (and
	// counted) once the second is answered.
	data := make([]byte, 10<<10)
	rand.Read(data)
	a.Send(&stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Get, ID: "slot", To: jid.MustParse("upload.localhost"),
		Inner: stanza.Resolve(stanza.Elem(xml.Name{Space: "urn:xmpp:http:upload:0", Local: "request"}, []xml.Attr{
			stanza.Attr("filename", "photo.jpg"), stanza.Attr("size", strconv.Itoa(len(data))), stanza.Attr("content-type", "image/jpeg")}), stanza.NSClient)})
	slot := a.Expect(servertest.ByID("slot"))
	var put, getURL string
	for _, tok := range slot.Inner {
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "put":
				put = stanza.AttrValue(se.Attr, "url")
			case "get":
				getURL = stanza.AttrValue(se.Attr, "url")
			}
		}
	}
	c := webClient(t, false)
	c.Transport.(*http.Transport).MaxConnsPerHost = 1
	req, _ := http.NewRequest(http.MethodPut, put, bytes.NewReader(data))
	req.Header.Set("Content-Type", "image/jpeg")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	for range 2 {
		if resp, body := get(t, c, getURL); resp.StatusCode != http.StatusOK || body != string(data) {
			t.Fatalf("GET: %s, %d bytes", resp.Status, len(body))
		}
	}

	text, got := scrapeMetrics(t, addr)
	want := map[string]float64{
		`kiez_logins_total{result="ok",mechanism="scram"}`:     2,
		`kiez_logins_total{result="failed",mechanism="scram"}`: 1,
		`kiez_logins_total{result="ok",mechanism="plain"}`:     0,
		`kiez_sessions{transport="tcp"}`:                       1,
		`kiez_sessions{transport="directtls"}`:                 1,
		`kiez_stanzas_received_total{kind="message"}`:          2,
		`kiez_offline_stored_total`:                            1,
		`kiez_archive_appended_total`:                          4, // each message in the sender's and the recipient's archive
		`kiez_upload_files_total`:                              1,
		`kiez_upload_slots_total{result="ok"}`:                 1,
		`kiez_upload_bytes_total{direction="received"}`:        float64(len(data)),
		`kiez_bans`:                  1,
		`kiez_queue_overflows_total`: 0,
		`kiez_build_info{version="devel",go="` + readBuildInfo().Go + `"}`: 1,
	}
	if bi := readBuildInfo(); bi.String() != "devel" {
		delete(want, `kiez_build_info{version="devel",go="`+bi.Go+`"}`)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present: %v), want %v", k, g, ok, v)
		}
	}
	if n := got[`kiez_stanzas_sent_total{kind="message"}`]; n < 1 {
		t.Errorf("messages sent: %v", n)
	}
	if n := got[`kiez_upload_bytes_total{direction="sent"}`]; n < float64(len(data)) || n > float64(2*len(data)) {
		t.Errorf("upload bytes sent: %v, want %d to %d", n, len(data), 2*len(data))
	}
	for _, op := range []string{"account", "archive_append", "offline_push"} {
		if n := got[`kiez_storage_seconds_count{op="`+op+`"}`]; n < 1 {
			t.Errorf("storage latency of %s: %v observations", op, n)
		}
	}
	if got[`go_goroutines`] < 1 || got[`process_start_time_seconds`] < 1 {
		t.Errorf("runtime metrics: %v goroutines, started at %v", got[`go_goroutines`], got[`process_start_time_seconds`])
	}
	// Nothing names a user, a resource, a file or an address.
	secrets := []string{"alice", "bob", "carol", "@localhost", "photo", "hello", "127.0.0.1", "198.51.100", "::1"}
	for _, s := range append(secrets, sa.LocalAddr().Resourcepart(), sb.LocalAddr().Resourcepart()) {
		if strings.Contains(text, s) {
			t.Errorf("the metrics contain %q", s)
		}
	}
	if t.Failed() {
		t.Log(text)
	}

	// GET /metrics only.
	for _, r := range []struct{ method, path string }{{"POST", "/metrics"}, {"GET", "/"}, {"GET", "/debug/pprof/"}, {"GET", "/metrics/x"}} {
		req, _ := http.NewRequest(r.method, "http://"+addr+r.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("%s %s: %s", r.method, r.path, resp.Status)
		}
	}
	logout(sa)
	logout(sb)
}

// TestMetricsOffByDefault: without [metrics] there is no metrics
// listener; a non-loopback address is warned about.
func TestMetricsOffByDefault(t *testing.T) {
	file, _ := testConfig(t, "")
	d := startServe(t, nil, "-config", file)
	if len(d.bound.Metrics) != 0 {
		t.Errorf("metrics listeners without [metrics]: %v", d.bound.Metrics)
	}
	cfg := defaultConfig()
	cfg.Metrics.Listen = []string{":9542"}
	if w := fmt.Sprint(cfg.warnings()); !strings.Contains(w, `metrics.listen ":9542" is reachable from other machines`) {
		t.Errorf("warnings: %s", w)
	}
	cfg.Metrics.Listen = []string{"127.0.0.1:9542", "[::1]:9542"}
	if w := cfg.warnings(); len(w) != 0 {
		t.Errorf("warnings for loopback: %v", w)
	}
}

// TestCheckMetrics: kiezd check notes the metrics endpoint, warns about
// an address other machines reach, and does not list its port among those
// to open in the firewall.
func TestCheckMetrics(t *testing.T) {
	cfg := defaultConfig()
	cfg.Listen.C2S = []string{"127.0.0.1:5222"}
	deps := checkDeps{Resolver: fakeResolver{}, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, syscall.ECONNREFUSED
	}}.withDefaults()
	r := runChecks(t.Context(), cfg, deps)
	if r.has("Configuration", levelNote, "metrics are served") {
		t.Errorf("metrics off:\n%s", r)
	}
	cfg.Metrics.Listen = []string{":9542"}
	r = runChecks(t.Context(), cfg, deps)
	if !r.has("Configuration", levelNote, "metrics are served on :9542") || !r.has("Configuration", levelWarn, `metrics.listen ":9542" is reachable from other machines`) {
		t.Errorf("metrics on all interfaces:\n%s", r)
	}
	if strings.Contains(r.String(), "9542/tcp") || strings.Contains(r.String(), "9542,") {
		t.Errorf("the metrics port among those to open:\n%s", r)
	}
}

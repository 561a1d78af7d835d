package server_test

import (
	"bufio"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"mellium.im/sasl"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/metrics"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage/memory"
)

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$`)

// scrape writes reg in the text format and parses it strictly: every line
// is a # HELP or # TYPE comment or a sample. It returns the text and the
// samples by name and labels, as `name{label="value"}`.
func scrape(t *testing.T, reg *metrics.Registry) (string, map[string]float64) {
	t.Helper()
	var b strings.Builder
	if err := reg.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("not a comment or a sample: %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out[m[1]+m[2]] = v
	}
	return b.String(), out
}

// wantSamples fails the test for each sample that does not have the value
// wanted.
func wantSamples(t *testing.T, text string, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present: %v), want %v", k, g, ok, v)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}

// countingModule counts through the registry New hands it.
type countingModule struct {
	reg   *metrics.Registry
	calls int
	hits  *metrics.Counter
}

func (*countingModule) Name() string { return "counting" }

func (m *countingModule) RegisterMetrics(r *metrics.Registry) {
	m.reg, m.calls = r, m.calls+1
	m.hits = r.Counter("kiez_counting_hits_total", "Hits.")
}

var _ server.MetricsRegistrar = (*countingModule)(nil)

// TestMetrics: logins, failed logins, stanzas both ways and sessions are
// counted; modules get the registry; and nothing in the output names a
// user, a domain's account or an address.
func TestMetrics(t *testing.T) {
	reg := metrics.NewRegistry()
	mod := &countingModule{}
	srv := servertest.Start(t, server.Config{Metrics: reg, Modules: []server.Module{mod}})
	if mod.calls != 1 || mod.reg != reg {
		t.Fatalf("RegisterMetrics called %d times, with %p (want %p)", mod.calls, mod.reg, reg)
	}
	mod.hits.Add(2)
	alice := srv.AddUser(t, "alice", "pw-alice")
	bob := srv.AddUser(t, "bob", "pw-bob")
	if _, err := srv.Login(t.Context(), alice, "wrong"); err == nil {
		t.Fatal("logged in with a wrong password")
	}
	a := srv.Connect(t, alice, "pw-alice")
	b := srv.Connect(t, bob, "pw-bob", sasl.Plain)
	a.Send(presence())
	b.Send(presence())
	b.Sync()
	a.Send(message(bob, "m1", "hello bob"))
	a.Send(message(bob, "m2", "hello again"))
	b.Expect(servertest.Body("hello again"))
	// Bob's writer counts a batch once it is written: a sync after it
	// has started a later batch.
	b.Sync()
	a.Sync()

	text, got := scrape(t, reg)
	wantSamples(t, text, got, map[string]float64{
		`kiez_logins_total{result="ok",mechanism="scram"}`:     1,
		`kiez_logins_total{result="failed",mechanism="scram"}`: 1,
		`kiez_logins_total{result="ok",mechanism="plain"}`:     1,
		`kiez_logins_total{result="failed",mechanism="plain"}`: 0,
		`kiez_stanzas_received_total{kind="message"}`:          2,
		`kiez_stanzas_received_total{kind="presence"}`:         2,
		`kiez_sessions{transport="tcp"}`:                       2,
		`kiez_sessions{transport="directtls"}`:                 0,
		`kiez_queue_overflows_total`:                           0,
		`kiez_counting_hits_total`:                             2,
		`kiez_storage_seconds_count{op="account"}`:             3,
	})
	// The failed login's connection may still be closing.
	if n := got[`kiez_connections{transport="tcp"}`]; n < 2 || n > 3 {
		t.Errorf("tcp connections: %v", n)
	}
	if got[`kiez_stanzas_received_total{kind="iq"}`] < 2 {
		t.Errorf("iqs received: %v", got[`kiez_stanzas_received_total{kind="iq"}`])
	}
	// Bob got the two messages (and no presence: the server runs no
	// presence module); the answer to bob's first sync was counted
	// before the messages were written.
	if got[`kiez_stanzas_sent_total{kind="message"}`] != 2 || got[`kiez_stanzas_sent_total{kind="iq"}`] < 1 {
		t.Errorf("stanzas sent: %v messages, %v iqs", got[`kiez_stanzas_sent_total{kind="message"}`], got[`kiez_stanzas_sent_total{kind="iq"}`])
	}
	for _, s := range []string{"alice", "bob", "127.0.0.1", "hello"} {
		if strings.Contains(text, s) {
			t.Errorf("the metrics contain %q:\n%s", s, text)
		}
	}
}

// TestMetricsOff: without Config.Metrics, modules that count are given
// nil, which they count into without checking.
func TestMetricsOff(t *testing.T) {
	mod := &countingModule{}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{mod}})
	if mod.calls != 1 || mod.reg != nil || mod.hits != nil {
		t.Fatalf("RegisterMetrics called %d times, with %p", mod.calls, mod.reg)
	}
	mod.hits.Inc()
	alice := srv.AddUser(t, "alice", "pw")
	srv.Connect(t, alice, "pw").Sync()
}

// TestMetricsJanitor: the janitor's removals are counted by kind.
func TestMetricsJanitor(t *testing.T) {
	store := memory.New()
	fillJanitor(t, store, 5)
	reg := metrics.NewRegistry()
	srv, err := server.New(t.Context(), server.Config{
		Domains: []string{"example.org"}, Accounts: store, Metrics: reg,
		Modules: []server.Module{&offlineExpirer{store: store}}, Retention: server.Retention{Interval: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.RunJanitor(t.Context(), janitorNow)
	text, got := scrape(t, reg)
	wantSamples(t, text, got, map[string]float64{
		`kiez_janitor_removed_total{kind="offline"}`:                            5,
		`kiez_janitor_removed_total{kind="` + server.KindServiceData + `"}`:     5,
		`kiez_janitor_removed_total{kind="` + server.KindRemovedAccounts + `"}`: 0,
	})
}

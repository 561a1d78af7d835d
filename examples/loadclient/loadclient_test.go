package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// startServer runs a Kiez server with the message archive on 127.0.0.1,
// provisioned like examples/loadserver: u0 … u7 on bench.test, password
// benchpw.
func startServer(t *testing.T) *servertest.Server {
	t.Helper()
	store := memory.New()
	keys, err := scram.NewAllKeys("benchpw", scram.MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		acct := storage.Account{JID: "u" + strconv.Itoa(i) + "@bench.test", Keys: keys, Created: time.Now()}
		if err := store.CreateAccount(context.Background(), acct); err != nil {
			t.Fatal(err)
		}
	}
	archive, err := mam.New(mam.Options{}, mam.Deps{Archive: store, KV: store})
	if err != nil {
		t.Fatal(err)
	}
	return servertest.Start(t, server.Config{
		Domains:  []string{"bench.test"},
		Accounts: store,
		Modules:  []server.Module{archive},
	})
}

// runScenario runs the load client in process with args plus the server's
// address and this process's pid (the server runs in it), and decodes
// its one result line into result.
func runScenario(t *testing.T, srv *servertest.Server, result any, args ...string) {
	t.Helper()
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	args = append(args, "-addr", srv.Addr, "-pid", strconv.Itoa(os.Getpid()), "-maxtime", "8s")
	if err := run(t.Context(), env{out: &out, log: log}, args); err != nil {
		t.Fatalf("loadclient %s: %v", strings.Join(args, " "), err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one result line, got %q", out.String())
	}
	dec := json.NewDecoder(strings.NewReader(lines[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(result); err != nil {
		t.Fatalf("result line %s: %v", lines[0], err)
	}
	t.Logf("%s", lines[0])
}

// checkCommon checks the fields every result line has.
func checkCommon(t *testing.T, scenario string, c Common, cpu CPU, e Errors) {
	t.Helper()
	if c.Scenario != scenario || c.Domain != "bench.test" || c.Mech != "SCRAM-SHA-1" {
		t.Errorf("common fields %+v", c)
	}
	if e.Count != 0 {
		t.Errorf("%d errors: %v %v", e.Count, e.Kinds, e.Samples)
	}
	if cpu.Window < 0 || cpu.ServerCPU == nil || *cpu.ServerCPU < 0 {
		t.Errorf("cpu fields %+v", cpu)
	}
}

// TestScenarios runs each scenario briefly against a real server.
func TestScenarios(t *testing.T) {
	srv := startServer(t)

	t.Run("login", func(t *testing.T) {
		var r LoginResult
		runScenario(t, srv, &r, "login", "-c", "2", "-d", "500ms", "-warmup", "100ms")
		checkCommon(t, "login", r.Common, r.CPU, r.Errors)
		if r.Logins <= 0 || r.LoginsTotal < r.Logins || r.PerSec <= 0 {
			t.Errorf("logins %d of %d, %v/s", r.Logins, r.LoginsTotal, r.PerSec)
		}
		if r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 {
			t.Errorf("latency %+v", r.Latency)
		}
	})

	for _, nostore := range []bool{true, false} {
		t.Run("msg/nostore="+strconv.FormatBool(nostore), func(t *testing.T) {
			args := []string{"msg", "-p", "2", "-w", "4", "-d", "500ms", "-warmup", "100ms", "-drain", "2s"}
			if nostore {
				args = append(args, "-nostore")
			}
			var r MsgResult
			runScenario(t, srv, &r, args...)
			checkCommon(t, "msg", r.Common, r.CPU, r.Errors)
			if r.Sent <= 0 || r.Received != r.Sent || r.Lost != 0 || r.Bounced != 0 {
				t.Errorf("sent %d, received %d, lost %d, bounced %d", r.Sent, r.Received, r.Lost, r.Bounced)
			}
			if r.Delivered <= 0 || r.Delivered > r.Received || r.PerSec <= 0 {
				t.Errorf("delivered in window %d, %v/s", r.Delivered, r.PerSec)
			}
			if !r.ServerArchives || r.NoStore != nostore {
				t.Errorf("server_archives %v, nostore_hint %v", r.ServerArchives, r.NoStore)
			}
			if r.P50 <= 0 || r.P99 < r.P50 {
				t.Errorf("latency %+v", r.Latency)
			}
			// u0 sent to u1: its archive holds them unless -nostore.
			var q MAMResult
			runScenario(t, srv, &q, "mam", "-user", "u0", "-contact", "u1", "-q", "1", "-page", "1")
			if archived := q.ArchiveCount > 0; archived == nostore {
				t.Errorf("u0's archive holds %d messages after the run", q.ArchiveCount)
			}
		})
	}

	t.Run("idle", func(t *testing.T) {
		var r IdleResult
		runScenario(t, srv, &r, "idle", "-k", "2,5", "-c", "2", "-settle", "50ms")
		checkCommon(t, "idle", r.Common, r.CPU, r.Errors)
		if len(r.Steps) != 2 || r.Steps[0].Open != 2 || r.Steps[1].Open != 5 || r.Sessions != 5 || r.Dropped != 0 {
			t.Errorf("steps %+v, sessions %d, dropped %d", r.Steps, r.Sessions, r.Dropped)
		}
		if r.RSSBefore <= 0 || r.Steps[1].RSS <= 0 || r.KiBPerSessionBetween == nil {
			t.Errorf("rss before %d, steps %+v, between %v", r.RSSBefore, r.Steps, r.KiBPerSessionBetween)
		}
	})

	t.Run("mam", func(t *testing.T) {
		var r MAMResult
		runScenario(t, srv, &r, "mam", "-user", "u6", "-contact", "u7", "-m", "30", "-q", "5", "-page", "20")
		checkCommon(t, "mam", r.Common, r.CPU, r.Errors)
		if r.Skipped != "" || r.ArchiveBefore != 0 || r.Filled != 30 || r.ArchiveCount != 30 {
			t.Errorf("skipped %q, before %d, filled %d, count %d", r.Skipped, r.ArchiveBefore, r.Filled, r.ArchiveCount)
		}
		if r.Queries != 5 || r.ShortPages != 0 || r.ServerCPUPerQuery == nil || r.P50 <= 0 {
			t.Errorf("queries %d, short %d, cpu/query %v, latency %+v", r.Queries, r.ShortPages, r.ServerCPUPerQuery, r.Latency)
		}
	})
}

// TestRefusesNonLoopback checks that only loopback addresses are accepted.
func TestRefusesNonLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:35222", true},
		{"127.8.9.10:5222", true},
		{"[::1]:5222", true},
		{"10.0.0.1:5222", false},
		{"192.0.2.1:5222", false},
		{"[2001:db8::1]:5222", false},
		{"example.org:5222", false},
		{"localhost:5222", false}, // a name could resolve anywhere
		{"0.0.0.0:5222", false},
		{"127.0.0.1", false},
		{"127.0.0.1:0", false},
	} {
		if err := checkLoopback(tc.addr); (err == nil) != tc.ok {
			t.Errorf("checkLoopback(%q) = %v, want ok %v", tc.addr, err, tc.ok)
		}
	}
	err := run(t.Context(), env{out: io.Discard, log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		[]string{"login", "-addr", "192.0.2.1:5222", "-d", "1s"})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("login against 192.0.2.1: %v, want a refusal", err)
	}
}

// TestSplitter checks that elements come out whole however the stream is
// cut, with quoted '>' and '/', skipped markup and whitespace between.
func TestSplitter(t *testing.T) {
	stream := `<?xml version='1.0'?><stream:stream xmlns='jabber:client' id="a>b">` +
		"\n<stream:features><mechanisms><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>  " +
		`<message to='a@b/c' id='x/>'><body>1 &lt;x&gt;<![CDATA[</message>]]></body><!-- </message> --></message>` +
		`<iq type='result' id='p1'/>` + "\n</stream:stream>"
	want := []string{
		`<stream:stream xmlns='jabber:client' id="a>b">`,
		"<stream:features><mechanisms><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>",
		`<message to='a@b/c' id='x/>'><body>1 &lt;x&gt;<![CDATA[</message>]]></body><!-- </message> --></message>`,
		`<iq type='result' id='p1'/>`,
	}
	for _, tc := range []struct {
		name string
		r    io.Reader
	}{
		{"whole", strings.NewReader(stream)},
		{"bytewise", iotest.OneByteReader(strings.NewReader(stream))},
	} {
		s := newSplitter(tc.r, nil)
		for i, w := range want {
			el, err := s.next()
			if err != nil || string(el) != w {
				t.Fatalf("%s: element %d = %q, %v; want %q", tc.name, i, el, err, w)
			}
		}
		if _, err := s.next(); err != errStreamEnd {
			t.Errorf("%s: after the last element: %v, want errStreamEnd", tc.name, err)
		}
	}
	if got := attr([]byte(want[2]), "id"); got != "x/>" {
		t.Errorf("attr id = %q", got)
	}
	if got := name([]byte(want[1])); got != "features" {
		t.Errorf("name = %q", got)
	}
}

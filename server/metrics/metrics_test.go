package metrics_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kiez-im/kiez/server/metrics"
)

// sampleLine is a sample line of the text format: a name, labels, a value.
var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$`)

// parse reads the text format strictly: every line is a # HELP or # TYPE
// comment, or a sample; it returns the samples by name with labels.
func parse(t *testing.T, r io.Reader) map[string]float64 {
	t.Helper()
	out := make(map[string]float64)
	sc := bufio.NewScanner(r)
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
			t.Fatalf("%q: bad value: %v", line, err)
		}
		if _, dup := out[m[1]+m[2]]; dup {
			t.Fatalf("sample %s%s twice", m[1], m[2])
		}
		out[m[1]+m[2]] = v
	}
	return out
}

func TestWriteText(t *testing.T) {
	r := metrics.NewRegistry()
	msg := r.Counter("kiez_stanzas_received_total", "Stanzas read.", metrics.Label{Name: "kind", Value: "message"})
	iq := r.Counter("kiez_stanzas_received_total", "Stanzas read.", metrics.Label{Name: "kind", Value: "iq"})
	g := r.Gauge("kiez_things", "Things.\nOn two lines, with a \\.")
	h := r.Histogram("kiez_op_seconds", "Op time.", []float64{0.1, 1}, metrics.Label{Name: "op", Value: `a"b\c`})
	r.GaugeFunc("kiez_computed", "Computed.", func() float64 { return 2.5 })
	msg.Add(3)
	iq.Inc()
	g.Set(7)
	g.Dec()
	h.Observe(0.05)
	h.Observe(0.5)
	h.Observe(5)
	if again := r.Counter("kiez_stanzas_received_total", "Stanzas read.", metrics.Label{Name: "kind", Value: "iq"}); again != iq {
		t.Error("registering a series again made a new one")
	}

	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	got := parse(t, strings.NewReader(text))
	want := map[string]float64{
		`kiez_stanzas_received_total{kind="message"}`:    3,
		`kiez_stanzas_received_total{kind="iq"}`:         1,
		`kiez_things`:                                    6,
		`kiez_computed`:                                  2.5,
		`kiez_op_seconds_bucket{op="a\"b\\c",le="0.1"}`:  1,
		`kiez_op_seconds_bucket{op="a\"b\\c",le="1"}`:    2,
		`kiez_op_seconds_bucket{op="a\"b\\c",le="+Inf"}`: 3,
		`kiez_op_seconds_sum{op="a\"b\\c"}`:              5.55,
		`kiez_op_seconds_count{op="a\"b\\c"}`:            3,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v\n%s", k, g, ok, v, text)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d samples, want %d:\n%s", len(got), len(want), text)
	}
	for _, line := range []string{
		"# TYPE kiez_stanzas_received_total counter",
		"# TYPE kiez_things gauge",
		"# HELP kiez_things Things.\\nOn two lines, with a \\\\.",
		"# TYPE kiez_op_seconds histogram",
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("no line %q in\n%s", line, text)
		}
	}
	// Families come sorted by name.
	if strings.Index(text, "kiez_computed") > strings.Index(text, "kiez_things") {
		t.Errorf("families not sorted:\n%s", text)
	}

	n := 0
	for s := range r.All() {
		if s.Name == "kiez_op_seconds_bucket" && s.Labels[len(s.Labels)-1].Name != "le" {
			t.Errorf("bucket sample without le: %+v", s)
		}
		n++
	}
	if n != len(want) {
		t.Errorf("All yielded %d samples, want %d", n, len(want))
	}
}

// TestNil: a nil registry registers nothing and its metrics count
// nothing, without panicking.
func TestNil(t *testing.T) {
	var r *metrics.Registry
	c := r.Counter("a_total", "A.")
	g := r.Gauge("b", "B.")
	h := r.Histogram("c_seconds", "C.", metrics.LatencyBuckets())
	r.GaugeFunc("d", "D.", func() float64 { return 1 })
	c.Inc()
	c.Add(2)
	g.Inc()
	g.Set(3)
	h.Observe(1)
	if c != nil || g != nil || h != nil || c.Value() != 0 || g.Value() != 0 {
		t.Error("a nil registry handed out metrics")
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil || b.Len() != 0 {
		t.Errorf("WriteText of nil: %q, %v", b.String(), err)
	}
	for range r.All() {
		t.Error("All of nil yielded a sample")
	}
}

func TestRegisterClash(t *testing.T) {
	for name, f := range map[string]func(r *metrics.Registry){
		"type":       func(r *metrics.Registry) { r.Gauge("x_total", "X.") },
		"help":       func(r *metrics.Registry) { r.Counter("x_total", "Other.") },
		"func":       func(r *metrics.Registry) { r.CounterFunc("x_total", "X.", func() float64 { return 0 }) },
		"name":       func(r *metrics.Registry) { r.Counter("x-y", "X.") },
		"label name": func(r *metrics.Registry) { r.Counter("y_total", "Y.", metrics.Label{Name: "a b"}) },
		"label le":   func(r *metrics.Registry) { r.Counter("y_total", "Y.", metrics.Label{Name: "le"}) },
		"label twice": func(r *metrics.Registry) {
			r.Counter("y_total", "Y.", metrics.Label{Name: "a"}, metrics.Label{Name: "a"})
		},
		"buckets":      func(r *metrics.Registry) { r.Histogram("z_seconds", "Z.", []float64{1, 0.5}) },
		"buckets diff": func(r *metrics.Registry) { r.Histogram("h_seconds", "H.", []float64{2}) },
	} {
		t.Run(name, func(t *testing.T) {
			r := metrics.NewRegistry()
			r.Counter("x_total", "X.")
			r.Histogram("h_seconds", "H.", []float64{1})
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f(r)
		})
	}
}

// TestConcurrent counts from many goroutines while the registry is read
// (run with -race).
func TestConcurrent(t *testing.T) {
	r := metrics.NewRegistry()
	c := r.Counter("n_total", "N.")
	h := r.Histogram("t_seconds", "T.", []float64{1})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				c.Inc()
				h.Observe(0.5)
			}
		}()
	}
	for range 10 {
		r.WriteText(io.Discard)
	}
	wg.Wait()
	got := parse(t, strings.NewReader(text(t, r)))
	if got["n_total"] != 4000 || got["t_seconds_count"] != 4000 || got["t_seconds_sum"] != 2000 {
		t.Errorf("after 4000 counts: %v", got)
	}
}

func text(t *testing.T, r *metrics.Registry) string {
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestServeHTTP(t *testing.T) {
	r := metrics.NewRegistry()
	r.Counter("a_total", "A.").Inc()
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != metrics.ContentType {
		t.Fatalf("GET: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if got := parse(t, rec.Body); got["a_total"] != 1 {
		t.Errorf("GET: %v", got)
	}
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

func Example() {
	reg := metrics.NewRegistry()
	logins := reg.Counter("app_logins_total", "Logins.", metrics.Label{Name: "result", Value: "ok"})
	logins.Inc()
	reg.WriteText(os.Stdout)
	// Output:
	// # HELP app_logins_total Logins.
	// # TYPE app_logins_total counter
	// app_logins_total{result="ok"} 1
}

func ExampleRegistry_All() {
	reg := metrics.NewRegistry()
	reg.Gauge("app_sessions", "Sessions.").Set(2)
	for s := range reg.All() {
		fmt.Println(s.Name, s.Value)
	}
	// Output: app_sessions 2
}

// BenchmarkCount measures what counting costs: a nil counter (metrics
// off), a counter, a histogram observation, and a scrape of a registry of
// the size of a server's.
func BenchmarkCount(b *testing.B) {
	b.Run("nil", func(b *testing.B) {
		var c *metrics.Counter
		for b.Loop() {
			c.Inc()
		}
	})
	b.Run("counter", func(b *testing.B) {
		c := metrics.NewRegistry().Counter("a_total", "A.")
		for b.Loop() {
			c.Inc()
		}
	})
	b.Run("histogram", func(b *testing.B) {
		h := metrics.NewRegistry().Histogram("a_seconds", "A.", metrics.LatencyBuckets())
		for b.Loop() {
			h.Observe(0.003)
		}
	})
	b.Run("scrape", func(b *testing.B) {
		r := metrics.NewRegistry()
		for i := range 40 {
			r.Counter("c_total", "C.", metrics.Label{Name: "n", Value: strconv.Itoa(i)}).Inc()
		}
		for i := range 4 {
			r.Histogram("h_seconds", "H.", metrics.LatencyBuckets(), metrics.Label{Name: "n", Value: strconv.Itoa(i)}).Observe(0.01)
		}
		b.ReportAllocs()
		for b.Loop() {
			r.WriteText(io.Discard)
		}
	})
}

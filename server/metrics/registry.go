package metrics

import (
	"bufio"
	"fmt"
	"io"
	"iter"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Type is the type of a metric family.
type Type uint8

// Types of metric families.
const (
	CounterType Type = iota + 1
	GaugeType
	HistogramType
)

func (t Type) String() string {
	switch t {
	case CounterType:
		return "counter"
	case GaugeType:
		return "gauge"
	case HistogramType:
		return "histogram"
	}
	return "untyped"
}

// Registry holds metric families, each a name, a help text, a type and
// series told apart by their labels. Registering is done once, when a
// server and its modules are built; counting needs no registry. Its
// methods are safe for concurrent use.
//
// Registering a series that exists returns it, so two parts of a program
// may share one; registering a name again with another type, help text or
// set of buckets, or an invalid name, is a programming error and panics
// with a message naming both registrations, as http.ServeMux.Handle does.
//
// A nil *Registry registers nothing: its methods return nil metrics,
// which count nothing.
type Registry struct {
	mu     sync.Mutex
	byName map[string]*family
}

type family struct {
	name, help string
	typ        Type
	bounds     []float64 // histograms
	series     []*series // in registration order
}

// series is one labelled metric of a family; exactly one of its value
// fields is set.
type series struct {
	labels []Label
	key    string // the rendered labels, such as `{kind="message"}`, or ""
	c      *Counter
	g      *Gauge
	h      *Histogram
	fn     func() float64
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byName: make(map[string]*family)} }

// Counter returns the counter name with labels, registering it (and its
// family, with help) if needed. By convention a counter's name ends in
// _total.
func (r *Registry) Counter(name, help string, labels ...Label) *Counter {
	if r == nil {
		return nil
	}
	s := r.register(name, help, CounterType, nil, labels, func(s *series) { s.c = new(Counter) })
	if s.c == nil {
		panic(fmt.Sprintf("metrics: %s%s is registered as a function", name, s.key))
	}
	return s.c
}

// Gauge returns the gauge name with labels, registering it if needed.
func (r *Registry) Gauge(name, help string, labels ...Label) *Gauge {
	if r == nil {
		return nil
	}
	s := r.register(name, help, GaugeType, nil, labels, func(s *series) { s.g = new(Gauge) })
	if s.g == nil {
		panic(fmt.Sprintf("metrics: %s%s is registered as a function", name, s.key))
	}
	return s.g
}

// Histogram returns the histogram name with labels and buckets (their
// upper bounds, ascending; +Inf is implied), registering it if needed.
// Every series of a family has the same buckets. Latency histograms
// count seconds, and their names end in _seconds.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...Label) *Histogram {
	if r == nil {
		return nil
	}
	if len(buckets) == 0 || !slices.IsSorted(buckets) || math.IsInf(buckets[len(buckets)-1], 1) {
		panic(fmt.Sprintf("metrics: histogram %s needs finite buckets in ascending order", name))
	}
	bounds := slices.Clone(buckets)
	return r.register(name, help, HistogramType, bounds, labels, func(s *series) { s.h = newHistogram(bounds) }).h
}

// CounterFunc registers a counter whose value f returns when the registry
// is read, for counts kept elsewhere. f must be cheap and safe for
// concurrent use; it must not register metrics.
func (r *Registry) CounterFunc(name, help string, f func() float64, labels ...Label) {
	r.registerFunc(name, help, CounterType, f, labels)
}

// GaugeFunc registers a gauge whose value f returns when the registry is
// read, for values that cost nothing until asked, such as the number of
// open connections. f must be cheap and safe for concurrent use; it must
// not register metrics.
func (r *Registry) GaugeFunc(name, help string, f func() float64, labels ...Label) {
	r.registerFunc(name, help, GaugeType, f, labels)
}

func (r *Registry) registerFunc(name, help string, t Type, f func() float64, labels []Label) {
	if r == nil {
		return
	}
	if f == nil {
		panic(fmt.Sprintf("metrics: %s: nil function", name))
	}
	s := r.register(name, help, t, nil, labels, func(s *series) { s.fn = f })
	if s.fn == nil {
		panic(fmt.Sprintf("metrics: %s%s is registered as a value, not a function", name, s.key))
	}
}

// register finds or adds the series. A new series is made by mk.
func (r *Registry) register(name, help string, t Type, bounds []float64, labels []Label, mk func(*series)) *series {
	if !validName(name, true) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	key, err := renderLabels(labels)
	if err != nil {
		panic(fmt.Sprintf("metrics: %s: %v", name, err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byName == nil {
		r.byName = make(map[string]*family)
	}
	f := r.byName[name]
	if f == nil {
		f = &family{name: name, help: help, typ: t, bounds: bounds}
		r.byName[name] = f
	}
	if f.typ != t || f.help != help || !slices.Equal(f.bounds, bounds) {
		panic(fmt.Sprintf("metrics: %s registered as a %s (%q, buckets %v) and as a %s (%q, buckets %v)",
			name, f.typ, f.help, f.bounds, t, help, bounds))
	}
	for _, s := range f.series {
		if s.key == key {
			return s
		}
	}
	s := &series{labels: slices.Clone(labels), key: key}
	mk(s)
	f.series = append(f.series, s)
	return s
}

// validName reports whether name is a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)
// or, without colons, a label name.
func validName(name string, colon bool) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case c == ':' && colon:
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// renderLabels returns labels as the text format writes them.
func renderLabels(labels []Label) (string, error) {
	if len(labels) == 0 {
		return "", nil
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range labels {
		if !validName(l.Name, false) || strings.HasPrefix(l.Name, "__") || l.Name == "le" {
			return "", fmt.Errorf("invalid label name %q", l.Name)
		}
		for _, m := range labels[:i] {
			if m.Name == l.Name {
				return "", fmt.Errorf("label %q given twice", l.Name)
			}
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name)
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(l.Value))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String(), nil
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// Sample is one value as the text format has it: a histogram gives one
// sample per bucket (name_bucket, with an "le" label), name_sum and
// name_count.
type Sample struct {
	Name   string
	Labels []Label
	Value  float64
}

// families returns the families sorted by name, and their series, as they
// are now.
func (r *Registry) families() []family {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]family, 0, len(r.byName))
	for _, f := range r.byName {
		c := *f
		c.series = slices.Clone(f.series)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b family) int { return strings.Compare(a.name, b.name) })
	return out
}

// All yields every sample, by family name, then in registration order: a
// way to hand the values to another system. Functions registered with
// CounterFunc and GaugeFunc are called.
func (r *Registry) All() iter.Seq[Sample] {
	return func(yield func(Sample) bool) {
		if r == nil {
			return
		}
		for _, f := range r.families() {
			for _, s := range f.series {
				if !eachSample(f.name, s, func(name, _ string, labels []Label, v float64) bool {
					return yield(Sample{Name: name, Labels: labels, Value: v})
				}) {
					return
				}
			}
		}
	}
}

// eachSample calls yield with each sample of s: its name, rendered labels,
// labels and value.
func eachSample(name string, s *series, yield func(name, key string, labels []Label, v float64) bool) bool {
	switch {
	case s.c != nil:
		return yield(name, s.key, s.labels, float64(s.c.Value()))
	case s.g != nil:
		return yield(name, s.key, s.labels, float64(s.g.Value()))
	case s.fn != nil:
		return yield(name, s.key, s.labels, s.fn())
	}
	bounds, cum, sum := s.h.Snapshot()
	for i, b := range bounds {
		le := Label{Name: "le", Value: formatFloat(b)}
		labels := append(slices.Clip(s.labels), le)
		key := "{" + `le="` + le.Value + `"}`
		if s.key != "" {
			key = s.key[:len(s.key)-1] + `,le="` + le.Value + `"}`
		}
		if !yield(name+"_bucket", key, labels, float64(cum[i])) {
			return false
		}
	}
	return yield(name+"_sum", s.key, s.labels, sum) &&
		yield(name+"_count", s.key, s.labels, float64(cum[len(cum)-1]))
}

// WriteText writes every family in the Prometheus text exposition format,
// version 0.0.4: for each, a # HELP and a # TYPE line, then a line per
// sample, `name{label="value",...} value`.
func (r *Registry) WriteText(w io.Writer) error {
	if r == nil {
		return nil
	}
	bw := bufio.NewWriter(w)
	var num []byte
	for _, f := range r.families() {
		bw.WriteString("# HELP ")
		bw.WriteString(f.name)
		bw.WriteByte(' ')
		bw.WriteString(helpEscaper.Replace(f.help))
		bw.WriteString("\n# TYPE ")
		bw.WriteString(f.name)
		bw.WriteByte(' ')
		bw.WriteString(f.typ.String())
		bw.WriteByte('\n')
		for _, s := range f.series {
			eachSample(f.name, s, func(name, key string, _ []Label, v float64) bool {
				bw.WriteString(name)
				bw.WriteString(key)
				bw.WriteByte(' ')
				num = appendFloat(num[:0], v)
				bw.Write(num)
				bw.WriteByte('\n')
				return true
			})
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("metrics: writing: %w", err)
	}
	return nil
}

// ContentType is the media type of what WriteText writes.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// ServeHTTP answers GET and HEAD with the registry in the text format;
// other methods are refused.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	if req.Method == http.MethodHead {
		return
	}
	r.WriteText(w) // a failed write is the scraper's connection going
}

func formatFloat(v float64) string { return string(appendFloat(nil, v)) }

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

var _ http.Handler = (*Registry)(nil)

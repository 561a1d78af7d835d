// Package metrics counts what a server does and writes the counts in the
// Prometheus text exposition format (version 0.0.4), which Prometheus,
// VictoriaMetrics, the OpenTelemetry collector and most monitoring agents
// scrape.
//
// It is small on purpose: counters, gauges and histograms with fixed
// buckets, each an atomic value the code that counts holds directly, so
// that counting costs one atomic add and builds no map, label or string.
// Labels are fixed when a metric is registered, never per event; Kiez
// never labels a metric with a user, an address or anything else a
// person could be told apart by.
//
// A nil *Registry registers nothing and hands out nil metrics, and the
// methods of a nil *Counter, *Gauge or *Histogram do nothing, so code
// that counts needs no checks and costs a comparison when metrics are
// off.
//
// There are no global registries: the program makes a Registry, passes it
// to what should count into it (server.Config.Metrics), and serves it
// (Registry is an http.Handler) or reads it (Registry.All).
package metrics

import (
	"math"
	"sync/atomic"
	"time"
)

// Label is a name and value fixed on one series of a metric.
type Label struct {
	Name, Value string
}

// Counter is a count that only goes up. A nil *Counter counts nothing.
type Counter struct{ v atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() {
	if c != nil {
		c.v.Add(1)
	}
}

// Add adds n.
func (c *Counter) Add(n uint64) {
	if c != nil {
		c.v.Add(n)
	}
}

// Value returns the count (0 for nil).
func (c *Counter) Value() uint64 {
	if c == nil {
		return 0
	}
	return c.v.Load()
}

// Gauge is a value that goes up and down. A nil *Gauge does nothing.
type Gauge struct{ v atomic.Int64 }

// Inc adds one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.Add(-1) }

// Add adds n, which may be negative.
func (g *Gauge) Add(n int64) {
	if g != nil {
		g.v.Add(n)
	}
}

// Set sets the value.
func (g *Gauge) Set(n int64) {
	if g != nil {
		g.v.Store(n)
	}
}

// Value returns the value (0 for nil).
func (g *Gauge) Value() int64 {
	if g == nil {
		return 0
	}
	return g.v.Load()
}

// Histogram counts observations in buckets fixed at registration. A nil
// *Histogram does nothing.
type Histogram struct {
	bounds []float64       // upper bounds, ascending, without +Inf
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Uint64   // float64 bits
}

func newHistogram(bounds []float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	if h == nil {
		return
	}
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// ObserveSince records the seconds elapsed since start, as latency
// histograms count them.
func (h *Histogram) ObserveSince(start time.Time) {
	if h != nil {
		h.Observe(time.Since(start).Seconds())
	}
}

// Snapshot returns the histogram's buckets' upper bounds (the last is
// +Inf), the cumulative count of observations at most each bound, and the
// sum of the observations. The last count is the number of observations.
func (h *Histogram) Snapshot() (bounds []float64, cumulative []uint64, sum float64) {
	if h == nil {
		return nil, nil, 0
	}
	bounds = append(append(bounds, h.bounds...), math.Inf(1))
	cumulative = make([]uint64, len(h.counts))
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
		cumulative[i] = n
	}
	return bounds, cumulative, math.Float64frombits(h.sum.Load())
}

// LatencyBuckets returns the upper bounds, in seconds, of histograms of
// storage and other short operations: 100 µs to 10 s.
func LatencyBuckets() []float64 {
	return []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}
}

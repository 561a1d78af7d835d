package main

import (
	"math"
	"sync"
	"time"
)

// histogram records latencies in logarithmic buckets 1 % wide, from 1 µs
// to about 17 minutes, in constant memory whatever the sample count.
type histogram struct {
	mu     sync.Mutex
	counts [2200]uint64
	n      uint64
	max    time.Duration
}

const histGrowth = 1.01

var logGrowth = math.Log(histGrowth)

func bucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us < 1 {
		return 0
	}
	return min(int(math.Log(us)/logGrowth)+1, 2199)
}

// add records one sample; it is safe for concurrent use.
func (h *histogram) add(d time.Duration) {
	b := bucket(d)
	h.mu.Lock()
	h.counts[b]++
	h.n++
	h.max = max(h.max, d)
	h.mu.Unlock()
}

// count returns the number of samples.
func (h *histogram) count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// quantile returns the q-quantile in milliseconds: the upper bound of its
// bucket, at most the largest sample.
func (h *histogram) quantile(q float64) float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	target := max(uint64(math.Ceil(q*float64(h.n))), 1)
	maxMS := float64(h.max) / float64(time.Millisecond)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= target {
			return round3(min(math.Pow(histGrowth, float64(i))/1000, maxMS))
		}
	}
	return round3(maxMS)
}

// Latency is the latency part of a result line, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func (h *histogram) latency() Latency {
	h.mu.Lock()
	maxMS := float64(h.max) / float64(time.Millisecond)
	h.mu.Unlock()
	return Latency{P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99), Max: round3(maxMS)}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
func round1(f float64) float64 { return math.Round(f*10) / 10 }

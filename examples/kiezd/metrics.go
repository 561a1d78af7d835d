package main

// The metrics endpoint: Prometheus' text format on a listener of its own,
// off by default. The counting is the library's (package server/metrics);
// kiezd adds what only the program knows (its version, the Go runtime)
// and serves GET /metrics.

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	rtmetrics "runtime/metrics"
	"time"

	"github.com/kiez-im/kiez/server/metrics"
)

// metricsConfig is the [metrics] table.
type metricsConfig struct {
	// Listen are the addresses of the metrics endpoint; none switches it
	// off (the default).
	Listen []string `toml:"listen"`
}

// metricsWarnings point out a metrics address other machines can reach:
// the endpoint has no authentication, and its numbers tell how busy the
// server is.
func (c *config) metricsWarnings() []string {
	var w []string
	for _, a := range c.Metrics.Listen {
		host, _, _ := net.SplitHostPort(a)
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			w = append(w, fmt.Sprintf("metrics.listen %q is reachable from other machines, without authentication; unless a firewall keeps others out, use a loopback address such as \"127.0.0.1:9542\"", a))
		}
	}
	return w
}

// newMetricsRegistry returns the registry the server and its modules
// count into, with kiezd's own metrics: kiez_build_info (the version, as
// `kiezd version` reports it, and the Go version), the start time, the
// goroutines and the memory the Go runtime holds. Nil if the endpoint is
// off: then nothing is counted.
func newMetricsRegistry(cfg *config) *metrics.Registry {
	if len(cfg.Metrics.Listen) == 0 {
		return nil
	}
	reg := metrics.NewRegistry()
	bi := readBuildInfo()
	reg.GaugeFunc("kiez_build_info", "Always 1; the labels tell the version of kiezd and of Go that built it.",
		func() float64 { return 1 }, metrics.Label{Name: "version", Value: bi.String()}, metrics.Label{Name: "go", Value: bi.Go})
	start := float64(time.Now().Unix())
	reg.GaugeFunc("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.",
		func() float64 { return start })
	reg.GaugeFunc("go_goroutines", "Goroutines that currently exist.", func() float64 { return float64(runtime.NumGoroutine()) })
	reg.GaugeFunc("go_memory_bytes", "Memory mapped by the Go runtime (runtime/metrics /memory/classes/total:bytes).", func() float64 {
		s := []rtmetrics.Sample{{Name: "/memory/classes/total:bytes"}}
		rtmetrics.Read(s)
		if s[0].Value.Kind() != rtmetrics.KindUint64 {
			return 0
		}
		return float64(s[0].Value.Uint64())
	})
	return reg
}

// newMetricsServer serves reg at GET (and HEAD) /metrics, and nothing
// else, with short timeouts: a scrape is one small response.
func newMetricsServer(reg *metrics.Registry, logger *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          httpErrorLog(logger),
	}
}

package mam

import (
	"context"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/metrics"
)

// archiveMetrics are the module's metrics; nil (counting nothing) until
// RegisterMetrics is given a registry.
type archiveMetrics struct {
	appended *metrics.Counter
	latency  *metrics.Histogram
}

// RegisterMetrics registers kiez_archive_appended_total, the messages
// archived (a message between two local users counts twice, once per
// archive), and the latency of each append as kiez_storage_seconds with
// op "archive_append". The stores cannot tell their size cheaply, so the
// archive's size is not a metric: the appends and the janitor's removals
// (kiez_janitor_removed_total{kind="mam"}) tell how it grows.
func (m *Module) RegisterMetrics(r *metrics.Registry) {
	m.metrics = archiveMetrics{
		appended: r.Counter("kiez_archive_appended_total", "Messages appended to archives (once per archive)."),
		latency:  server.StorageLatency(r, "archive_append"),
	}
}

// appendArchive appends to user's archive, counted and timed.
func (m *Module) appendArchive(ctx context.Context, user string, at time.Time, with string, data []byte) (uint64, error) {
	if m.metrics.latency == nil {
		return m.archive.AppendArchive(ctx, user, at, with, data)
	}
	t0 := time.Now()
	id, err := m.archive.AppendArchive(ctx, user, at, with, data)
	m.metrics.latency.ObserveSince(t0)
	if err == nil {
		m.metrics.appended.Inc()
	}
	return id, err
}

var _ server.MetricsRegistrar = (*Module)(nil)

package offline

import (
	"context"
	"errors"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/metrics"
	"github.com/kiez-im/kiez/storage"
)

// offlineMetrics are the module's metrics; nil (counting nothing) until
// RegisterMetrics is given a registry.
type offlineMetrics struct {
	stored, refused, delivered *metrics.Counter
	latency                    *metrics.Histogram
}

// RegisterMetrics registers kiez_offline_stored_total (messages stored for
// accounts without an available session), kiez_offline_refused_total
// (messages bounced because the account's queue was full),
// kiez_offline_delivered_total (stored messages sent to a session that
// came online), and the latency of each store as kiez_storage_seconds
// with op "offline_push". The stores cannot tell their total size
// cheaply, so it is not a metric: stored minus delivered minus the
// janitor's removals (kiez_janitor_removed_total{kind="offline"}) is how
// it grows.
func (m *Module) RegisterMetrics(r *metrics.Registry) {
	m.metrics = offlineMetrics{
		stored:    r.Counter("kiez_offline_stored_total", "Messages stored for accounts that were offline."),
		refused:   r.Counter("kiez_offline_refused_total", "Messages bounced because the account's offline queue was full."),
		delivered: r.Counter("kiez_offline_delivered_total", "Stored messages sent to a session that came online."),
		latency:   server.StorageLatency(r, "offline_push"),
	}
}

// push stores msg for user, counted and timed.
func (m *Module) push(ctx context.Context, user string, msg storage.OfflineMessage) error {
	if m.metrics.latency == nil {
		return m.store.PushOffline(ctx, user, msg, m.limit)
	}
	t0 := time.Now()
	err := m.store.PushOffline(ctx, user, msg, m.limit)
	m.metrics.latency.ObserveSince(t0)
	switch {
	case err == nil:
		m.metrics.stored.Inc()
	case errors.Is(err, storage.ErrFull):
		m.metrics.refused.Inc()
	}
	return err
}

var _ server.MetricsRegistrar = (*Module)(nil)

package ipfilter

import (
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/metrics"
)

// Reasons a connection is refused, the label of kiez_connections_refused_total.
const (
	refusedBanned = iota
	refusedUnauthenticated
	refusedRate
	nRefused
)

var refusedNames = [nRefused]string{"banned", "unauthenticated", "rate"}

// filterMetrics are the filter's metrics; nil (counting nothing) until
// RegisterMetrics is given a registry.
type filterMetrics struct {
	refused [nRefused]*metrics.Counter
	banned  *metrics.Counter
}

// RegisterMetrics registers kiez_bans, the bans in force (counted when
// read); kiez_bans_issued_total, the networks the filter banned for failed
// authentications; and kiez_connections_refused_total by reason:
// "banned", "unauthenticated" (Options.MaxUnauthenticated) and "rate"
// (Options.ConnRate). None names an address or network. The server calls
// it when the filter is its ConnFilter; call it before the filter is in
// use.
func (f *Filter) RegisterMetrics(r *metrics.Registry) {
	r.GaugeFunc("kiez_bans", "Networks banned now.", func() float64 { return float64(f.bansInForce()) })
	for i, name := range refusedNames {
		f.metrics.refused[i] = r.Counter("kiez_connections_refused_total", "Client connections refused by the IP filter before TLS, by reason.",
			metrics.Label{Name: "reason", Value: name})
	}
	f.metrics.banned = r.Counter("kiez_bans_issued_total", "Networks banned for failed authentications.")
}

// bansInForce counts the bans that have not expired.
func (f *Filter) bansInForce() int {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, b := range f.bans {
		if b.until.After(now) {
			n++
		}
	}
	return n
}

var _ server.MetricsRegistrar = (*Filter)(nil)

package server

import (
	"errors"
	"net"
	"strings"

	"github.com/kiez-im/kiez/server/metrics"
	"github.com/kiez-im/kiez/stanza"
)

// MetricsRegistrar is implemented by modules, connection filters and
// filters that count what they do. New calls RegisterMetrics once, before
// Init, with Config.Metrics; that is nil when metrics are off, and a nil
// *metrics.Registry hands out nil metrics, which count nothing, so the
// implementation keeps what it is given and counts without checking.
//
// Metrics never carry a user, an address or anything else a person could
// be told apart by: their labels are fixed words, such as a kind.
type MetricsRegistrar interface {
	RegisterMetrics(r *metrics.Registry)
}

// StorageLatency returns the histogram of the seconds the storage
// operation op takes, kiez_storage_seconds{op="..."}, for modules that
// time the store calls on their hot paths (the server times the account
// lookup of a login as op "account"). Op is a fixed word such as
// "archive_append".
func StorageLatency(r *metrics.Registry, op string) *metrics.Histogram {
	return r.Histogram("kiez_storage_seconds", "Seconds taken by storage operations on the hot paths, by operation.",
		metrics.LatencyBuckets(), metrics.Label{Name: "op", Value: op})
}

// Transport names, the label of sessions and connections by transport.
// A new transport (WebSocket, server-to-server) adds its name here and in
// conn.transportName.
var transportNames = [...]string{"tcp", "directtls", "websocket"}

// transportName returns the name of the connection's transport: "tcp"
// for a stream that starts in plain text (and upgrades with STARTTLS),
// "directtls" for XEP-0368 direct TLS, "websocket" for RFC 7395.
func (c *conn) transportName() string {
	if c.websocket {
		return "websocket"
	}
	if c.directTLS {
		return "directtls"
	}
	return "tcp"
}

// SASL mechanism families, the label of logins.
const (
	mechSCRAM = iota
	mechPLAIN
	mechOther // a mechanism not offered
	nMechFamilies
)

var mechFamilyNames = [nMechFamilies]string{"scram", "plain", "other"}

func mechFamily(mech string) int {
	switch {
	case mech == "PLAIN":
		return mechPLAIN
	case strings.HasPrefix(mech, "SCRAM-"):
		return mechSCRAM
	}
	return mechOther
}

// serverMetrics are the server's own metrics, all nil when metrics are
// off. They are built by New and never change afterwards.
type serverMetrics struct {
	in, out        [stanza.IQKind + 1]*metrics.Counter // by stanza.Kind
	loginOK        [nMechFamilies]*metrics.Counter
	loginFailed    [nMechFamilies]*metrics.Counter
	queueOverflows *metrics.Counter
	writeTimeouts  *metrics.Counter
	dropped        *metrics.Counter
	accountLookup  *metrics.Histogram
	removed        map[string]*metrics.Counter // janitor removals by kind
}

// buildMetrics registers the server's metrics on Config.Metrics, and has
// the modules, filters and connection filter that implement
// MetricsRegistrar register theirs. The janitor's expirers must be known.
func (s *Server) buildMetrics() {
	r := s.cfg.Metrics
	for _, m := range s.cfg.Modules {
		if mr, ok := m.(MetricsRegistrar); ok {
			mr.RegisterMetrics(r)
		}
	}
	for _, f := range s.cfg.Filters {
		if mr, ok := f.(MetricsRegistrar); ok {
			mr.RegisterMetrics(r)
		}
	}
	if mr, ok := s.cfg.ConnFilter.(MetricsRegistrar); ok {
		mr.RegisterMetrics(r)
	}
	if r == nil {
		return
	}
	m := &s.metrics
	for _, k := range []stanza.Kind{stanza.Message, stanza.Presence, stanza.IQKind} {
		kind := metrics.Label{Name: "kind", Value: k.String()}
		m.in[k] = r.Counter("kiez_stanzas_received_total", "Stanzas read from clients' bound sessions, by kind.", kind)
		m.out[k] = r.Counter("kiez_stanzas_sent_total", "Stanzas written to clients' sessions, by kind.", kind)
	}
	for i, name := range mechFamilyNames {
		mech := metrics.Label{Name: "mechanism", Value: name}
		m.loginOK[i] = r.Counter("kiez_logins_total", "SASL authentications, by result and mechanism family.",
			metrics.Label{Name: "result", Value: "ok"}, mech)
		m.loginFailed[i] = r.Counter("kiez_logins_total", "SASL authentications, by result and mechanism family.",
			metrics.Label{Name: "result", Value: "failed"}, mech)
	}
	m.queueOverflows = r.Counter("kiez_queue_overflows_total",
		"Sessions closed because their client did not keep up with its queue (Limits.QueueSize).")
	m.writeTimeouts = r.Counter("kiez_write_timeouts_total",
		"Sessions closed because a write to their client timed out (Limits.WriteTimeout): a client that stopped reading.")
	m.dropped = r.Counter("kiez_queue_dropped_total",
		"Stanzas dropped from sessions' queues when their connection failed without stream management (with it, they are redelivered).")
	m.accountLookup = StorageLatency(r, "account")
	m.removed = make(map[string]*metrics.Counter)
	for _, x := range s.expirers {
		m.removed[x.kind] = r.Counter("kiez_janitor_removed_total", "Expired items the janitor removed, by kind.",
			metrics.Label{Name: "kind", Value: x.kind})
	}
	for _, t := range transportNames {
		tl := metrics.Label{Name: "transport", Value: t}
		r.GaugeFunc("kiez_sessions", "Bound client sessions (including those waiting to be resumed), by the transport of their latest connection.",
			func() float64 { return float64(s.countSessions(t)) }, tl)
		r.GaugeFunc("kiez_connections", "Open client connections, negotiating or bound, by transport.",
			func() float64 { return float64(s.countConns(t)) }, tl)
	}
}

// countSessions returns the number of bound sessions whose latest
// connection is of transport t.
func (s *Server) countSessions(t string) int {
	n := 0
	for _, sess := range s.sessions.all() {
		sess.qmu.Lock()
		c := sess.last
		sess.qmu.Unlock()
		if c != nil && c.transportName() == t {
			n++
		}
	}
	return n
}

// countConns returns the number of open connections of transport t.
func (s *Server) countConns(t string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.transportName() == t {
			n++
		}
	}
	return n
}

// sent counts the stanzas of a batch written to a client, by kind.
func (m *serverMetrics) sent(n *[stanza.IQKind + 1]uint64) {
	for k, c := range n {
		if c > 0 {
			m.out[k].Add(c)
		}
	}
}

// writeFailed counts a failed write to a session's connection; lost is
// whether the queued stanzas, queued of them, are dropped.
func (m *serverMetrics) writeFailed(err error, lost bool, queued int) {
	if m.writeTimeouts == nil {
		return
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		m.writeTimeouts.Inc()
	}
	if lost {
		m.dropped.Add(uint64(queued))
	}
}

// login counts a SASL authentication with mechanism mech.
func (m *serverMetrics) login(mech string, ok bool) {
	if ok {
		m.loginOK[mechFamily(mech)].Inc()
	} else {
		m.loginFailed[mechFamily(mech)].Inc()
	}
}

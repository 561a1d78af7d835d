package server

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server/metrics"
	"github.com/kiez-im/kiez/storage"
)

// Config configures a Server. Only Domains, TLS and Accounts are required;
// zero limits take the defaults below.
type Config struct {
	// Domains are the virtual hosts served, such as "example.org".
	Domains []string
	// TLS holds the certificates, chosen by SNI (Certificates or
	// GetCertificate). The server sets NextProtos and MinVersion itself.
	TLS *tls.Config
	// Accounts stores user accounts and their SCRAM keys. If it also
	// implements storage.Secrets, the key of the decoy credentials shown
	// for unknown names is kept there, so that they stay the same across
	// restarts as real accounts' do (otherwise a restart changes them); if
	// it implements storage.UserDataDeleter, DeleteUser has it delete
	// every per-user record it holds; if it implements
	// storage.ServiceData, the janitor removes its expired entries (bans,
	// counters), reported as KindServiceData.
	Accounts storage.Accounts
	// RemovalGrace, if positive, is how long an account its owner
	// removed (RemoveUser, XEP-0077 <remove/>) stays locked, invisible and
	// restorable by the administrator before it is purged with all its
	// data, counted in whole days from the day of the removal. Zero
	// deletes at once (the default).
	RemovalGrace time.Duration
	// Modules are the features, in order: it is the order of
	// initialisation and undelivered handlers, and of filters and stanza
	// routes of equal priority.
	Modules []Module
	// Filters run on both sides of every stanza's path (see package
	// filter), in this order, before the filters modules provide.
	Filters []filter.Filter
	// Logger receives the server's logs, through PrivacyHandler (no user
	// or network addresses); nil means slog.Default() as it is when New
	// runs. To discard them, pass a logger with a handler that writes to
	// io.Discard.
	Logger *slog.Logger
	// Components are the external components (XEP-0114) that may attach
	// to the listeners served with ServeComponents, each with its domain
	// and secret. A domain that is a virtual host, or a module's service,
	// makes New fail.
	Components []Component
	// Remote routes stanzas to other servers; nil answers them with
	// remote-server-not-found, unless S2S is set.
	Remote RemoteRouter
	// S2S, if not nil, turns federation on: stanzas to other domains go
	// over server-to-server streams (Remote must be nil), and ServeS2S
	// accepts other servers' streams.
	S2S *S2SConfig
	// Limits bound what one client may cost.
	Limits Limits
	// Retention configures the janitor that removes expired data: that
	// of every module implementing Expirer, and the service data of
	// Accounts.
	Retention Retention
	// ConnFilter, if set, admits or refuses each client connection by its
	// IP address before the TLS handshake, and learns of its
	// authentication (see ConnFilter; package filter/ipfilter has one).
	// Nil admits every connection.
	ConnFilter ConnFilter
	// FASTKey is the key XEP-0484 FAST tokens are derived with: the
	// store keeps a random id per token, and the token is an HMAC of it
	// under this key, so that the store alone (a stolen database or
	// backup) yields no usable token. It must have at least 32 bytes, be
	// kept apart from the store (kiezd keeps it in fast.key in its data
	// directory) and stay the same across restarts: another key
	// invalidates every token, and clients log in with their passwords
	// again. Empty, the key is a secret in the store (storage.Secrets),
	// so that a leaked store yields the tokens, or, without
	// storage.Secrets, a random key per process. FAST is offered only if
	// Accounts implements storage.ServiceData.
	FASTKey []byte
	// SCRAMIterations is the PBKDF2 iteration count for new passwords
	// (default scram.DefaultIterations).
	SCRAMIterations int
	// SCRAMHashes are the hashes whose SCRAM mechanisms clients are
	// offered (each with its -PLUS variant where channel binding is
	// possible), in any order; nil offers SHA-1, SHA-256 and SHA-512.
	// New passwords get keys for all three whatever it says, so a hash
	// offered later works for them at once. Clients pick the strongest
	// mechanism offered and do not try another when it fails: after
	// importing accounts that have keys for SHA-1 only (Prosody keeps no
	// others), offering []storage.Hash{storage.SHA1} lets them log in.
	SCRAMHashes []storage.Hash
	// Metrics, if not nil, receives the server's metrics (sessions and
	// connections by transport, logins, stanzas by kind, queue overflows,
	// the account lookup's latency, the janitor's removals) and those of
	// the modules, filters and ConnFilter implementing MetricsRegistrar;
	// the program serves or reads it (see package metrics). Nil counts
	// nothing.
	Metrics *metrics.Registry
	// HTTPBaseURL returns the absolute URL at which clients of the virtual
	// host domain reach HTTPHandler, such as "https://example.org:5281/"
	// or, behind a reverse proxy, "https://upload.example.org/"; a path in
	// it is a prefix the proxy strips. Modules build the URLs they hand
	// to clients on it with Host.HTTPURL. Nil, or "" for a domain, means
	// the modules' HTTP routes are not reachable there.
	HTTPBaseURL func(domain string) string
}

// Limits bound resource use per connection.
type Limits struct {
	// MaxStanzaSize caps each top-level element after authentication, in
	// bytes, counted while reading (default 256 KiB).
	MaxStanzaSize int
	// MaxPreAuthSize caps each element before authentication (default 10 KiB).
	MaxPreAuthSize int
	// MaxDepth caps element nesting inside a stanza (default 32).
	MaxDepth int
	// PreAuthTimeout bounds connect-to-bind time (default 60 s).
	PreAuthTimeout time.Duration
	// PingAfter is how long a session may stay silent before the server
	// pings it (default 4 min); PingTimeout is how long the server waits
	// for the answer before closing it (default 1 min).
	PingAfter   time.Duration
	PingTimeout time.Duration
	// WriteTimeout bounds one write to a client (default 30 s).
	WriteTimeout time.Duration
	// QueueSize is the number of stanzas that may wait for a slow client
	// before it is disconnected (default 4096: a user with a large roster
	// coming online receives a presence from every contact at once). The
	// queue takes memory only for what waits in it. With stream management
	// (XEP-0198) the stanzas written but not yet acknowledged count too.
	QueueSize int
	// AuthAttempts is how many failed SASL attempts one stream may make
	// before it is closed (default 10). It is a per-connection cap, high
	// enough for a client that tries each offered mechanism in turn (up
	// to 7: the SCRAM family with and without channel binding, then
	// PLAIN) to receive the last <failure/>; password guessing across
	// connections is ConnFilter's to stop.
	AuthAttempts int
	// ResumeTimeout is how long a session with XEP-0198 resumption
	// enabled outlives a lost connection, waiting for its client to resume
	// it (default 5 min); it is the 'max' the server advertises.
	ResumeTimeout time.Duration
	// ReadRate is how many bytes a second the server reads from a
	// connection before it authenticates, counted on the wire (TLS
	// included); ReadRateAuthenticated is the rate afterwards. A client
	// sending faster is read more slowly: its flood waits in its own
	// socket buffers, and costs the server and other users nothing. Each
	// connection may send a burst at once: a second's worth, and at least
	// one maximal element (MaxPreAuthSize, MaxStanzaSize) with its TLS
	// overhead.
	//
	// The defaults are 10 KiB/s before authentication (a TLS handshake,
	// and SASL take 2–3 KiB) and 256 KiB/s after: a client sends
	// small stanzas, the occasional avatar or vCard (which the burst
	// takes whole), and nothing in bulk (file uploads go over HTTP, and
	// history and catch-up flow from the server, which this does not
	// limit). A negative rate turns the limit off; zero takes the default.
	ReadRate              int
	ReadRateAuthenticated int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxStanzaSize, 256<<10)
	def(&l.MaxPreAuthSize, 10<<10)
	def(&l.MaxDepth, 32)
	defDur(&l.PreAuthTimeout, 60*time.Second)
	defDur(&l.PingAfter, 4*time.Minute)
	defDur(&l.PingTimeout, time.Minute)
	defDur(&l.WriteTimeout, 30*time.Second)
	def(&l.QueueSize, 4096)
	def(&l.AuthAttempts, 10)
	defDur(&l.ResumeTimeout, 5*time.Minute)
	if l.ReadRate == 0 {
		l.ReadRate = 10 << 10
	}
	if l.ReadRateAuthenticated == 0 {
		l.ReadRateAuthenticated = 256 << 10
	}
	return l
}

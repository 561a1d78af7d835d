// Package ipfilter is a connection-level filter on client addresses, in
// the manner of fail2ban's jails: it refuses connections from banned
// networks, limits how fast one address may connect and how many
// unauthenticated connections it may hold, bans an address whose
// authentications keep failing, and limits how many accounts one address
// may register.
//
// A Filter goes in server.Config.ConnFilter. The server asks Admit at
// accept, before the TLS handshake, and tells the filter when an admitted
// connection authenticates (Authenticated), ends unauthenticated (Closed)
// or fails an authentication (AuthFailed). A registration module asks
// AllowRegistration; admin commands use Ban, Unban and Bans.
//
// Addresses are counted per network: an IPv4 address alone (/32), an IPv6
// address by its /64, which one subscriber usually holds whole. Addresses
// in Options.Allow are never limited or banned.
//
// Bans, with their reason and expiry, are kept in a storage.ServiceData
// namespace "ipfilter" (keyed by the banned prefix), loaded by New and
// removed by the store's expiry: that is the only place the filter ever
// stores an address. Counters live in memory only, for at most
// Options.MaxTracked networks (least recently seen forgotten first), so a
// flood from many addresses cannot grow memory without bound. The filter
// never logs an address.
package ipfilter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// Namespace is the storage.ServiceData namespace bans are kept in.
const Namespace = "ipfilter"

// Defaults of Options.
const (
	DefaultConnRate           = 20
	DefaultConnWindow         = 10 * time.Second
	DefaultMaxUnauthenticated = 16
	DefaultAuthFailures       = 10
	DefaultAuthWindow         = 10 * time.Minute
	DefaultBanFor             = time.Hour
	DefaultRegistrationRate   = 3
	DefaultRegistrationWindow = time.Hour
	DefaultMaxTracked         = 100_000
)

// maxAuthFailures bounds Options.AuthFailures: each network that failed
// keeps that many times.
const maxAuthFailures = 1000

// Options configure a Filter. Zero values take the defaults above.
type Options struct {
	// Allow lists networks never limited nor banned, like fail2ban's
	// ignoreip (default none).
	Allow []netip.Prefix
	// ConnRate new connections per ConnWindow are allowed to one network,
	// as a token bucket holding ConnRate (default 20 per 10 s).
	ConnRate   int
	ConnWindow time.Duration
	// MaxUnauthenticated caps the connections one network may hold open
	// before they authenticate (default 16).
	MaxUnauthenticated int
	// AuthFailures failed authentications within AuthWindow ban the
	// network for BanFor (default 10 in 10 min, banned for 1 h).
	// AuthFailures may be at most 1000.
	AuthFailures int
	AuthWindow   time.Duration
	BanFor       time.Duration
	// RegistrationRate accounts per RegistrationWindow may be registered
	// from one network (default 3 per hour), as a token bucket.
	RegistrationRate   int
	RegistrationWindow time.Duration
	// MaxTracked bounds the networks whose counters are kept (default
	// 100,000, about 25 to 35 MiB); past it the least recently
	// seen are forgotten. Networks with unauthenticated connections open
	// are kept beyond it, as many as the server has connections.
	MaxTracked int
	// Logger receives the filter's logs (counts and reasons, never an
	// address); nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
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
	def(&o.ConnRate, DefaultConnRate)
	defDur(&o.ConnWindow, DefaultConnWindow)
	def(&o.MaxUnauthenticated, DefaultMaxUnauthenticated)
	def(&o.AuthFailures, DefaultAuthFailures)
	defDur(&o.AuthWindow, DefaultAuthWindow)
	defDur(&o.BanFor, DefaultBanFor)
	def(&o.RegistrationRate, DefaultRegistrationRate)
	defDur(&o.RegistrationWindow, DefaultRegistrationWindow)
	def(&o.MaxTracked, DefaultMaxTracked)
	return o
}

// Ban is a banned network.
type Ban struct {
	Prefix netip.Prefix
	Until  time.Time
	Reason string
}

// Filter is a connection filter. Its methods are safe for concurrent use.
type Filter struct {
	opts  Options
	allow []netip.Prefix
	store storage.ServiceData
	log   *slog.Logger
	now   func() time.Time // set by tests

	mu   sync.Mutex
	bans map[netip.Prefix]ban
	// banLens counts the bans of each prefix length, so that Admit looks
	// an address up once per length in use, whatever the number of bans.
	banLens   [129]int
	nextSweep time.Time

	metrics filterMetrics // see metrics.go

	nets map[netip.Prefix]*counters
	lru  counters // sentinel of the list of idle networks, most recent first
	idle int      // networks on the list
}

type ban struct {
	until  time.Time
	reason string
}

// counters are what the filter knows of one network.
type counters struct {
	key        netip.Prefix
	prev, next *counters // on the idle list while open == 0

	open int32 // unauthenticated connections

	// Token buckets, and when they were last filled (Unix nanoseconds:
	// counters are many, and a time.Time takes three times the room).
	connTokens float64
	regTokens  float64
	connAt     int64
	regAt      int64

	// failures holds the times of the latest failed authentications (Unix
	// nanoseconds), a ring of Options.AuthFailures with head its next
	// slot and nfail the slots used.
	failures    []int64
	head, nfail int32
}

// New returns a filter with opts, and the bans kept in store, which may
// be nil to keep bans in memory only.
func New(opts Options, store storage.ServiceData) (*Filter, error) {
	return newFilter(opts, store, time.Now)
}

func newFilter(opts Options, store storage.ServiceData, now func() time.Time) (*Filter, error) {
	opts = opts.withDefaults()
	f := &Filter{
		opts:  opts,
		store: store,
		log:   opts.Logger,
		now:   now,
		bans:  make(map[netip.Prefix]ban),
		nets:  make(map[netip.Prefix]*counters),
	}
	if f.log == nil {
		f.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f.lru.next, f.lru.prev = &f.lru, &f.lru
	if opts.AuthFailures > maxAuthFailures {
		return nil, fmt.Errorf("ipfilter: AuthFailures %d is more than %d", opts.AuthFailures, maxAuthFailures)
	}
	for _, p := range opts.Allow {
		if !p.IsValid() {
			return nil, errors.New("ipfilter: invalid allowed prefix")
		}
		f.allow = append(f.allow, unmapPrefix(p).Masked())
	}
	if store != nil {
		if err := f.load(context.Background()); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// load reads the bans kept in the store.
func (f *Filter) load(ctx context.Context) error {
	q := storage.ServiceKeysQuery{Max: 1000}
	now := f.now()
	for {
		keys, err := f.store.ServiceKeys(ctx, Namespace, q)
		if err != nil {
			return fmt.Errorf("ipfilter: loading bans: %w", err)
		}
		for _, k := range keys {
			p, err := netip.ParsePrefix(k)
			if err != nil {
				f.log.Warn("ignoring a stored ban with an invalid key")
				continue
			}
			v, until, err := f.store.ServiceValue(ctx, Namespace, k)
			if errors.Is(err, storage.ErrNotFound) {
				continue // expired meanwhile
			}
			if err != nil {
				return fmt.Errorf("ipfilter: loading bans: %w", err)
			}
			if !until.IsZero() && !until.After(now) {
				continue
			}
			f.addBan(p.Masked(), ban{until: until, reason: string(v)})
		}
		if len(keys) < q.Max {
			break
		}
		q.After = keys[len(keys)-1]
	}
	if len(f.bans) > 0 {
		f.log.Info("bans loaded", "count", len(f.bans))
	}
	return nil
}

// Key returns the network addr is counted in: addr itself for IPv4
// (IPv4-mapped IPv6 addresses are taken as IPv4), its /64 for IPv6.
func Key(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}

func unmapPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			bits = 0
		}
		return netip.PrefixFrom(a.Unmap(), bits)
	}
	return p
}

func (f *Filter) allowed(addr netip.Addr) bool {
	for _, p := range f.allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Admit reports whether a new connection from addr may proceed, and if
// not why. An admitted connection counts as unauthenticated until the
// caller reports Authenticated or Closed for it, exactly once. An invalid
// address is refused.
func (f *Filter) Admit(addr netip.Addr) (allowed bool, reason string) {
	if !addr.IsValid() {
		return false, "no address"
	}
	addr = addr.Unmap().WithZone("")
	if f.allowed(addr) {
		return true, ""
	}
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.After(f.nextSweep) {
		f.sweep(now)
	}
	if b, ok := f.banned(addr, now); ok {
		f.metrics.refused[refusedBanned].Inc()
		return false, "banned: " + b.reason
	}
	c := f.counters(Key(addr), now)
	if int(c.open) >= f.opts.MaxUnauthenticated {
		f.metrics.refused[refusedUnauthenticated].Inc()
		return false, "too many unauthenticated connections"
	}
	if !take(&c.connTokens, &c.connAt, now, f.opts.ConnRate, f.opts.ConnWindow) {
		f.metrics.refused[refusedRate].Inc()
		return false, "connecting too often"
	}
	if c.open == 0 {
		f.unlink(c) // networks with connections open are not forgotten
	}
	c.open++
	return true, ""
}

// Authenticated reports that a connection Admit let in from addr has
// authenticated: it no longer counts as unauthenticated.
func (f *Filter) Authenticated(addr netip.Addr) { f.release(addr) }

// Closed reports that a connection Admit let in from addr ended before it
// authenticated.
func (f *Filter) Closed(addr netip.Addr) { f.release(addr) }

func (f *Filter) release(addr netip.Addr) {
	if !addr.IsValid() {
		return
	}
	addr = addr.Unmap().WithZone("")
	if f.allowed(addr) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.nets[Key(addr)]
	if c == nil || c.open == 0 {
		return
	}
	c.open--
	if c.open == 0 {
		f.pushFront(c)
		f.evict()
	}
}

// AuthFailed counts a failed authentication from addr, and bans its
// network when Options.AuthFailures fail within Options.AuthWindow. It
// reports whether the network is banned now; the ban is in force at once
// even if storing it fails (which is logged).
func (f *Filter) AuthFailed(ctx context.Context, addr netip.Addr) (banned bool) {
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	if f.allowed(addr) {
		return false
	}
	now := f.now()
	key := Key(addr)
	f.mu.Lock()
	if _, ok := f.banned(addr, now); ok {
		f.mu.Unlock()
		return true
	}
	c := f.counters(key, now)
	n := f.opts.AuthFailures
	if c.failures == nil {
		c.failures = make([]int64, n)
	}
	t := now.UnixNano()
	c.failures[c.head] = t
	c.head = (c.head + 1) % int32(n)
	if c.nfail < int32(n) {
		c.nfail++
	}
	// Once the ring is full, the oldest of the last n failures is the
	// one the next overwrites.
	if c.nfail < int32(n) || time.Duration(t-c.failures[c.head]) >= f.opts.AuthWindow {
		f.mu.Unlock()
		return false
	}
	c.failures, c.nfail, c.head = nil, 0, 0
	reason := fmt.Sprintf("%d failed authentications", n)
	until := now.Add(f.opts.BanFor)
	f.addBan(key, ban{until: until, reason: reason})
	f.mu.Unlock()
	f.metrics.banned.Inc()
	f.log.Info("network banned", "reason", reason, "for", f.opts.BanFor)
	if err := f.put(ctx, key, until, reason); err != nil {
		f.log.Warn("storing a ban failed", "err", err)
	}
	return true
}

// AllowRegistration reports whether an account may be registered from
// addr now, and if so counts it.
func (f *Filter) AllowRegistration(addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	if f.allowed(addr) {
		return true
	}
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.banned(addr, now); ok {
		return false
	}
	c := f.counters(Key(addr), now)
	return take(&c.regTokens, &c.regAt, now, f.opts.RegistrationRate, f.opts.RegistrationWindow)
}

// Ban bans the network prefix (an address is a prefix of its full
// length) for dur, replacing any ban of the same prefix, and keeps it in
// the store. Allowed addresses stay allowed.
func (f *Filter) Ban(ctx context.Context, prefix netip.Prefix, dur time.Duration, reason string) error {
	if !prefix.IsValid() {
		return errors.New("ipfilter: invalid prefix")
	}
	if dur <= 0 {
		return errors.New("ipfilter: a ban needs a positive duration")
	}
	prefix = unmapPrefix(prefix).Masked()
	until := f.now().Add(dur)
	if err := f.put(ctx, prefix, until, reason); err != nil {
		return err
	}
	f.mu.Lock()
	f.addBan(prefix, ban{until: until, reason: reason})
	f.mu.Unlock()
	f.log.Info("network banned", "reason", reason, "for", dur)
	return nil
}

// Unban lifts the ban of exactly prefix (not of networks inside or around
// it). Lifting a ban that does not exist is not an error.
func (f *Filter) Unban(ctx context.Context, prefix netip.Prefix) error {
	if !prefix.IsValid() {
		return errors.New("ipfilter: invalid prefix")
	}
	prefix = unmapPrefix(prefix).Masked()
	if f.store != nil {
		if err := f.store.DeleteServiceValue(ctx, Namespace, prefix.String()); err != nil {
			return fmt.Errorf("ipfilter: unban: %w", err)
		}
	}
	f.mu.Lock()
	f.removeBan(prefix)
	// Its failures start over.
	if c := f.nets[prefix]; c != nil {
		c.failures, c.nfail, c.head = nil, 0, 0
	}
	f.mu.Unlock()
	return nil
}

// Bans returns the bans in force, sorted by prefix (IPv4 first, then by
// address and length).
func (f *Filter) Bans() []Ban {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Ban, 0, len(f.bans))
	for p, b := range f.bans {
		if b.until.After(now) {
			out = append(out, Ban{Prefix: p, Until: b.until, Reason: b.reason})
		}
	}
	slices.SortFunc(out, func(a, b Ban) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits())
	})
	return out
}

func (f *Filter) put(ctx context.Context, p netip.Prefix, until time.Time, reason string) error {
	if f.store == nil {
		return nil
	}
	if err := f.store.PutServiceValue(ctx, Namespace, p.String(), []byte(reason), until); err != nil {
		return fmt.Errorf("ipfilter: storing a ban: %w", err)
	}
	return nil
}

// banned returns the ban addr falls under. f.mu is held.
func (f *Filter) banned(addr netip.Addr, now time.Time) (ban, bool) {
	if len(f.bans) == 0 {
		return ban{}, false
	}
	max := 32
	if addr.Is6() {
		max = 128
	}
	for bits := 0; bits <= max; bits++ {
		if f.banLens[bits] == 0 {
			continue
		}
		p, _ := addr.Prefix(bits)
		b, ok := f.bans[p]
		if !ok {
			continue
		}
		if b.until.After(now) {
			return b, true
		}
		f.removeBan(p)
	}
	return ban{}, false
}

func (f *Filter) addBan(p netip.Prefix, b ban) {
	if _, ok := f.bans[p]; !ok {
		f.banLens[p.Bits()]++
	}
	f.bans[p] = b
}

func (f *Filter) removeBan(p netip.Prefix) {
	if _, ok := f.bans[p]; ok {
		delete(f.bans, p)
		f.banLens[p.Bits()]--
	}
}

// sweep forgets expired bans, at most once a minute. f.mu is held.
func (f *Filter) sweep(now time.Time) {
	f.nextSweep = now.Add(time.Minute)
	for p, b := range f.bans {
		if !b.until.After(now) {
			f.removeBan(p)
		}
	}
}

// counters returns the counters of the network key, making them, and
// marks them recently seen. f.mu is held.
func (f *Filter) counters(key netip.Prefix, now time.Time) *counters {
	c := f.nets[key]
	if c == nil {
		c = &counters{key: key, connTokens: float64(f.opts.ConnRate), regTokens: float64(f.opts.RegistrationRate)}
		c.connAt, c.regAt = now.UnixNano(), now.UnixNano()
		f.nets[key] = c
		f.pushFront(c)
		f.evict()
		return c
	}
	if c.open == 0 {
		f.unlink(c)
		f.pushFront(c)
	}
	return c
}

func (f *Filter) pushFront(c *counters) {
	c.prev, c.next = &f.lru, f.lru.next
	c.next.prev, f.lru.next = c, c
	f.idle++
}

func (f *Filter) unlink(c *counters) {
	if c.prev == nil {
		return
	}
	c.prev.next, c.next.prev = c.next, c.prev
	c.prev, c.next = nil, nil
	f.idle--
}

// evict forgets the least recently seen idle networks beyond MaxTracked.
func (f *Filter) evict() {
	for len(f.nets) > f.opts.MaxTracked && f.idle > 1 {
		c := f.lru.prev
		f.unlink(c)
		delete(f.nets, c.key)
	}
}

// take takes a token from a bucket holding up to rate, refilled with rate
// tokens per window.
func take(tokens *float64, at *int64, now time.Time, rate int, window time.Duration) bool {
	t := now.UnixNano()
	if d := t - *at; d > 0 {
		*tokens = min(float64(rate), *tokens+float64(rate)*float64(d)/float64(window))
	}
	*at = t
	if *tokens < 1 {
		return false
	}
	*tokens--
	return true
}

package ipfilter_test

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/filter/ipfilter"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/memory"
)

var (
	v4a   = netip.MustParseAddr("192.0.2.1")
	v4b   = netip.MustParseAddr("192.0.2.2")
	v6a   = netip.MustParseAddr("2001:db8::1")
	v6a2  = netip.MustParseAddr("2001:db8::ffff:2") // same /64 as v6a
	v6b   = netip.MustParseAddr("2001:db8:0:1::1")  // the next /64
	start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

func newFilter(t testing.TB, opts ipfilter.Options, store storage.ServiceData) (*ipfilter.Filter, *ipfilter.Clock) {
	t.Helper()
	clk := &ipfilter.Clock{T: start}
	f, err := ipfilter.NewAt(opts, store, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return f, clk
}

// admit admits a connection from addr and closes it again.
func admit(f *ipfilter.Filter, addr netip.Addr) (bool, string) {
	ok, reason := f.Admit(addr)
	if ok {
		f.Closed(addr)
	}
	return ok, reason
}

func fail(t *testing.T, f *ipfilter.Filter, addr netip.Addr, n int) (banned bool) {
	t.Helper()
	for range n {
		banned = f.AuthFailed(t.Context(), addr)
	}
	return banned
}

func TestKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.1", "192.0.2.1/32"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"2001:db8::1", "2001:db8::/64"},
		{"2001:db8::ffff:2", "2001:db8::/64"},
		{"2001:db8:0:1::1", "2001:db8:0:1::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	} {
		if got := ipfilter.Key(netip.MustParseAddr(tc.addr)); got.String() != tc.want {
			t.Errorf("Key(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

func TestConnRate(t *testing.T) {
	f, clk := newFilter(t, ipfilter.Options{ConnRate: 3, ConnWindow: 9 * time.Second}, nil)
	for i := range 3 {
		if ok, r := admit(f, v4a); !ok {
			t.Fatalf("connection %d refused: %s", i, r)
		}
	}
	if ok, r := admit(f, v4a); ok || !strings.Contains(r, "often") {
		t.Fatalf("fourth connection: %v %q", ok, r)
	}
	if ok, _ := admit(f, v4b); !ok {
		t.Fatal("another address refused")
	}
	clk.Add(3 * time.Second) // one token back
	if ok, _ := admit(f, v4a); !ok {
		t.Fatal("refused after the bucket refilled")
	}
	if ok, _ := admit(f, v4a); ok {
		t.Fatal("the bucket refilled too fast")
	}
}

func TestMaxUnauthenticated(t *testing.T) {
	f, _ := newFilter(t, ipfilter.Options{MaxUnauthenticated: 2, ConnRate: 1000}, nil)
	for range 2 {
		if ok, _ := f.Admit(v6a); !ok {
			t.Fatal("refused")
		}
	}
	// v6a2 is in the same /64.
	if ok, r := f.Admit(v6a2); ok || !strings.Contains(r, "unauthenticated") {
		t.Fatalf("third unauthenticated connection: %v %q", ok, r)
	}
	if ok, _ := f.Admit(v6b); !ok {
		t.Fatal("the next /64 refused")
	}
	f.Authenticated(v6a)
	if ok, _ := f.Admit(v6a2); !ok {
		t.Fatal("refused after one authenticated")
	}
	f.Closed(v6a)
	f.Closed(v6a2)
	f.Closed(v6a2) // one too many: ignored
	for range 2 {
		if ok, _ := f.Admit(v6a); !ok {
			t.Fatal("refused after all closed")
		}
	}
}

func TestAuthFailuresBan(t *testing.T) {
	f, clk := newFilter(t, ipfilter.Options{}, nil) // 10 in 10 min, 1 h
	if fail(t, f, v6a, 9) {
		t.Fatal("banned after 9 failures")
	}
	clk.Add(10 * time.Minute)
	if fail(t, f, v6a, 1) {
		t.Fatal("banned for failures spread over more than the window")
	}
	if fail(t, f, v6a2, 8) {
		t.Fatal("banned after 9 failures within the window")
	}
	if !fail(t, f, v6a2, 1) {
		t.Fatal("not banned after 10 failures within the window")
	}
	for _, a := range []netip.Addr{v6a, v6a2} {
		if ok, r := admit(f, a); ok || !strings.Contains(r, "banned") {
			t.Fatalf("%s: %v %q", a, ok, r)
		}
		if f.AllowRegistration(a) {
			t.Fatalf("%s may register while banned", a)
		}
	}
	if ok, _ := admit(f, v6b); !ok {
		t.Fatal("the next /64 refused")
	}
	bans := f.Bans()
	if len(bans) != 1 || bans[0].Prefix.String() != "2001:db8::/64" || !bans[0].Until.Equal(start.Add(time.Hour+10*time.Minute)) {
		t.Fatalf("Bans = %+v", bans)
	}
	// An expired ban lets the network in.
	clk.Add(time.Hour)
	if ok, r := admit(f, v6a); !ok {
		t.Fatalf("refused after the ban expired: %s", r)
	}
	if bans := f.Bans(); len(bans) != 0 {
		t.Fatalf("Bans after expiry = %+v", bans)
	}
}

func TestAllow(t *testing.T) {
	f, _ := newFilter(t, ipfilter.Options{
		Allow:              []netip.Prefix{netip.MustParsePrefix("192.0.2.0/31"), netip.MustParsePrefix("::ffff:198.51.100.0/120")},
		ConnRate:           1,
		MaxUnauthenticated: 1,
		RegistrationRate:   1,
	}, nil)
	if err := f.Ban(t.Context(), netip.MustParsePrefix("192.0.2.0/24"), time.Hour, "admin"); err != nil {
		t.Fatal(err)
	}
	if fail(t, f, v4a, 20) {
		t.Fatal("an allowed address was banned")
	}
	for _, a := range []netip.Addr{v4a, netip.MustParseAddr("198.51.100.7")} {
		for range 5 {
			if ok, r := f.Admit(a); !ok { // never closed: no limit either
				t.Fatalf("%s refused: %s", a, r)
			}
			if !f.AllowRegistration(a) {
				t.Fatalf("%s may not register", a)
			}
		}
	}
	if ok, _ := admit(f, v4b); ok {
		t.Fatal("a banned address outside the allowed /31 admitted")
	}
}

func TestBanPrefixes(t *testing.T) {
	f, _ := newFilter(t, ipfilter.Options{}, nil)
	ctx := t.Context()
	for _, p := range []string{"198.51.100.0/24", "2001:db8:1::/48", "203.0.113.5/32", "::ffff:192.0.2.128/121"} {
		if err := f.Ban(ctx, netip.MustParsePrefix(p), time.Hour, "spam"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		addr   string
		banned bool
	}{
		{"198.51.100.200", true},
		{"198.51.101.1", false},
		{"2001:db8:1:ffff::1", true},
		{"2001:db8:2::1", false},
		{"203.0.113.5", true},
		{"::ffff:203.0.113.5", true},
		{"203.0.113.6", false},
		{"192.0.2.130", true},
		{"192.0.2.1", false},
	} {
		ok, reason := admit(f, netip.MustParseAddr(tc.addr))
		if ok == tc.banned {
			t.Errorf("%s: admitted %v (%s)", tc.addr, ok, reason)
		}
		if tc.banned && reason != "banned: spam" {
			t.Errorf("%s: reason %q", tc.addr, reason)
		}
	}
	if err := f.Unban(ctx, netip.MustParsePrefix("198.51.100.0/24")); err != nil {
		t.Fatal(err)
	}
	if ok, _ := admit(f, netip.MustParseAddr("198.51.100.200")); !ok {
		t.Fatal("refused after Unban")
	}
	var got []string
	for _, b := range f.Bans() {
		got = append(got, b.Prefix.String())
	}
	if want := "192.0.2.128/25 203.0.113.5/32 2001:db8:1::/48"; strings.Join(got, " ") != want {
		t.Fatalf("Bans = %s, want %s", got, want)
	}
	if err := f.Ban(ctx, netip.MustParsePrefix("192.0.2.0/24"), 0, "x"); err == nil {
		t.Fatal("a ban without duration")
	}
}

// TestBanPersists: a ban, from failures or an administrator, survives a
// restart, with a memory store kept and with a bbolt file reopened; an
// expired one does not keep the network out.
func TestBanPersists(t *testing.T) {
	mem := memory.New()
	path := filepath.Join(t.TempDir(), "kiez.db")
	for _, tc := range []struct {
		name   string
		open   func(t *testing.T) storage.ServiceData
		reopen func(t *testing.T, s storage.ServiceData) storage.ServiceData
	}{
		{"memory", func(*testing.T) storage.ServiceData { return mem },
			func(_ *testing.T, s storage.ServiceData) storage.ServiceData { return s }},
		{"bbolt", func(t *testing.T) storage.ServiceData {
			s, err := bbolt.Open(path, bbolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, func(t *testing.T, s storage.ServiceData) storage.ServiceData {
			if err := s.(*bbolt.Store).Close(); err != nil {
				t.Fatal(err)
			}
			b, err := bbolt.Open(path, bbolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.open(t)
			// Real time here: the store's own expiry runs on it.
			f, err := ipfilter.New(ipfilter.Options{}, store)
			if err != nil {
				t.Fatal(err)
			}
			if !fail(t, f, v4a, 10) {
				t.Fatal("not banned")
			}
			if err := f.Ban(t.Context(), netip.MustParsePrefix("2001:db8::/32"), time.Minute, "admin"); err != nil {
				t.Fatal(err)
			}
			store = tc.reopen(t, store)
			f, err = ipfilter.New(ipfilter.Options{}, store)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range []netip.Addr{v4a, v6b} {
				if ok, r := admit(f, a); ok || !strings.HasPrefix(r, "banned: ") {
					t.Fatalf("%s after restart: %v %q", a, ok, r)
				}
			}
			if ok, _ := admit(f, v4b); !ok {
				t.Fatal("another address refused after restart")
			}
			// Restarted two hours later, both bans have expired.
			clk := &ipfilter.Clock{T: time.Now().Add(2 * time.Hour)}
			f, err = ipfilter.NewAt(ipfilter.Options{}, store, clk.Now)
			if err != nil {
				t.Fatal(err)
			}
			if ok, r := admit(f, v4a); !ok {
				t.Fatalf("refused after the ban expired: %s", r)
			}
			// The store forgets it then too.
			if n, err := store.ExpireServiceData(t.Context(), clk.T, 0); err != nil || n != 2 {
				t.Fatalf("ExpireServiceData = %d, %v", n, err)
			}
		})
	}
}

func TestRegistrationRate(t *testing.T) {
	f, clk := newFilter(t, ipfilter.Options{}, nil) // 3 an hour
	for i := range 3 {
		if !f.AllowRegistration(v6a) {
			t.Fatalf("registration %d refused", i)
		}
	}
	if f.AllowRegistration(v6a2) {
		t.Fatal("a fourth registration from the /64 allowed")
	}
	if !f.AllowRegistration(v6b) {
		t.Fatal("another /64 refused")
	}
	clk.Add(20 * time.Minute)
	if !f.AllowRegistration(v6a) || f.AllowRegistration(v6a) {
		t.Fatal("not one registration back after 20 minutes")
	}
	if f.AllowRegistration(netip.Addr{}) {
		t.Fatal("a registration without address allowed")
	}
}

// TestMemoryBound: a flood of distinct addresses keeps at most MaxTracked
// networks' counters, while the networks with connections open keep
// theirs.
func TestMemoryBound(t *testing.T) {
	f, _ := newFilter(t, ipfilter.Options{MaxTracked: 1000, MaxUnauthenticated: 1}, nil)
	held := []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:ffff::1")}
	for _, a := range held {
		if ok, _ := f.Admit(a); !ok {
			t.Fatal("refused")
		}
	}
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if i%2 == 1 {
			a = netip.MustParseAddr(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff))
		}
		if ok, _ := f.Admit(a); !ok {
			t.Fatalf("address %d refused", i)
		}
		f.Closed(a)
		f.AuthFailed(t.Context(), a)
		f.AllowRegistration(a)
	}
	if n := f.Tracked(); n > 1000+len(held) {
		t.Fatalf("%d networks tracked", n)
	}
	for _, a := range held {
		if ok, _ := f.Admit(a); ok {
			t.Fatalf("the open connection of %s was forgotten", a)
		}
	}
}

func TestInvalid(t *testing.T) {
	if _, err := ipfilter.New(ipfilter.Options{Allow: []netip.Prefix{{}}}, nil); err == nil {
		t.Fatal("an invalid allowed prefix accepted")
	}
	if _, err := ipfilter.New(ipfilter.Options{AuthFailures: 1001}, nil); err == nil {
		t.Fatal("AuthFailures 1001 accepted")
	}
	f, _ := newFilter(t, ipfilter.Options{}, nil)
	if ok, _ := f.Admit(netip.Addr{}); ok {
		t.Fatal("no address admitted")
	}
	if f.AuthFailed(t.Context(), netip.Addr{}) {
		t.Fatal("no address banned")
	}
	f.Closed(netip.Addr{})
	f.Authenticated(netip.Addr{})
}

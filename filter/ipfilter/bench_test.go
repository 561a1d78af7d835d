package ipfilter_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/kiez-im/kiez/filter/ipfilter"
)

// BenchmarkAdmitRelease is the filter's cost per accepted connection:
// Admit, then Authenticated, for addresses spread over 1,000 networks.
func BenchmarkAdmitRelease(b *testing.B) {
	f, err := ipfilter.New(ipfilter.Options{ConnRate: 1 << 30}, nil)
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]netip.Addr, 1000)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := addrs[i%len(addrs)]
		i++
		if ok, _ := f.Admit(a); !ok {
			b.Fatal("refused")
		}
		f.Authenticated(a)
	}
}

// BenchmarkAdmitBanned is Admit with up to 100,000 bans in force (IPv4 /32 and
// /24, IPv6 /64 and /48), for an address not banned and one banned: it
// looks the address up once per prefix length in use, whatever the number
// of bans.
func BenchmarkAdmitBanned(b *testing.B) {
	for _, n := range []int{0, 1_000, 10_000, 100_000} {
		f, err := ipfilter.New(ipfilter.Options{ConnRate: 1 << 30}, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			var p netip.Prefix
			switch i % 4 {
			case 0:
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
			case 1:
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{203, byte(i >> 8), byte(i), 0}), 24)
			case 2:
				p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 0, 1}), 64)
			default:
				p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb9, byte(i >> 8), byte(i)}), 48)
			}
			if err := f.Ban(b.Context(), p, time.Hour, "bench"); err != nil {
				b.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name string
			addr netip.Addr
			ok   bool
		}{
			{"v4-free", netip.MustParseAddr("192.0.2.1"), true},
			{"v6-free", netip.MustParseAddr("2001:db8:ffff::1"), true},
			{"v4-banned", netip.MustParseAddr("198.0.0.4"), n == 0},
			{"v6-banned", netip.MustParseAddr("2001:db9:3::1"), n == 0},
		} {
			b.Run(tc.name+"/bans="+strconv.Itoa(n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					ok, _ := f.Admit(tc.addr)
					if ok != tc.ok {
						b.Fatalf("admitted %v", ok)
					}
					if ok {
						f.Closed(tc.addr)
					}
				}
			})
		}
	}
}

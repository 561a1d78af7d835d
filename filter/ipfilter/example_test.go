package ipfilter_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/kiez-im/kiez/filter/ipfilter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// A filter with the defaults, bans kept in the server's store, and the
// administrators' network allowlisted, in a server's Config.
func ExampleNew() {
	store := memory.New()
	f, err := ipfilter.New(ipfilter.Options{
		Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
	}, store)
	if err != nil {
		panic(err)
	}
	_ = server.Config{Domains: []string{"example.org"}, Accounts: store, ConnFilter: f}

	// Ten failed authentications ban the network (an IPv6 /64).
	ctx := context.Background()
	guesser := netip.MustParseAddr("2001:db8::1")
	for range 10 {
		f.AuthFailed(ctx, guesser)
	}
	fmt.Println(f.Admit(netip.MustParseAddr("2001:db8::2")))

	// Administrators ban and unban networks.
	f.Ban(ctx, netip.MustParsePrefix("198.51.100.0/24"), 24*time.Hour, "spam")
	fmt.Println(f.Admit(netip.MustParseAddr("198.51.100.7")))
	for _, b := range f.Bans() {
		if b.Reason == "spam" {
			fmt.Println(b.Prefix, b.Reason)
		}
	}
	f.Unban(ctx, netip.MustParsePrefix("198.51.100.0/24"))
	ok, _ := f.Admit(netip.MustParseAddr("198.51.100.7"))
	fmt.Println(ok)
	// Output:
	// false banned: 10 failed authentications
	// false banned: spam
	// 198.51.100.0/24 spam
	// true
}

// A registration module asks before it creates an account.
func ExampleFilter_AllowRegistration() {
	f, _ := ipfilter.New(ipfilter.Options{RegistrationRate: 2}, nil)
	addr := netip.MustParseAddr("203.0.113.9")
	for range 3 {
		fmt.Println(f.AllowRegistration(addr))
	}
	// Output:
	// true
	// true
	// false
}

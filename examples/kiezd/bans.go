package main

// The ban commands: ban, unban and bans act on the IP filter's bans
// (package filter/ipfilter), through the running server's own filter or
// on the database. Addresses show only on the admin's terminal: nothing
// here logs one.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kiez-im/kiez/filter/ipfilter"
)

const (
	// defaultBanReason is the reason of a ban given without --reason.
	defaultBanReason = "by the administrator"
	// maxBanReason caps a reason's characters.
	maxBanReason = 200
	// maxBanFor caps a ban's duration: far enough to mean "for good",
	// near enough for every store's clock.
	maxBanFor = 100 * 365 * 24 * time.Hour
	// banTimeLayout shows when a ban ends: UTC, to the minute.
	banTimeLayout = "2006-01-02 15:04 UTC"
)

// parseNetwork parses the ADDR[/PREFIX] of ban and unban. A prefix is
// taken as written, with the bits after its length cleared; an address
// alone means the network the filter counts it in (ipfilter.Key): an IPv4
// address itself, an IPv6 address's /64. IPv4-mapped IPv6 addresses are
// taken as IPv4.
func parseNetwork(s string) (netip.Prefix, error) {
	bad := fmt.Errorf("%q is neither an address nor a network such as 192.0.2.7, 2001:db8::1 or 192.0.2.0/24", s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, bad
		}
		return ipfilter.Key(a), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, bad
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped network needs a prefix length of at least 96", s)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// parseBanFor parses --for: a duration as in the configuration ("30m",
// "12h", "7d"), positive and at most maxBanFor.
func parseBanFor(s string) (time.Duration, error) {
	var d duration
	if err := d.UnmarshalTOML(s); err != nil {
		return 0, fmt.Errorf("--for: %v", err)
	}
	if time.Duration(d) > maxBanFor {
		return 0, fmt.Errorf("--for: %q is longer than 100 years (36500d)", s)
	}
	return time.Duration(d), nil
}

// checkReason checks --reason: one line of printable text, at most
// maxBanReason characters, without IP addresses (the filter logs the
// reason).
func checkReason(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("--reason: not UTF-8 text")
	}
	if utf8.RuneCountInString(s) > maxBanReason {
		return fmt.Errorf("--reason: longer than %d characters", maxBanReason)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return errors.New("--reason: control characters (such as a line break) are not allowed")
	}
	if hasIPAddress(s) {
		return errors.New("--reason: no IP addresses, please: the reason is logged, and logs never hold one")
	}
	return nil
}

// hasIPAddress reports whether s holds something that reads as an IP
// address, alone, with a prefix length or with a port.
func hasIPAddress(s string) bool {
	words := strings.FieldsFunc(s, func(r rune) bool {
		return !(r < utf8.RuneSelf && (unicode.Is(unicode.ASCII_Hex_Digit, r) || strings.ContainsRune(".:/%[]", r)))
	})
	for _, w := range words {
		w = strings.TrimRight(w, ".:")
		_, err1 := netip.ParseAddr(w)
		_, err2 := netip.ParsePrefix(w)
		_, err3 := netip.ParseAddrPort(w)
		if err1 == nil || err2 == nil || err3 == nil {
			return true
		}
	}
	return false
}

// banRequest checks the arguments of ban or unban as the command line
// gives them and returns the request; mistakes are usage errors.
func banRequest(op, network, banFor, reason string) (adminRequest, error) {
	if _, err := parseNetwork(network); err != nil {
		return adminRequest{}, usageError{err.Error()}
	}
	if banFor != "" {
		if _, err := parseBanFor(banFor); err != nil {
			return adminRequest{}, usageError{err.Error()}
		}
	}
	if err := checkReason(reason); err != nil {
		return adminRequest{}, usageError{err.Error()}
	}
	return adminRequest{Op: op, Network: network, For: banFor, Reason: reason}, nil
}

// execBan bans req.Network for req.For (default: [filter] ban_for).
func execBan(ctx context.Context, t adminTarget, req adminRequest) (string, error) {
	p, err := parseNetwork(req.Network)
	if err != nil {
		return "", err
	}
	dur := time.Duration(t.cfg.Filter.BanFor)
	if req.For != "" {
		if dur, err = parseBanFor(req.For); err != nil {
			return "", err
		}
	}
	reason := strings.TrimSpace(req.Reason)
	if err := checkReason(reason); err != nil {
		return "", err
	}
	if reason == "" {
		reason = defaultBanReason
	}
	var old *ipfilter.Ban
	for _, b := range t.filter.Bans() {
		if b.Prefix == p {
			old = &b
		}
	}
	if err := t.filter.Ban(ctx, p, dur, reason); err != nil {
		return "", fmt.Errorf("banning %s: %v", p, unwrapAll(err))
	}
	var out strings.Builder
	until := "?"
	for _, b := range t.filter.Bans() {
		if b.Prefix == p {
			until = b.Until.UTC().Format(banTimeLayout)
		}
	}
	fmt.Fprintf(&out, "banned %s until %s", p, until)
	if old != nil {
		fmt.Fprintf(&out, " (replacing the ban until %s)", old.Until.UTC().Format(banTimeLayout))
	}
	out.WriteString("\n")
	if allowed := allowedIn(t.cfg, p); len(allowed) > 0 {
		fmt.Fprintf(&out, "note: [filter] allow lists %s: those addresses are never refused\n", strings.Join(allowed, ", "))
	}
	return out.String(), nil
}

// allowedIn lists the [filter] allow entries that overlap p.
func allowedIn(cfg *config, p netip.Prefix) []string {
	opts, err := cfg.filterOptions() // validated with the config
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range opts.Allow {
		if a.Overlaps(p) {
			out = append(out, a.String())
		}
	}
	return out
}

// execUnban lifts the ban of exactly req.Network. Without one, it is an
// error that names the bans overlapping the network, if any.
func execUnban(ctx context.Context, t adminTarget, req adminRequest) (string, error) {
	p, err := parseNetwork(req.Network)
	if err != nil {
		return "", err
	}
	found := false
	var near []string
	for _, b := range t.filter.Bans() {
		switch {
		case b.Prefix == p:
			found = true
		case b.Prefix.Overlaps(p):
			near = append(near, b.Prefix.String())
		}
	}
	if !found {
		if len(near) > 0 {
			return "", fmt.Errorf("there is no ban of %s; these bans overlap it: %s", p, strings.Join(near, ", "))
		}
		return "", fmt.Errorf("there is no ban of %s", p)
	}
	if err := t.filter.Unban(ctx, p); err != nil {
		return "", fmt.Errorf("unbanning %s: %v", p, unwrapAll(err))
	}
	out := fmt.Sprintf("unbanned %s\n", p)
	if len(near) > 0 {
		out += fmt.Sprintf("note: these bans overlap it and stay: %s\n", strings.Join(near, ", "))
	}
	return out, nil
}

// listBans lists the bans in force, one a line: the network, until when
// (UTC, to the minute) and why.
func listBans(f *ipfilter.Filter) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, ban := range f.Bans() {
		fmt.Fprintf(tw, "%s\tuntil %s\t%s\n", ban.Prefix, ban.Until.UTC().Format(banTimeLayout), ban.Reason)
	}
	tw.Flush()
	return b.String()
}

// banCommand runs ban, unban or bans, on the running server if there is
// one (see admin).
func banCommand(ctx context.Context, cfg *config, e env, req adminRequest) error {
	out, err := admin(ctx, cfg, e, req)
	fmt.Fprint(e.stdout, out)
	return err
}

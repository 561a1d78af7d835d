package main

import (
	"encoding/json"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// canLogin reports whether alice logs in to d from 127.0.0.1.
func canLogin(t *testing.T, d *daemon) bool {
	t.Helper()
	sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password")
	if err != nil {
		return false
	}
	logout(sess)
	return true
}

// untilOf returns the end of a ban as the ban command prints it.
func untilOf(t *testing.T, out string) time.Time {
	t.Helper()
	m := regexp.MustCompile(`until (\d{4}-\d\d-\d\d \d\d:\d\d UTC)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no end of the ban in %q", out)
	}
	until, err := time.Parse(banTimeLayout, m[1])
	if err != nil {
		t.Fatal(err)
	}
	return until
}

// A ban through the control socket refuses the next login at once; the
// list shows it; unban lets the address in again, and both outlast a
// restart.
func TestBanLive(t *testing.T) {
	file, _ := testConfig(t, "\n[filter]\nban_for = \"2h\"\n")
	k := func(args ...string) (int, string, string) {
		return kiezd(t, "", append([]string{"-config", file}, args...)...)
	}
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited with %d:\n%s", d.code, d.stderr)
	}
	if !canLogin(t, d) {
		t.Fatal("no login before any ban")
	}

	before := time.Now()
	code, stdout, stderr := k("ban", "127.0.0.1")
	if code != 0 || !regexp.MustCompile(`^banned 127\.0\.0\.1/32 until \d{4}-\d\d-\d\d \d\d:\d\d UTC\n$`).MatchString(stdout) || stderr != "" {
		t.Fatalf("ban 127.0.0.1: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// The default is [filter] ban_for, 2h: not the built-in hour.
	if until := untilOf(t, stdout); until.Before(before.Add(2*time.Hour - time.Minute)) {
		t.Errorf("banned until %v, less than ban_for (2h) after %v", until, before.UTC())
	}
	if canLogin(t, d) {
		t.Error("a banned address logged in")
	}
	code, stdout, _ = k("ban", "192.0.2.7/24", "--for", "7d", "--reason", "spam")
	if code != 0 || !strings.HasPrefix(stdout, "banned 192.0.2.0/24 until ") {
		t.Errorf("ban 192.0.2.7/24: exit %d, %q", code, stdout)
	} else if until := untilOf(t, stdout); until.Before(before.Add(6 * 24 * time.Hour)) {
		t.Errorf("banned for 7d until %v", until)
	}
	code, stdout, _ = k("bans")
	lines := strings.Split(stdout, "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "127.0.0.1/32  until ") || !strings.HasSuffix(lines[0], "  by the administrator") ||
		!strings.HasPrefix(lines[1], "192.0.2.0/24  until ") || !strings.HasSuffix(lines[1], "  spam") {
		t.Errorf("bans: exit %d, %q", code, stdout)
	}

	// A request on the socket is checked as the command line is.
	c, err := net.Dial("unix", filepath.Join(filepath.Dir(file), "data", controlSocketName))
	if err != nil {
		t.Fatal(err)
	}
	json.NewEncoder(c).Encode(adminRequest{Op: "ban", Network: "192.0.2.7", For: "forever"})
	var resp adminResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil || !strings.Contains(resp.Error, `"forever" is not a duration`) {
		t.Errorf("ban with a bad duration on the socket: %v, %+v", err, resp)
	}
	c.Close()

	if code, stdout, stderr := k("unban", "127.0.0.1"); code != 0 || stdout != "unbanned 127.0.0.1/32\n" {
		t.Fatalf("unban 127.0.0.1: exit %d, %q, %q", code, stdout, stderr)
	}
	if !canLogin(t, d) {
		t.Error("no login after unban")
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, d.stderr)
	}
	// The log names no banned address.
	if log := d.stderr.String(); strings.Contains(log, "192.0.2") || strings.Contains(log, "127.0.0.1/32") {
		t.Errorf("an address in the log:\n%s", log)
	}

	d = startServe(t, nil, "-config", file)
	if !canLogin(t, d) {
		t.Error("the unban did not outlast a restart")
	}
	if code, stdout, _ := k("bans"); code != 0 || !strings.HasPrefix(stdout, "192.0.2.0/24 ") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("bans after a restart: exit %d, %q", code, stdout)
	}
	d.stop(t)
}

// Without a running server the commands work on the database, and the
// next serve keeps to what they did.
func TestBanOffline(t *testing.T) { onBothBackends(t, testBanOffline) }

func testBanOffline(t *testing.T) {
	file, _ := testConfig(t, "")
	k := func(args ...string) (int, string, string) {
		return kiezd(t, "", append([]string{"-config", file}, args...)...)
	}
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	before := time.Now()
	code, stdout, stderr := k("ban", "127.0.0.1", "--reason", "testing")
	if code != 0 || !strings.HasPrefix(stdout, "banned 127.0.0.1/32 until ") || stderr != "" {
		t.Fatalf("ban offline: exit %d, %q, %q", code, stdout, stderr)
	}
	// The default is the built-in ban_for, an hour.
	if until := untilOf(t, stdout); until.Before(before.Add(time.Hour-time.Minute)) || until.After(time.Now().Add(time.Hour)) {
		t.Errorf("banned until %v; want an hour after %v", until, before.UTC())
	}
	code, stdout, _ = k("ban", "2001:db8::1", "-for", "30m")
	if code != 0 || !strings.HasPrefix(stdout, "banned 2001:db8::/64 until ") {
		t.Errorf("ban an IPv6 address: exit %d, %q", code, stdout)
	}
	code, stdout, _ = k("bans")
	if code != 0 || !regexp.MustCompile(`^127\.0\.0\.1/32   until \d{4}-\d\d-\d\d \d\d:\d\d UTC  testing\n2001:db8::/64  until .* UTC  by the administrator\n$`).MatchString(stdout) {
		t.Errorf("bans offline: exit %d, %q", code, stdout)
	}
	// Banning again replaces the ban.
	code, stdout, _ = k("ban", "127.0.0.1", "--for", "3h")
	if code != 0 || !strings.Contains(stdout, " (replacing the ban until ") {
		t.Errorf("ban again: exit %d, %q", code, stdout)
	}

	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited with %d:\n%s", d.code, d.stderr)
	}
	if canLogin(t, d) {
		t.Error("serve let in an address banned offline")
	}
	d.stop(t)

	if code, stdout, stderr := k("unban", "127.0.0.1"); code != 0 || stdout != "unbanned 127.0.0.1/32\n" || stderr != "" {
		t.Fatalf("unban offline: exit %d, %q, %q", code, stdout, stderr)
	}
	if code, stdout, _ := k("bans"); code != 0 || !strings.HasPrefix(stdout, "2001:db8::/64 ") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("bans after unban: exit %d, %q", code, stdout)
	}
	d = startServe(t, nil, "-config", file)
	if !canLogin(t, d) {
		t.Error("serve refused an address unbanned offline")
	}
	d.stop(t)
}

func TestBanBadInput(t *testing.T) {
	file, _ := testConfig(t, "\n[filter]\nallow = [\"10.0.0.0/8\"]\n")
	usage := "\nRun 'kiezd -h' for usage.\n"
	noAddr := "kiezd: --reason: no IP addresses, please: the reason is logged, and logs never hold one" + usage
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"ban"}, 2, "", "kiezd: ban: wrong number of arguments" + usage},
		{[]string{"ban", "1.2.3.4", "5.6.7.8"}, 2, "", "kiezd: ban: wrong number of arguments" + usage},
		{[]string{"bans", "1.2.3.4"}, 2, "", "kiezd: bans: wrong number of arguments" + usage},
		{[]string{"ban", "example.org"}, 2, "", `kiezd: "example.org" is neither an address nor a network such as 192.0.2.7, 2001:db8::1 or 192.0.2.0/24` + usage},
		{[]string{"ban", "1.2.3.4/33"}, 2, "", `kiezd: "1.2.3.4/33" is neither an address nor a network such as 192.0.2.7, 2001:db8::1 or 192.0.2.0/24` + usage},
		{[]string{"unban", "1.2.3"}, 2, "", `kiezd: "1.2.3" is neither an address nor a network such as 192.0.2.7, 2001:db8::1 or 192.0.2.0/24` + usage},
		{[]string{"ban", "::ffff:0:0/80"}, 2, "", `kiezd: "::ffff:0:0/80": an IPv4-mapped network needs a prefix length of at least 96` + usage},
		{[]string{"ban", "1.2.3.4", "--for", "10"}, 2, "", `kiezd: --for: "10" is not a duration such as "60s", "4m" or "30d"` + usage},
		{[]string{"ban", "1.2.3.4", "--for", "0s"}, 2, "", `kiezd: --for: "0s": the duration must be positive` + usage},
		{[]string{"ban", "1.2.3.4", "--for", "-1h"}, 2, "", `kiezd: --for: "-1h": the duration must be positive` + usage},
		{[]string{"ban", "1.2.3.4", "--for", "1000000h"}, 2, "", `kiezd: --for: "1000000h" is longer than 100 years (36500d)` + usage},
		{[]string{"ban", "1.2.3.4", "--for"}, 2, "", "kiezd: flag needs an argument: -for" + usage},
		{[]string{"ban", "1.2.3.4", "--reason", "two\nlines"}, 2, "", "kiezd: --reason: control characters (such as a line break) are not allowed" + usage},
		{[]string{"ban", "1.2.3.4", "--reason", strings.Repeat("x", 201)}, 2, "", "kiezd: --reason: longer than 200 characters" + usage},
		{[]string{"ban", "1.2.3.4", "--reason", "like 1.2.3.4."}, 2, "", noAddr},
		{[]string{"ban", "1.2.3.4", "--reason", "from [2001:db8::1]:5222"}, 2, "", noAddr},
		{[]string{"ban", "1.2.3.4", "--reason", "all of 198.51.100.0/24"}, 2, "", noAddr},
		{[]string{"unban", "1.2.3.4", "--for", "1h"}, 2, "", "kiezd: flag provided but not defined: -for" + usage},
		{[]string{"unban", "1.2.3.4"}, 1, "", "kiezd: there is no ban of 1.2.3.4/32\n"},
		// Flags before the address, "--" before one that looks like a flag.
		{[]string{"ban", "--for", "1h", "--", "2001:db8:1::1"}, 0, "banned 2001:db8:1::/64 until ", ""},
		{[]string{"unban", "2001:db8::/32"}, 1, "", "kiezd: there is no ban of 2001:db8::/32; these bans overlap it: 2001:db8:1::/64\n"},
		{[]string{"ban", "10.1.2.3/16"}, 0, "banned 10.1.0.0/16 until ", ""},
		{[]string{"unban", "10.1.0.0/16"}, 0, "unbanned 10.1.0.0/16\n", ""},
	} {
		code, stdout, stderr := kiezd(t, "", append([]string{"-config", file}, tc.args...)...)
		if code != tc.code || !strings.HasPrefix(stdout, tc.stdout) || (tc.stdout == "" && stdout != "") || stderr != tc.stderr {
			t.Errorf("kiezd %q: exit %d, stdout %q, stderr %q; want %d, %q…, %q", tc.args, code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
	// A ban of allowed addresses says that they stay allowed.
	_, stdout, _ := kiezd(t, "", "-config", file, "ban", "10.0.0.0/7")
	if !strings.HasSuffix(stdout, "\nnote: [filter] allow lists 10.0.0.0/8: those addresses are never refused\n") {
		t.Errorf("ban over an allowed network: %q", stdout)
	}
}

func TestParseNetwork(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7/32"},
		{"192.0.2.7/24", "192.0.2.0/24"},
		{"2001:db8::1", "2001:db8::/64"},
		{"2001:db8:1:2:3:4:5:6/48", "2001:db8:1::/48"},
		{"2001:db8::1/128", "2001:db8::1/128"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7/120", "192.0.2.0/24"},
		{"fe80::1%eth0", "fe80::/64"},
	} {
		p, err := parseNetwork(tc.in)
		if err != nil || p != netip.MustParsePrefix(tc.want) {
			t.Errorf("parseNetwork(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
		}
	}
}

func TestHasIPAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"spam bot", false},
		{"10 failed authentications", false},
		{"reported 2026-12-06 at 12:30, ticket #4711", false},
		{"cafe deadbeef a:b ::x", false},
		{"192.0.2.7", true},
		{"seen at 192.0.2.7.", true},
		{"(2001:db8::1)", true},
		{"198.51.100.0/24", true},
		{"192.0.2.7:5222", true},
		{"[2001:db8::1]:5222", true},
	} {
		if got := hasIPAddress(tc.in); got != tc.want {
			t.Errorf("hasIPAddress(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}

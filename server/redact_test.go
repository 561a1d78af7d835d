package server

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"

	"mellium.im/xmpp/jid"
)

func TestRedactAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"archive of alice@example.org: disk full":        "archive of [user]: disk full",
		"to bob@example.org/phone failed":                "to [user] failed",
		`user "carol@kiez.test" not found`:               `user "[user]" not found`,
		"stanza <message to='d@x.test/a b'>":             "stanza <message to='[user] b'>",
		"domain example.org and port 5222 stay":          "domain example.org and port 5222 stay",
		"two: a@x.test,b@y.test":                         "two: [user],[user]",
		"nothing to hide":                                "nothing to hide",
		"bbolt: roster of ünïcode@例え.jp: corrupt record": "bbolt: roster of [user]: corrupt record",
	} {
		if got := RedactAddresses(in); got != want {
			t.Errorf("RedactAddresses(%q) = %q, want %q", in, got, want)
		}
	}
}

// A module's logger never writes an account address, whatever the module
// passes: message, strings, errors, stringers, groups, With attributes.
func TestModuleLoggerRedacts(t *testing.T) {
	var buf bytes.Buffer
	srv := &Server{log: slog.New(PrivacyHandler(slog.NewTextHandler(&buf, nil)))}
	log := (&host{srv: srv, module: "test"}).Logger()
	user := jid.MustParse("alice@example.org/laptop")
	log = log.With("who", user.Bare().String())
	log.Warn("failed for alice@example.org",
		"err", fmt.Errorf("store: %w", errors.New("user alice@example.org: locked")),
		"jid", user,
		"peer", "bob@example.org",
		slog.Group("g", "inner", "carol@example.org"),
		"net", fmt.Errorf("reading: %w", &net.OpError{Op: "read", Net: "tcp",
			Source: &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 5222},
			Addr:   &net.TCPAddr{IP: net.ParseIP("198.51.100.7"), Port: 40000}, Err: syscall.ECONNRESET}),
		"count", 3)
	out := buf.String()
	for _, leak := range []string{"alice", "bob", "carol", "192.0.2.1", "198.51.100.7", "40000"} {
		if strings.Contains(out, leak) {
			t.Errorf("log line names %s: %s", leak, out)
		}
	}
	if !strings.Contains(out, "module=test") || !strings.Contains(out, `net="reading: read tcp: connection reset by peer"`) || !strings.Contains(out, "count=3") || strings.Count(out, "[user]") != 6 {
		t.Errorf("log line lost its structure: %s", out)
	}
}

func ExampleRedactAddresses() {
	err := errors.New("bbolt: archive of alice@example.org: disk full")
	fmt.Println(RedactAddresses(err.Error()))
	// Output: bbolt: archive of [user]: disk full
}

package ping_test

import (
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/ping"
	"github.com/kiez-im/kiez/stanza"
)

func TestPing(t *testing.T) {
	srv, c := modtest.Start(t, modtest.Must(ping.New(ping.Options{}, ping.Deps{})))
	domain := jid.MustParse(srv.Domain)
	bob := srv.AddUser(t, "bob", "pw-bob")

	tests := []struct {
		name string
		typ  string
		to   jid.JID
		// A result is expected from 'from', unless cond names the
		// expected error. The zero JID stands for the account itself:
		// the server answers from its bare JID (RFC 6120 §8.1.2.1),
		// which the client library blanks.
		from jid.JID
		cond mstanza.Condition
	}{
		{name: "server", typ: stanza.Get, to: domain, from: domain},
		{name: "own bare JID", typ: stanza.Get, to: c.LocalAddr().Bare()},
		{name: "no to", typ: stanza.Get},
		{name: "set is not a ping", typ: stanza.Set, to: domain, cond: mstanza.ServiceUnavailable},
		{name: "other account", typ: stanza.Get, to: bob, cond: mstanza.ServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := modtest.Do(t, c, modtest.IQ("p-"+tt.name, tt.typ, tt.to, modtest.Query(ping.NS, "ping")))
			if tt.cond != "" {
				if got := modtest.Condition(res); got != tt.cond {
					t.Fatalf("condition = %q, want %q", got, tt.cond)
				}
				return
			}
			modtest.MustResult(t, res, tt.from)
			if len(res.Inner) != 0 {
				t.Fatalf("pong has %d child tokens, want an empty result", len(res.Inner))
			}
		})
	}
}

func TestPingFeature(t *testing.T) {
	srv, c := modtest.Start(t, modtest.Must(ping.New(ping.Options{}, ping.Deps{})))
	info := modtest.DiscoInfo(t, c, jid.MustParse(srv.Domain))
	if !modtest.HasFeature(info, ping.NS) {
		t.Fatalf("disco#info features %v lack %s", modtest.Features(info), ping.NS)
	}
	// Only the account itself may ping it, so accounts do not advertise it.
	info = modtest.DiscoInfo(t, c, c.LocalAddr().Bare())
	if modtest.HasFeature(info, ping.NS) {
		t.Fatalf("account disco#info advertises %s", ping.NS)
	}
}

func TestWithoutModule(t *testing.T) {
	srv, c := modtest.Start(t)
	domain := jid.MustParse(srv.Domain)
	res := modtest.Do(t, c, modtest.IQ("p1", stanza.Get, domain, modtest.Query(ping.NS, "ping")))
	if got := modtest.Condition(res); got != mstanza.ServiceUnavailable {
		t.Fatalf("condition = %q, want %q", got, mstanza.ServiceUnavailable)
	}
	if info := modtest.DiscoInfo(t, c, domain); modtest.HasFeature(info, ping.NS) {
		t.Fatalf("disco#info advertises %s without the module", ping.NS)
	}
}

package server_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/server/servertest"
)

func TestSASLMechanisms(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	user := srv.AddUser(t, "alice", "correct horse")
	for _, tc := range []struct {
		name string
		mech sasl.Mechanism
		tls  uint16
	}{
		{"SCRAM-SHA-1", sasl.ScramSha1, 0},
		{"SCRAM-SHA-256", sasl.ScramSha256, 0},
		{"SCRAM-SHA-512", scram.ClientMechanism(scram.MechSHA512, ""), 0},
		{"SCRAM-SHA-1-PLUS tls-exporter", sasl.ScramSha1Plus, 0},
		{"SCRAM-SHA-256-PLUS tls-exporter", sasl.ScramSha256Plus, 0},
		{"SCRAM-SHA-512-PLUS tls-exporter", scram.ClientMechanism(scram.MechSHA512Plus, scram.TLSExporter), 0},
		{"SCRAM-SHA-256-PLUS tls-server-end-point", scram.ClientMechanism(scram.MechSHA256Plus, scram.TLSServerEndPoint), 0},
		{"SCRAM-SHA-512-PLUS tls-server-end-point TLS1.2", scram.ClientMechanism(scram.MechSHA512Plus, scram.TLSServerEndPoint), tls.VersionTLS12},
		{"SCRAM-SHA-256-PLUS tls-unique TLS1.2", sasl.ScramSha256Plus, tls.VersionTLS12},
		{"PLAIN", sasl.Plain, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess, err := login(t, srv, user, "correct horse", tc.tls, tc.mech)
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			defer sess.Close()
			if got := sess.LocalAddr().Bare(); !got.Equal(user) {
				t.Fatalf("bound %s, want %s", got, user)
			}
			if cs := sess.ConnectionState(); tc.tls != 0 && cs.Version != tc.tls {
				t.Fatalf("TLS version %x, want %x", cs.Version, tc.tls)
			}
		})
	}
}

func TestSASLFailures(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	user := srv.AddUser(t, "alice", "correct horse")
	for _, tc := range []struct {
		name string
		user jid.JID
		pass string
		mech sasl.Mechanism
		want string // the <failure/> text mellium reports
	}{
		{"wrong password SCRAM", user, "wrong", sasl.ScramSha256, "authentication failed"},
		{"wrong password PLAIN", user, "wrong", sasl.Plain, "authentication failed"},
		{"unknown user SCRAM", jid.MustParse("nobody@localhost"), "correct horse", sasl.ScramSha256, "authentication failed"},
		{"unknown user PLAIN", jid.MustParse("nobody@localhost"), "correct horse", sasl.Plain, "authentication failed"},
		{"channel binding mismatch", user, "correct horse", mismatchedBinding(), "channel binding mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess, err := login(t, srv, tc.user, tc.pass, 0, tc.mech)
			if err == nil {
				sess.Close()
				t.Fatal("login succeeded")
			}
			if err.Error() != tc.want {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
		})
	}
}

// mismatchedBinding computes its channel binding from a different TLS
// connection than the one it authenticates on, as a man in the middle
// relaying the exchange would.
func mismatchedBinding() sasl.Mechanism {
	m := sasl.ScramSha256Plus
	start := m.Start
	m.Start = func(n *sasl.Negotiator) (bool, []byte, any, error) {
		return start(n)
	}
	next := m.Next
	m.Next = func(n *sasl.Negotiator, challenge []byte, data any) (bool, []byte, any, error) {
		more, resp, cache, err := next(n, challenge, data)
		// Flip one byte of the base64 channel binding data (c=...).
		s := string(resp)
		if i := strings.Index(s, "c="); i >= 0 && len(s) > i+10 {
			b := []byte(s)
			if b[i+8] == 'A' {
				b[i+8] = 'B'
			} else {
				b[i+8] = 'A'
			}
			resp = b
		}
		return more, resp, cache, err
	}
	return m
}

func login(t *testing.T, srv *servertest.Server, user jid.JID, pass string, tlsVersion uint16, mech sasl.Mechanism) (*xmpp.Session, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel) // see servertest.Connect
	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := srv.ClientTLS()
	if tlsVersion != 0 {
		cfg.MaxVersion = tlsVersion
	}
	sess, err := xmpp.NewClientSession(ctx, user, conn,
		xmpp.StartTLS(cfg),
		xmpp.SASL("", pass, mech),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
	}
	return sess, err
}

func TestDirectTLS(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	user := srv.AddUser(t, "alice", "pw")
	cfg := srv.ClientTLS()
	cfg.NextProtos = []string{"xmpp-client"}
	conn, err := tls.Dial("tcp", srv.TLSAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "xmpp-client" {
		t.Fatalf("ALPN %q, want xmpp-client", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel) // see servertest.Connect
	sess, err := xmpp.NewClientSession(ctx, user, conn, xmpp.SASL("", "pw", sasl.ScramSha256Plus), xmpp.BindResource())
	if err != nil {
		t.Fatalf("login over direct TLS: %v", err)
	}
	sess.Close()
}

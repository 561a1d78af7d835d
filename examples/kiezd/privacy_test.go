package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// TestLogPrivacy runs a whole session — accounts created, a failed and
// two successful logins, presence, a message between the users, logouts,
// shutdown — and checks that the log holds no IP address, password,
// message body, nor anything about the users at all, so no login time.
func TestLogPrivacy(t *testing.T) {
	const (
		alicePW = "correct horse battery"
		bobPW   = "Tr0ub4dor&3"
		newPW   = "staple battery horse"
		body    = "meet me at the old oak at noon"
	)
	for _, level := range []string{"info", "debug"} {
		t.Run(level, func(t *testing.T) {
			file, _ := testConfig(t, "[log]\nlevel = \""+level+"\"\n")
			var logs syncBuffer
			for _, u := range []struct{ jid, pw string }{{"alice@localhost", alicePW}, {"bob@localhost", bobPW}} {
				code, _, stderr := kiezd(t, u.pw+"\n", "-config", file, "adduser", u.jid)
				if code != 0 {
					t.Fatal(stderr)
				}
				logs.Write([]byte(stderr))
			}
			d := startServe(t, &logs, "-config", file)
			if d.ended {
				t.Fatalf("serve exited:\n%s", logs.String())
			}

			// A client that resets its connection in the middle of the
			// stream header: the network error names both addresses.
			for _, a := range []net.Addr{d.bound.C2S[0], d.bound.DirectTLS[0]} {
				c, err := net.Dial("tcp", a.String())
				if err != nil {
					t.Fatal(err)
				}
				c.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"))
				time.Sleep(20 * time.Millisecond)
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
			if _, err := login(t, d.bound.C2S[0], false, "alice@localhost", bobPW); err == nil {
				t.Fatal("logged in with bob's password")
			}
			as, err := login(t, d.bound.C2S[0], false, "alice@localhost", alicePW)
			if err != nil {
				t.Fatal(err)
			}
			bs, err := login(t, d.bound.DirectTLS[0], true, "bob@localhost", bobPW)
			if err != nil {
				t.Fatal(err)
			}
			alice, bob := servertest.NewClient(t, as), servertest.NewClient(t, bs)
			bob.Send(&stanza.Stanza{Kind: stanza.Presence})
			bob.Sync()
			msg := &stanza.Stanza{Kind: stanza.Message, Type: "chat", ID: "m1", To: jid.MustParse("bob@localhost")}
			msg.AppendChild(stanza.TextElem(xml.Name{Local: "body"}, body))
			alice.Send(msg)
			bob.Expect(servertest.Body(body))
			logout(as)
			logout(bs)
			// Admin commands on the running server log nothing of the
			// account or the password.
			for _, c := range [][]string{{"passwd", "alice@localhost"}, {"users"}} {
				code, _, stderr := kiezd(t, newPW+"\n", append([]string{"-config", file}, c...)...)
				if code != 0 {
					t.Fatalf("%v while serving: %s", c, stderr)
				}
				logs.Write([]byte(stderr))
			}
			if code := d.stop(t); code != 0 {
				t.Fatalf("exit %d:\n%s", code, logs.String())
			}

			out := logs.String()
			if !strings.Contains(out, "kiezd starting") || !strings.Contains(out, "kiezd stopped") {
				t.Fatalf("the log was not captured:\n%s", out)
			}
			// The listeners' own addresses are logged at start; nothing
			// else may name a loopback address (the clients').
			scrubbed := out
			for _, a := range slices.Concat(d.bound.C2S, d.bound.DirectTLS, d.bound.HTTPS, d.bound.HTTP, d.bound.S2S) {
				scrubbed = strings.ReplaceAll(scrubbed, a.String(), "LISTENER")
			}
			for _, forbidden := range []string{"127.0.0.1", "::1", alicePW, bobPW, newPW, body, "oak", "alice", "bob"} {
				if strings.Contains(scrubbed, forbidden) {
					t.Errorf("the log contains %q:\n%s", forbidden, out)
				}
			}
		})
	}
}

func TestPrivacyHandler(t *testing.T) {
	client := &net.TCPAddr{IP: net.ParseIP("198.51.100.7"), Port: 40000}
	srv := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5222}
	reset := &net.OpError{Op: "read", Net: "tcp", Source: srv, Addr: client, Err: syscall.ECONNRESET}
	write := &net.OpError{Op: "write", Net: "tcp", Source: srv, Addr: client, Err: syscall.EPIPE}
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log := newLogger(logConfig{Level: "debug", Format: format}, &buf)
		log = log.With("conn", fmt.Errorf("accepting: %w", reset))
		log.WithGroup("g").Debug("failed",
			"err", fmt.Errorf("stream: %w", reset),
			"both", errors.Join(reset, fmt.Errorf("then: %w", write)),
			slog.Group("inner", "err", reset),
			"plain", "kept")
		out := buf.String()
		for _, addr := range []string{"198.51.100.7", "2001:db8::1", "40000"} {
			if strings.Contains(out, addr) {
				t.Errorf("%s: the log holds %s:\n%s", format, addr, out)
			}
		}
		for _, want := range []string{"stream: read tcp: connection reset by peer", "then: write tcp: broken pipe", "accepting: read tcp", "kept"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: the log lacks %q:\n%s", format, want, out)
			}
		}
	}
}

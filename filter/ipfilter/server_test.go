package ipfilter_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/filter/ipfilter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/memory"
)

var _ server.ConnFilter = (*ipfilter.Filter)(nil)

// loginFrom logs in to addr from the local address local.
func loginFrom(t *testing.T, srv *servertest.Server, local, addr string, user jid.JID, pass string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel) // see servertest.Connect
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := xmpp.NewClientSession(ctx, user, conn,
		xmpp.StartTLS(srv.ClientTLS()),
		xmpp.SASL("", pass, sasl.ScramSha256),
		servertest.BindResource(),
	)
	if err != nil {
		conn.Close()
		return err
	}
	return sess.Close()
}

// TestServerBansGuessing: ten wrong passwords from one address ban it,
// on both listeners and even with the right password, while another
// address (127.0.0.2, and ::1 where there is IPv6) and an allowlisted
// address are unaffected.
func TestServerBansGuessing(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f, err := ipfilter.New(ipfilter.Options{Logger: log}, memory.New())
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{ConnFilter: f, Logger: log})
	alice := srv.AddUser(t, "alice", "pw")
	for i := range 10 {
		if err := loginFrom(t, srv, "127.0.0.1", srv.Addr, alice, "wrong"); err == nil {
			t.Fatalf("attempt %d: wrong password accepted", i)
		}
	}
	if err := loginFrom(t, srv, "127.0.0.1", srv.Addr, alice, "pw"); err == nil {
		t.Fatal("banned address logged in")
	}
	if c, err := tls.Dial("tcp", srv.TLSAddr, srv.ClientTLS()); err == nil {
		c.Close()
		t.Fatal("banned address finished a direct TLS handshake")
	}
	if bans := f.Bans(); len(bans) != 1 || bans[0].Prefix != netip.MustParsePrefix("127.0.0.1/32") {
		t.Fatalf("Bans = %+v", bans)
	}
	if err := loginFrom(t, srv, "127.0.0.2", srv.Addr, alice, "pw"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	if ln, err := server.Listen(t.Context(), "[::1]:0"); err != nil {
		t.Logf("no IPv6 loopback: %v", err)
	} else {
		go srv.ServeC2S(ln) // closed by Shutdown
		if err := loginFrom(t, srv, "::1", ln.Addr().String(), alice, "pw"); err != nil {
			t.Fatalf("over IPv6: %v", err)
		}
	}
	// Unbanned, the address logs in again.
	if err := f.Unban(t.Context(), netip.MustParsePrefix("127.0.0.1/32")); err != nil {
		t.Fatal(err)
	}
	if err := loginFrom(t, srv, "127.0.0.1", srv.Addr, alice, "pw"); err != nil {
		t.Fatalf("after Unban: %v", err)
	}

	// The logs tell of the ban and the refusals, never of an address.
	got := logs.String()
	if !strings.Contains(got, "network banned") || !strings.Contains(got, "connection refused") {
		t.Errorf("logs: %s", got)
	}
	if strings.Contains(got, "127.0.0.") || strings.Contains(got, "::1") {
		t.Errorf("an address in the logs: %s", got)
	}

	// The allowlisted address is never banned.
	f, err = ipfilter.New(ipfilter.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, memory.New())
	if err != nil {
		t.Fatal(err)
	}
	srv = servertest.Start(t, server.Config{ConnFilter: f})
	alice = srv.AddUser(t, "alice", "pw")
	for range 12 {
		loginFrom(t, srv, "127.0.0.1", srv.Addr, alice, "wrong")
	}
	if err := loginFrom(t, srv, "127.0.0.1", srv.Addr, alice, "pw"); err != nil {
		t.Fatalf("allowlisted address: %v", err)
	}
}

// TestServerShedsFlood: many connections from one address, opened and left
// idle before authenticating, are shed beyond MaxUnauthenticated (the
// rest are closed at once, without a byte), while a client from another
// address logs in.
func TestServerShedsFlood(t *testing.T) {
	f, err := ipfilter.New(ipfilter.Options{ConnRate: 1000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{ConnFilter: f})
	alice := srv.AddUser(t, "alice", "pw")
	admitted := 0
	for range 40 {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, `<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
		var got []byte
		b := make([]byte, 4096)
		for !strings.Contains(string(got), "</stream:features>") {
			n, err := c.Read(b)
			got = append(got, b[:n]...)
			if err != nil {
				break
			}
		}
		switch {
		case strings.Contains(string(got), "</stream:features>"):
			admitted++
		case len(got) > 0:
			t.Fatalf("a refused connection received %q", got)
		}
	}
	if admitted != ipfilter.DefaultMaxUnauthenticated {
		t.Fatalf("%d idle connections admitted, want %d", admitted, ipfilter.DefaultMaxUnauthenticated)
	}
	if err := loginFrom(t, srv, "127.0.0.2", srv.Addr, alice, "pw"); err != nil {
		t.Fatalf("a client from another address: %v", err)
	}
}

// TestServerBanSurvivesRestart: a ban from guessing, kept in a bbolt file,
// keeps the address out of the next server on the reopened file.
func TestServerBanSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiez.db")
	store, err := bbolt.Open(path, bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ipfilter.New(ipfilter.Options{}, store)
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{ConnFilter: f})
	alice := srv.AddUser(t, "alice", "pw")
	for range 10 {
		loginFrom(t, srv, "127.0.0.1", srv.Addr, alice, "wrong")
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	store, err = bbolt.Open(path, bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f, err = ipfilter.New(ipfilter.Options{}, store)
	if err != nil {
		t.Fatal(err)
	}
	srv = servertest.Start(t, server.Config{ConnFilter: f})
	alice = srv.AddUser(t, "alice", "pw")
	if err := loginFrom(t, srv, "127.0.0.1", srv.Addr, alice, "pw"); err == nil {
		t.Fatal("the banned address logged in after the restart")
	}
	if err := loginFrom(t, srv, "127.0.0.2", srv.Addr, alice, "pw"); err != nil {
		t.Fatalf("another address: %v", err)
	}
}

// syncBuffer is a bytes.Buffer for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

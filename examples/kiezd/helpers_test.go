package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/bbolt"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines to write
// while the test reads.
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

// testConfig writes a kiezd.toml into a new directory: domain localhost,
// data in ./data beside it with an empty database, the c2s, direct TLS,
// HTTPS and s2s listeners on loopback ports the system picks, and the fewest
// SCRAM iterations. extra is appended. On PostgreSQL (testBackend), the
// database is a new schema of the test cluster.
func testConfig(t *testing.T, extra string) (file, dir string) {
	t.Helper()
	dir = t.TempDir()
	file = filepath.Join(dir, "kiezd.toml")
	text := `domains = ["localhost"]
data_dir = "data"
scram_iterations = 4096

[listen]
c2s = ["127.0.0.1:0"]
direct_tls = ["127.0.0.1:0"]
https = ["127.0.0.1:0"]
` + extra
	if !strings.Contains(extra, "[s2s]") {
		// Last, so that the line numbers of the rest stay as they are.
		text += "\n[s2s]\nlisten = [\"127.0.0.1:0\"]\n"
	}
	if testBackend(t) == backendPostgres && !strings.Contains(extra, "[storage]") {
		text += postgresTable(t) // last too
	}
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	createDB(t, filepath.Join(dir, "data"))
	return file, dir
}

// createDB creates an empty database in dataDir, as the first start of
// serve does; the admin commands need one.
func createDB(t testing.TB, dataDir string) {
	t.Helper()
	st, err := bbolt.Open(filepath.Join(dataDir, "kiez.db"), bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// kiezd runs one command to completion.
func kiezd(t testing.TB, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	code = run(context.Background(), args, env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut})
	return code, out.String(), errOut.String()
}

// daemon is a kiezd serve running in the test.
type daemon struct {
	bound  bound
	sigs   chan os.Signal
	done   chan int
	stderr *syncBuffer
	code   int
	ended  bool
}

// startServe runs `kiezd args... serve` until the test stops it, and
// waits until it listens. If it exits first, it returns the daemon with
// ended set.
func startServe(t *testing.T, stderr *syncBuffer, args ...string) *daemon {
	t.Helper()
	return startServeWith(t, stderr, nil, args...)
}

// startServeWith is startServe with modules added to the configured ones.
func startServeWith(t *testing.T, stderr *syncBuffer, mods []server.Module, args ...string) *daemon {
	t.Helper()
	if stderr == nil {
		stderr = new(syncBuffer)
	}
	d := &daemon{sigs: make(chan os.Signal, 1), done: make(chan int, 1), stderr: stderr}
	ready := make(chan bound, 1)
	e := env{
		stdin:   strings.NewReader(""),
		stdout:  stderr,
		stderr:  stderr,
		signals: func() (<-chan os.Signal, func()) { return d.sigs, func() {} },
		ready:   func(b bound) { ready <- b },
		modules: mods,
	}
	go func() { d.done <- run(context.Background(), append(args, "serve"), e) }()
	select {
	case d.bound = <-ready:
		t.Cleanup(func() { d.stop(t) })
	case d.code = <-d.done:
		d.ended = true
	case <-time.After(10 * time.Second):
		t.Fatalf("kiezd serve did not start; stderr:\n%s", stderr)
	}
	return d
}

// stop sends SIGTERM and returns the exit code.
func (d *daemon) stop(t *testing.T) int {
	t.Helper()
	if d.ended {
		return d.code
	}
	d.sigs <- syscall.SIGTERM
	select {
	case d.code = <-d.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("kiezd serve did not stop; stderr:\n%s", d.stderr)
	}
	d.ended = true
	return d.code
}

// clientTLS accepts kiezd's self-signed certificate for localhost.
func clientTLS() *tls.Config {
	return &tls.Config{ServerName: "localhost", InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
}

// login connects with mellium's client to a STARTTLS listener, or to a
// direct TLS one if direct is set, authenticates with SCRAM-SHA-256 and
// binds a resource.
func login(t *testing.T, addr net.Addr, direct bool, user, password string) (*xmpp.Session, error) {
	t.Helper()
	// Cancelled only when the test ends: mellium v0.22 sets a write
	// deadline in the past if the context ends while its watcher runs.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	var conn net.Conn
	var err error
	features := []xmpp.StreamFeature{xmpp.SASL("", password, sasl.ScramSha256), xmpp.BindResource()}
	if direct {
		cfg := clientTLS()
		cfg.NextProtos = []string{"xmpp-client"}
		conn, err = tls.Dial("tcp", addr.String(), cfg)
	} else {
		conn, err = net.Dial("tcp", addr.String())
		features = append([]xmpp.StreamFeature{xmpp.StartTLS(clientTLS())}, features...)
	}
	if err != nil {
		return nil, err
	}
	sess, err := xmpp.NewClientSession(ctx, jid.MustParse(user), conn, features...)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return sess, nil
}

// logout closes the stream and the connection.
func logout(sess *xmpp.Session) {
	sess.Close()
	sess.Conn().Close()
}

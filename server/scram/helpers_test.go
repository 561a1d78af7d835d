package scram_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage"
)

const (
	testDomain   = "kiez.test"
	testPassword = "pencil"
)

// testUsers are the accounts every test server knows; "a,b=c" exercises
// saslname escaping and "jürgen" non-ASCII names.
var testUsers = []string{"user", "a,b=c", "jürgen"}

// testKeys derives credentials once per test binary: each user shares the
// password but not the salt.
var testKeys = sync.OnceValue(func() map[string]map[storage.Hash]storage.SCRAMKeys {
	all := make(map[string]map[storage.Hash]storage.SCRAMKeys)
	for _, u := range testUsers {
		k, err := scram.NewAllKeys(testPassword, scram.MinIterations)
		if err != nil {
			panic(err)
		}
		all[u] = k
	}
	return all
})

// mechHash returns the storage hash a mechanism uses.
func mechHash(mech string) storage.Hash {
	switch mech {
	case scram.MechSHA1, scram.MechSHA1Plus:
		return storage.SHA1
	case scram.MechSHA256, scram.MechSHA256Plus:
		return storage.SHA256
	}
	return storage.SHA512
}

// lookup returns a ServerConfig.Lookup over testKeys for mech's hash.
func lookup(mech string) func(string) (storage.SCRAMKeys, error) {
	h := mechHash(mech)
	return func(username string) (storage.SCRAMKeys, error) {
		k, ok := testKeys()[username][h]
		if !ok {
			return storage.SCRAMKeys{}, fmt.Errorf("user %q: %w", username, storage.ErrNotFound)
		}
		return k, nil
	}
}

// tlsConn holds both ends of one real TLS connection.
type tlsConn struct {
	client, server tls.ConnectionState
	cert           *x509.Certificate // the server's leaf
}

// selfSigned makes an ECDSA P-256 certificate for testDomain.
func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: testDomain},
		DNSNames:              []string{testDomain},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// newTLS performs a real TLS handshake of the given version over a loopback
// TCP connection, with a fresh self-signed certificate, and returns both
// ends' state.
func newTLS(t testing.TB, version uint16) *tlsConn {
	t.Helper()
	cert := selfSigned(t)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		conn *tls.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		s := tls.Server(c, &tls.Config{
			Certificates:           []tls.Certificate{cert},
			MinVersion:             version,
			MaxVersion:             version,
			SessionTicketsDisabled: true,
		})
		done <- result{s, s.Handshake()}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cli := tls.Client(raw, &tls.Config{
		RootCAs:    pool,
		ServerName: testDomain,
		MinVersion: version,
		MaxVersion: version,
	})
	t.Cleanup(func() { cli.Close() })
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.conn.Close() })
	return &tlsConn{client: cli.ConnectionState(), server: r.conn.ConnectionState(), cert: cert.Leaf}
}

// stepFunc is one side of a client in an exchange: it takes the server's
// last message and returns its next one.
type stepFunc func(challenge []byte) ([]byte, error)

func ourClient(c *scram.Client) stepFunc {
	return func(ch []byte) ([]byte, error) {
		resp, _, err := c.Step(ch)
		return resp, err
	}
}

func melliumClient(n *sasl.Negotiator) stepFunc {
	return func(ch []byte) ([]byte, error) {
		_, resp, err := n.Step(ch)
		return resp, err
	}
}

// errClient marks errors that come from the client side.
var errClient = errors.New("client")

// run drives a full exchange: client-first, server-first, client-final,
// server-final, and the client's check of the server signature. Server
// errors are returned as they are; client errors wrap errClient.
func run(srv *scram.Server, cli stepFunc) error {
	first, err := cli(nil)
	if err != nil {
		return fmt.Errorf("%w first: %w", errClient, err)
	}
	sf, done, err := srv.Step(first)
	if err != nil {
		return err
	}
	if done {
		return errors.New("server done after client-first")
	}
	final, err := cli(sf)
	if err != nil {
		return fmt.Errorf("%w final: %w", errClient, err)
	}
	sfin, done, err := srv.Step(final)
	if err != nil {
		return err
	}
	if !done {
		return errors.New("server not done after client-final")
	}
	if _, err := cli(sfin); err != nil {
		return fmt.Errorf("%w verify: %w", errClient, err)
	}
	return nil
}

// condition returns the Failure condition of err, or "" if err is nil,
// or err's text if it is no Failure.
func condition(err error) string {
	if err == nil {
		return ""
	}
	var f *scram.Failure
	if errors.As(err, &f) {
		return f.Condition
	}
	return "not a Failure: " + err.Error()
}

func creds(user, pass, authzid string) sasl.Option {
	return sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(user), []byte(pass), []byte(authzid)
	})
}

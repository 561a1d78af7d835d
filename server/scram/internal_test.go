package scram

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"math/big"
	"testing"

	"github.com/kiez-im/kiez/storage"
)

// TestVectors replays the exchanges of RFC 5802 §5 (SCRAM-SHA-1) and
// RFC 7677 §3 (SCRAM-SHA-256), with their nonces, through our Server and
// Client.
func TestVectors(t *testing.T) {
	tests := []struct {
		mech, salt, cnonce, snonce string
		clientFirst, serverFirst   string
		clientFinal, serverFinal   string
	}{
		{
			mech: MechSHA1, salt: "QSXCR+Q6sek8bf92",
			cnonce: "fyko+d2lbbFgONRv9qkxdawL", snonce: "3rfcNHYJY1ZVvWVs7j",
			clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
		},
		{
			mech: MechSHA256, salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
			cnonce: "rOprNGfwEbeRWgbNEkqO", snonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
			clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
			serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		},
	}
	for _, tc := range tests {
		t.Run(tc.mech, func(t *testing.T) {
			h, _, _ := parseMechanism(tc.mech)
			fn := hashFunc(h)
			salt, _ := base64.StdEncoding.DecodeString(tc.salt)
			stored, server, err := deriveKeys(fn, "pencil", salt, 4096)
			if err != nil {
				t.Fatal(err)
			}
			keys := storage.SCRAMKeys{Salt: salt, Iterations: 4096, StoredKey: stored, ServerKey: server}

			srv, err := NewServer(tc.mech, ServerConfig{Lookup: func(string) (storage.SCRAMKeys, error) { return keys, nil }})
			if err != nil {
				t.Fatal(err)
			}
			srv.snonce = tc.snonce
			cli, err := NewClient(tc.mech, "user", "pencil", "", nil, "")
			if err != nil {
				t.Fatal(err)
			}
			cli.nonce = tc.cnonce

			step := func(name string, got []byte, err error, want string) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if string(got) != want {
					t.Fatalf("%s = %q, want %q", name, got, want)
				}
			}
			cf, _, err := cli.Step(nil)
			step("client-first", cf, err, tc.clientFirst)
			sf, _, err := srv.Step(cf)
			step("server-first", sf, err, tc.serverFirst)
			cfin, _, err := cli.Step(sf)
			step("client-final", cfin, err, tc.clientFinal)
			sfin, done, err := srv.Step(cfin)
			step("server-final", sfin, err, tc.serverFinal)
			if !done {
				t.Fatal("server not done")
			}
			if _, done, err := cli.Step(sfin); err != nil || !done {
				t.Fatalf("client: done %v, %v", done, err)
			}
			if !VerifyPlain(keys, h, "pencil") {
				t.Error("VerifyPlain rejects the vector's password")
			}
		})
	}
}

func TestSaslname(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"user", "user", true},
		{"a=2Cb=3Dc", "a,b=c", true},
		{"=3D=2C", "=,", true},
		{"=3d", "", false},
		{"a=", "", false},
		{"a=2", "", false},
		{"a=41", "", false},
		{"", "", false},
		{"a\x00b", "", false},
		{"\xff", "", false},
	}
	for _, tc := range tests {
		got, err := unescapeSaslname(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("unescapeSaslname(%q) = %q, %v", tc.in, got, err)
		}
		if tc.ok && escapeSaslname(got) != tc.in {
			t.Errorf("escapeSaslname(%q) = %q, want %q", got, escapeSaslname(got), tc.in)
		}
	}
}

func TestParseCount(t *testing.T) {
	for in, want := range map[string]int{"4096": 4096, "1": 1, "2147483647": 2147483647} {
		if got, ok := parseCount(in); !ok || got != want {
			t.Errorf("parseCount(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "0", "04096", "-1", "+1", "2147483648", "99999999999", "1e3", "４"} {
		if _, ok := parseCount(in); ok {
			t.Errorf("parseCount(%q) succeeded", in)
		}
	}
}

// TestEndPointHash checks the hash choice of RFC 5929 §4.1.
func TestEndPointHash(t *testing.T) {
	ecKey := func(c elliptic.Curve) any {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  any
		alg  x509.SignatureAlgorithm
		sum  func([]byte) []byte
	}{
		{"ECDSA SHA-256", ecKey(elliptic.P256()), x509.ECDSAWithSHA256, func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
		{"ECDSA SHA-384", ecKey(elliptic.P384()), x509.ECDSAWithSHA384, func(b []byte) []byte { s := sha512.Sum384(b); return s[:] }},
		{"ECDSA SHA-512", ecKey(elliptic.P521()), x509.ECDSAWithSHA512, func(b []byte) []byte { s := sha512.Sum512(b); return s[:] }},
		{"RSA SHA-256", rsaKey, x509.SHA256WithRSA, func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
		{"RSA-PSS SHA-384", rsaKey, x509.SHA384WithRSAPSS, func(b []byte) []byte { s := sha512.Sum384(b); return s[:] }},
		{"Ed25519", edKey, x509.PureEd25519, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			signer := tc.key.(crypto.Signer)
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), SignatureAlgorithm: tc.alg}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), tc.key)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			got, err := endPointHash(cert)
			if tc.sum == nil {
				if err == nil {
					t.Fatal("no error for a certificate without a single hash")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(tc.sum(cert.Raw)) {
				t.Error("wrong hash")
			}
		})
	}
	// SHA-1 certificates are hashed with SHA-256; x509 no longer signs
	// them, so set the algorithm on a parsed certificate.
	cert := &x509.Certificate{Raw: []byte("certificate"), SignatureAlgorithm: x509.SHA1WithRSA}
	got, err := endPointHash(cert)
	want := sha256.Sum256(cert.Raw)
	if err != nil || string(got) != string(want[:]) {
		t.Errorf("SHA-1 certificate: %x, %v", got, err)
	}
}

// TestHandMadeConnectionState checks that a ConnectionState that did not
// come from a handshake fails cleanly instead of panicking.
func TestHandMadeConnectionState(t *testing.T) {
	cs := &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true}
	srv, err := NewServer(MechSHA256Plus, ServerConfig{
		Lookup: func(string) (storage.SCRAMKeys, error) { return storage.SCRAMKeys{}, storage.ErrNotFound },
		TLS:    cs,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = srv.Step([]byte("p=tls-exporter,,n=user,r=abc"))
	if f, ok := err.(*Failure); !ok || f.Condition != MalformedRequest {
		t.Fatalf("got %v", err)
	}
}

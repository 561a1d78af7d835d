// Package scram implements the SASL SCRAM mechanisms (RFC 5802, RFC 7677)
// for Kiez: a server that works only from the StoredKey and ServerKey kept in
// storage.SCRAMKeys (never from a password or a SaltedPassword), PLAIN
// (RFC 4616) verification against the same keys, and a client used by tests
// and provisioning tools.
//
// The mechanisms are SCRAM-SHA-1, SCRAM-SHA-256 and SCRAM-SHA-512, each also
// with channel binding (the -PLUS variants) over tls-exporter (RFC 9266, TLS
// 1.3 only), tls-server-end-point (RFC 5929 §4) and tls-unique (RFC 5929 §3,
// TLS 1.2 and below only).
//
// A SASL exchange on the server side is:
//
//	srv, err := scram.NewServer(mechanism, scram.ServerConfig{...})
//	// err is a *Failure: answer <failure/> with its Condition.
//	challenge, done, err := srv.Step(initialResponse) // server-first-message
//	// send challenge in <challenge/>, read the client's <response/>
//	additional, done, err := srv.Step(response) // server-final-message
//	// done: send additional in <success/>, the user is srv.Username().
//
// Every error from NewServer and Step is a *Failure whose Condition is one of
// the RFC 6120 §6.5 conditions defined here, except for a nil
// ServerConfig.Lookup, which is a programming error.
package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"

	"github.com/kiez-im/kiez/storage"
)

// Names of the SASL mechanisms this package implements. The -PLUS variants
// use channel binding.
const (
	MechSHA1       = "SCRAM-SHA-1"
	MechSHA1Plus   = "SCRAM-SHA-1-PLUS"
	MechSHA256     = "SCRAM-SHA-256"
	MechSHA256Plus = "SCRAM-SHA-256-PLUS"
	MechSHA512     = "SCRAM-SHA-512"
	MechSHA512Plus = "SCRAM-SHA-512-PLUS"
)

// Iteration counts for PBKDF2.
//
// MinIterations is the floor RFC 5802 §5.1 and RFC 7677 §4 recommend; NewKeys
// refuses less and Client refuses servers that ask for less.
// DefaultIterations is used for every hash when NewKeys is given zero. The
// same count is used for SHA-1, SHA-256 and SHA-512 because a SCRAM client
// pays for the iterations at every login (it cannot cache the SaltedPassword
// without keeping a password equivalent), so the count is a compromise
// between offline-attack cost and login latency on slow devices, the same
// choice Prosody makes.
const (
	MinIterations     = 4096
	DefaultIterations = 10000
)

// saltLen is the length of the random salts NewKeys generates and of the
// decoy salts shown for unknown users.
const saltLen = 16

// ErrInvalidPassword is returned, wrapped, by NewKeys and NewAllKeys for a
// password that is empty, not valid UTF-8, or not allowed by the PRECIS
// OpaqueString profile.
var ErrInvalidPassword = errors.New("scram: invalid password")

var (
	clientKeyLabel = []byte("Client Key")
	serverKeyLabel = []byte("Server Key")
)

// hashFunc returns the hash function for h, or nil if h is unknown.
func hashFunc(h storage.Hash) func() hash.Hash {
	switch h {
	case storage.SHA1:
		return sha1.New
	case storage.SHA256:
		return sha256.New
	case storage.SHA512:
		return sha512.New
	}
	return nil
}

// hashSize returns the size of h's sums, or 0 if h is unknown.
func hashSize(h storage.Hash) int {
	switch h {
	case storage.SHA1:
		return sha1.Size
	case storage.SHA256:
		return sha256.Size
	case storage.SHA512:
		return sha512.Size
	}
	return 0
}

// parseMechanism splits a mechanism name into its hash and whether it uses
// channel binding.
func parseMechanism(name string) (h storage.Hash, plus bool, ok bool) {
	base, plus := strings.CutSuffix(name, "-PLUS")
	switch base {
	case MechSHA1:
		return storage.SHA1, plus, true
	case MechSHA256:
		return storage.SHA256, plus, true
	case MechSHA512:
		return storage.SHA512, plus, true
	}
	return "", false, false
}

// preparePassword normalises a password with the PRECIS OpaqueString profile
// (RFC 8265 §4), the successor of SASLprep (RFC 4013): non-ASCII spaces
// become U+0020, the string is put in Unicode NFC, and empty strings, invalid
// UTF-8 and disallowed code points (controls, for instance) are rejected.
// Printable ASCII passwords are left unchanged, so clients that do not
// prepare passwords (such as mellium.im/sasl) still interoperate for them.
func preparePassword(password string) (string, error) {
	if password == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidPassword)
	}
	if !utf8.ValidString(password) {
		return "", fmt.Errorf("%w: not UTF-8", ErrInvalidPassword)
	}
	p, err := precis.OpaqueString.String(password)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidPassword, err)
	}
	return p, nil
}

// NewKeys derives the SCRAM credentials of a password for hash h (RFC 5802
// §3): a fresh random 16-byte salt, SaltedPassword = PBKDF2-HMAC-h(password,
// salt, iterations), StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
// ServerKey = HMAC(SaltedPassword, "Server Key"). Only the salt, the count
// and the two keys are returned.
//
// The password is first prepared with the PRECIS OpaqueString profile
// (RFC 8265 §4.2): non-ASCII spaces are mapped to U+0020 and the result is
// normalised to NFC; an empty password, invalid UTF-8 and disallowed code
// points yield an error wrapping ErrInvalidPassword. Zero iterations means
// DefaultIterations; fewer than MinIterations is an error.
func NewKeys(password string, h storage.Hash, iterations int) (storage.SCRAMKeys, error) {
	fn := hashFunc(h)
	if fn == nil {
		return storage.SCRAMKeys{}, fmt.Errorf("scram: unknown hash %q", h)
	}
	if iterations == 0 {
		iterations = DefaultIterations
	}
	if iterations < MinIterations {
		return storage.SCRAMKeys{}, fmt.Errorf("scram: %d iterations, want at least %d", iterations, MinIterations)
	}
	p, err := preparePassword(password)
	if err != nil {
		return storage.SCRAMKeys{}, err
	}
	salt := make([]byte, saltLen)
	rand.Read(salt)
	storedKey, serverKey, err := deriveKeys(fn, p, salt, iterations)
	if err != nil {
		return storage.SCRAMKeys{}, err
	}
	return storage.SCRAMKeys{
		Salt:       salt,
		Iterations: iterations,
		StoredKey:  storedKey,
		ServerKey:  serverKey,
	}, nil
}

// NewAllKeys derives credentials for SHA-1, SHA-256 and SHA-512 at once, each
// with its own salt, as NewKeys does. The result suits storage.Account.Keys
// and storage.Accounts.SetKeys.
func NewAllKeys(password string, iterations int) (map[storage.Hash]storage.SCRAMKeys, error) {
	all := make(map[storage.Hash]storage.SCRAMKeys, 3)
	for _, h := range []storage.Hash{storage.SHA1, storage.SHA256, storage.SHA512} {
		k, err := NewKeys(password, h, iterations)
		if err != nil {
			return nil, err
		}
		all[h] = k
	}
	return all, nil
}

// VerifyPlain reports whether password matches keys for hash h, as needed
// for the PLAIN mechanism: it recomputes StoredKey from the prepared password
// and compares it in constant time. It runs PBKDF2, so it costs as much as a
// client's SCRAM login. Malformed keys, an unknown hash or an invalid
// password yield false.
//
// For an unknown user, call VerifyPlain with DecoyKeys so that the answer
// takes as long as for a real one.
func VerifyPlain(keys storage.SCRAMKeys, h storage.Hash, password string) bool {
	fn := hashFunc(h)
	if fn == nil || validKeys(keys, fn().Size()) != nil {
		return false
	}
	p, err := preparePassword(password)
	if err != nil {
		return false
	}
	storedKey, _, err := deriveKeys(fn, p, keys.Salt, keys.Iterations)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(storedKey, keys.StoredKey) == 1
}

// deriveKeys computes StoredKey and ServerKey from a prepared password.
func deriveKeys(fn func() hash.Hash, password string, salt []byte, iterations int) (storedKey, serverKey []byte, err error) {
	storedKey, serverKey, _, err = clientKeys(fn, password, salt, iterations)
	return storedKey, serverKey, err
}

// clientKeys computes StoredKey, ServerKey and ClientKey from a prepared
// password (RFC 5802 §3).
func clientKeys(fn func() hash.Hash, password string, salt []byte, iterations int) (storedKey, serverKey, clientKey []byte, err error) {
	salted, err := pbkdf2.Key(fn, password, salt, iterations, fn().Size())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("scram: pbkdf2: %w", err)
	}
	clientKey = hmacSum(fn, salted, clientKeyLabel)
	return hashSum(fn, clientKey), hmacSum(fn, salted, serverKeyLabel), clientKey, nil
}

// validKeys checks that stored credentials fit a hash of the given size.
func validKeys(k storage.SCRAMKeys, size int) error {
	switch {
	case len(k.Salt) == 0:
		return errors.New("scram: stored keys have no salt")
	case k.Iterations <= 0:
		return errors.New("scram: stored keys have no iteration count")
	case len(k.StoredKey) != size || len(k.ServerKey) != size:
		return errors.New("scram: stored keys do not match the hash size")
	}
	return nil
}

func hmacSum(fn func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(fn, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func hashSum(fn func() hash.Hash, b []byte) []byte {
	h := fn()
	h.Write(b)
	return h.Sum(nil)
}

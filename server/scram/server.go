package scram

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/kiez-im/kiez/storage"
)

// ServerConfig configures one server-side SCRAM exchange.
type ServerConfig struct {
	// Lookup returns the stored credentials of username for the hash of the
	// exchange's mechanism. username is the SCRAM username as the client
	// sent it, unescaped; Lookup applies any normalisation (such as the
	// localpart's PRECIS profile) itself. For an unknown user, or a user
	// without keys for that hash, it returns an error wrapping
	// storage.ErrNotFound: the exchange then goes on with decoy
	// credentials (see Decoy) and fails at the proof, exactly as a wrong
	// password does. Any other error
	// fails with TemporaryAuthFailure. Lookup must not be nil.
	//
	// Decoy, if set, is used there instead of DecoyKeys.
	Lookup func(username string) (storage.SCRAMKeys, error)

	// Domain is the server's domain. An authzid other than
	// username@Domain fails with InvalidAuthzid; with no Domain, every
	// non-empty authzid does.
	Domain string

	// TLS is the state of the connection's TLS session, or nil without
	// TLS. The -PLUS mechanisms need it.
	TLS *tls.ConnectionState

	// Certificate is the leaf certificate the server presented on this
	// connection, for tls-server-end-point. Without it, that type is
	// refused.
	Certificate *x509.Certificate

	// PlusAdvertised tells whether the -PLUS mechanisms were offered to this
	// client. If so, a client that says it supports channel binding but
	// thinks the server does not (gs2 flag 'y') is being downgraded, and the
	// exchange fails with NotAuthorized (RFC 5802 §6).
	PlusAdvertised bool

	// Decoy returns the credentials shown for username (as the client
	// sent it, unescaped) when Lookup does not find it; it applies the
	// same normalisation as Lookup, so that every spelling of a name gets
	// the same decoy, and should use a secret kept across restarts and an
	// iteration count that real accounts have (see DecoyKeys). Nil means
	// DecoyKeys with a secret random per process and DefaultIterations,
	// which a restart or a changed iteration count can give away.
	Decoy func(username string, h storage.Hash) storage.SCRAMKeys
}

type serverState int

const (
	awaitClientFirst serverState = iota
	awaitClientFinal
	succeeded
	failed
)

// Server is the server side of one SCRAM exchange. It is not safe for
// concurrent use; make one per authentication attempt.
type Server struct {
	cfg  ServerConfig
	mech string
	hash storage.Hash
	fn   func() hash.Hash
	size int // of fn's sums
	plus bool

	state       serverState
	first       clientFirst
	cbData      []byte // channel binding data, nil without binding
	keys        storage.SCRAMKeys
	serverFirst string
	nonce       string // c-nonce + s-nonce
	snonce      string // set by tests only; random otherwise
}

// NewServer starts a server-side exchange for mechanism mech, one of the
// Mech constants. An unknown name fails with InvalidMechanism, and a -PLUS
// mechanism without cfg.TLS with EncryptionRequired.
func NewServer(mech string, cfg ServerConfig) (*Server, error) {
	if cfg.Lookup == nil {
		return nil, errors.New("scram: ServerConfig.Lookup is nil")
	}
	h, plus, ok := parseMechanism(mech)
	if !ok {
		return nil, fail(InvalidMechanism, "unsupported mechanism")
	}
	if plus && (cfg.TLS == nil || !cfg.TLS.HandshakeComplete) {
		return nil, fail(EncryptionRequired, "channel binding needs TLS")
	}
	return &Server{cfg: cfg, mech: mech, hash: h, fn: hashFunc(h), size: hashSize(h), plus: plus}, nil
}

// Step takes the client's next message and returns the server's answer.
// The first call takes the client-first-message (the initial response; if
// the client sent none, send it an empty challenge and pass its answer) and
// returns the server-first-message to send in a <challenge/>. The second
// takes the client-final-message and, on success, returns done and the
// server-final-message to send as additional data in <success/>.
//
// Errors are *Failure values; after one, or after success, Step only fails.
func (s *Server) Step(msg []byte) (resp []byte, done bool, err error) {
	var f *Failure
	switch s.state {
	case awaitClientFirst:
		resp, f = s.stepFirst(msg)
		s.state = awaitClientFinal
	case awaitClientFinal:
		resp, f = s.stepFinal(msg)
		s.state = succeeded
		done = f == nil
	default:
		f = malformed("exchange already finished")
	}
	if f != nil {
		s.state = failed
		return nil, false, f
	}
	return resp, done, nil
}

func (s *Server) stepFirst(msg []byte) ([]byte, *Failure) {
	m, f := parseClientFirst(msg)
	if f != nil {
		return nil, f
	}
	switch {
	case s.plus && m.flag != 'p':
		return nil, malformed(s.mech + " needs channel binding")
	case !s.plus && m.flag == 'p':
		return nil, malformed("channel binding needs a -PLUS mechanism")
	case !s.plus && m.flag == 'y' && s.cfg.PlusAdvertised:
		return nil, fail(NotAuthorized, "channel binding is supported")
	}
	if m.flag == 'p' {
		var err error
		if s.cbData, err = bindingData(s.cfg.TLS, s.cfg.Certificate, m.cbName); err != nil {
			return nil, &Failure{Condition: MalformedRequest, Text: "unsupported channel binding type", Err: fmt.Errorf("%w: %w", ErrUnsupportedBinding, err)}
		}
	}
	if m.authzid != "" && !s.authzidOK(m.authzid, m.username) {
		return nil, fail(InvalidAuthzid, "authzid does not match the username")
	}

	keys, err := s.cfg.Lookup(m.username)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if s.cfg.Decoy != nil {
			keys = s.cfg.Decoy(m.username, s.hash)
		} else {
			keys = DecoyKeys(processSecret(), m.username, s.hash, 0)
		}
	case err != nil:
		return nil, &Failure{Condition: TemporaryAuthFailure, Err: err}
	}
	if err := validKeys(keys, s.size); err != nil {
		return nil, &Failure{Condition: TemporaryAuthFailure, Err: err}
	}

	snonce := s.snonce
	if snonce == "" {
		b := make([]byte, 24)
		rand.Read(b)
		snonce = encodeBase64(b)
	}
	s.first = m
	s.keys = keys
	s.nonce = m.nonce + snonce
	s.serverFirst = "r=" + s.nonce + ",s=" + encodeBase64(keys.Salt) + ",i=" + strconv.Itoa(keys.Iterations)
	return []byte(s.serverFirst), nil
}

// authzidOK reports whether authzid is the bare JID username@Domain.
func (s *Server) authzidOK(authzid, username string) bool {
	local, domain, ok := strings.Cut(authzid, "@")
	return ok && s.cfg.Domain != "" && local == username && strings.EqualFold(domain, s.cfg.Domain)
}

func (s *Server) stepFinal(msg []byte) ([]byte, *Failure) {
	m, f := parseClientFinal(msg)
	if f != nil {
		return nil, f
	}
	size := s.size
	if len(m.proof) != size {
		return nil, malformed("proof has the wrong length")
	}
	if subtle.ConstantTimeCompare([]byte(m.nonce), []byte(s.nonce)) != 1 {
		return nil, fail(NotAuthorized, "nonce mismatch")
	}
	wantCB := append([]byte(s.first.gs2Header), s.cbData...)
	if subtle.ConstantTimeCompare(m.channelBinding, wantCB) != 1 {
		return nil, fail(NotAuthorized, "channel binding mismatch")
	}

	authMessage := make([]byte, 0, len(s.first.bare)+len(s.serverFirst)+len(m.withoutProof)+2)
	authMessage = append(append(append(append(append(authMessage, s.first.bare...), ','), s.serverFirst...), ','), m.withoutProof...)
	clientSignature := hmacSum(s.fn, s.keys.StoredKey, authMessage)
	clientKey := make([]byte, size)
	subtle.XORBytes(clientKey, m.proof, clientSignature)
	if subtle.ConstantTimeCompare(hashSum(s.fn, clientKey), s.keys.StoredKey) != 1 {
		return nil, errAuthFailed()
	}
	serverSignature := hmacSum(s.fn, s.keys.ServerKey, authMessage)
	return []byte("v=" + encodeBase64(serverSignature)), nil
}

// Username returns the authenticated SCRAM username, unescaped, or "" until
// the exchange has succeeded.
func (s *Server) Username() string {
	if s.state != succeeded {
		return ""
	}
	return s.first.username
}

// Authzid returns the authorization identity the client asked for ("" for
// none, meaning the username's own JID), or "" until the exchange has
// succeeded. A non-empty value is always username@Domain.
func (s *Server) Authzid() string {
	if s.state != succeeded {
		return ""
	}
	return s.first.authzid
}

// ChannelBinding returns the channel binding type the exchange used, or ""
// for none or until the exchange has succeeded.
func (s *Server) ChannelBinding() string {
	if s.state != succeeded {
		return ""
	}
	return s.first.cbName
}

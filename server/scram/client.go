package scram

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"

	"mellium.im/sasl"
)

// maxClientIterations caps the PBKDF2 work a server can make Client do.
const maxClientIterations = 10_000_000

// Client is the client side of one SCRAM exchange, for tests, load tests and
// provisioning tools. It is not safe for concurrent use.
type Client struct {
	mech      string
	fn        func() hash.Hash
	username  string
	password  string // prepared
	gs2Header string
	cbData    []byte
	nonce     string // c-nonce

	step            int
	bare            string
	serverSignature []byte
}

// NewClient starts a client-side exchange for mechanism mech as username
// (unescaped; NewClient escapes it) with password, which is prepared as
// NewKeys prepares it. A non-empty authzid asks to act as that identity.
//
// For a -PLUS mechanism, cs is the client's TLS connection state and cbType
// the channel binding type; an empty cbType picks the first of
// ChannelBindingTypes(cs). tls-server-end-point hashes the peer's leaf
// certificate. For the other mechanisms cbType must be empty, and a non-nil
// cs means the client could bind but believes the server cannot: it sends
// the gs2 flag 'y', which a server that advertised -PLUS refuses. Pass a nil
// cs to send 'n'.
func NewClient(mech, username, password, authzid string, cs *tls.ConnectionState, cbType string) (*Client, error) {
	return newClient(mech, username, password, authzid, cs, cbType, cs != nil)
}

// newClient is NewClient with an explicit choice of the 'y' flag for plain
// mechanisms.
func newClient(mech, username, password, authzid string, cs *tls.ConnectionState, cbType string, flagY bool) (*Client, error) {
	h, plus, ok := parseMechanism(mech)
	if !ok {
		return nil, fmt.Errorf("scram: unsupported mechanism %q", mech)
	}
	if username == "" {
		return nil, errors.New("scram: empty username")
	}
	p, err := preparePassword(password)
	if err != nil {
		return nil, err
	}
	c := &Client{mech: mech, fn: hashFunc(h), username: username, password: p}

	var flag string
	switch {
	case plus:
		if cs == nil {
			return nil, errors.New("scram: " + mech + " needs a TLS connection")
		}
		if cbType == "" {
			types := ChannelBindingTypes(cs)
			if len(types) == 0 {
				return nil, errors.New("scram: the TLS connection offers no channel binding")
			}
			cbType = types[0]
		}
		if c.cbData, err = bindingData(cs, peerLeaf(cs), cbType); err != nil {
			return nil, err
		}
		flag = "p=" + cbType
	case cbType != "":
		return nil, errors.New("scram: channel binding needs a -PLUS mechanism")
	case flagY:
		flag = "y"
	default:
		flag = "n"
	}
	c.gs2Header = flag + ","
	if authzid != "" {
		c.gs2Header += "a=" + escapeSaslname(authzid)
	}
	c.gs2Header += ","

	b := make([]byte, 24)
	rand.Read(b)
	c.nonce = encodeBase64(b)
	return c, nil
}

// peerLeaf returns the peer's leaf certificate, if any.
func peerLeaf(cs *tls.ConnectionState) *x509.Certificate {
	if len(cs.PeerCertificates) > 0 {
		return cs.PeerCertificates[0]
	}
	return nil
}

// Step takes the server's next message and returns the client's answer. The
// first call ignores its argument and returns the client-first-message (the
// initial response). The second takes the server-first-message and returns
// the client-final-message. The third takes the server-final-message (the
// additional data of <success/>), verifies the server's signature and
// returns done.
func (c *Client) Step(challenge []byte) (resp []byte, done bool, err error) {
	c.step++
	switch c.step {
	case 1:
		c.bare = "n=" + escapeSaslname(c.username) + ",r=" + c.nonce
		return []byte(c.gs2Header + c.bare), false, nil
	case 2:
		resp, err = c.final(challenge)
		return resp, false, err
	case 3:
		sig, err := parseServerFinal(challenge)
		if err != nil {
			return nil, false, err
		}
		if subtle.ConstantTimeCompare(sig, c.serverSignature) != 1 {
			return nil, false, errors.New("scram: wrong server signature")
		}
		return nil, true, nil
	}
	return nil, false, errors.New("scram: exchange already finished")
}

func (c *Client) final(challenge []byte) ([]byte, error) {
	m, err := parseServerFirst(challenge)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(m.nonce, c.nonce) || len(m.nonce) == len(c.nonce) {
		return nil, errors.New("scram: server nonce does not extend the client nonce")
	}
	if m.iterations < MinIterations || m.iterations > maxClientIterations {
		return nil, fmt.Errorf("scram: server asks for %d iterations", m.iterations)
	}
	storedKey, serverKey, clientKey, err := clientKeys(c.fn, c.password, m.salt, m.iterations)
	if err != nil {
		return nil, err
	}
	cb := append([]byte(c.gs2Header), c.cbData...)
	withoutProof := "c=" + encodeBase64(cb) + ",r=" + m.nonce
	authMessage := []byte(c.bare + "," + string(challenge) + "," + withoutProof)
	proof := hmacSum(c.fn, storedKey, authMessage)
	subtle.XORBytes(proof, proof, clientKey)
	c.serverSignature = hmacSum(c.fn, serverKey, authMessage)
	return []byte(withoutProof + ",p=" + encodeBase64(proof)), nil
}

// ClientMechanism returns a mellium.im/sasl mechanism that runs Client, for
// driving mellium's XMPP client with mechanisms mellium lacks
// (SCRAM-SHA-512, SCRAM-SHA-512-PLUS) or channel binding types it lacks
// (tls-server-end-point). name is one of the Mech constants and cbType a
// channel binding type for -PLUS names, or "" for the first of
// ChannelBindingTypes.
//
// Credentials come from the negotiator's Credentials (username, password,
// identity as authzid), the TLS state from its TLSState. For a plain name
// over TLS, the mechanism sends the 'y' flag when the negotiator's
// RemoteMechanisms are known and lack the -PLUS variant, and 'n' otherwise.
func ClientMechanism(name, cbType string) sasl.Mechanism {
	return sasl.Mechanism{
		Name: name,
		Start: func(n *sasl.Negotiator) (bool, []byte, any, error) {
			user, pass, authzid := n.Credentials()
			cs := n.TLSState()
			remote := n.RemoteMechanisms()
			flagY := cs != nil && len(remote) > 0 && !slices.Contains(remote, name+"-PLUS")
			c, err := newClient(name, string(user), string(pass), string(authzid), cs, cbType, flagY)
			if err != nil {
				return false, nil, nil, err
			}
			resp, _, err := c.Step(nil)
			return true, resp, c, err
		},
		Next: func(_ *sasl.Negotiator, challenge []byte, data any) (bool, []byte, any, error) {
			c, ok := data.(*Client)
			if !ok {
				return false, nil, nil, errors.New("scram: mechanism state lost")
			}
			resp, done, err := c.Step(challenge)
			return !done && err == nil, resp, c, err
		},
	}
}

package main

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// The client side of SCRAM (RFC 5802, RFC 7677) without channel binding,
// written here rather than taken from server/scram or mellium.im/sasl
// because both derive the SaltedPassword (PBKDF2, 10,000 rounds on the
// loadserver) at every login. Real clients keep it instead of the password,
// and on two shared cores a load client that does not would measure its
// own PBKDF2 rather than the server. ../shared/bench does the same.

// scramHashes are the mechanisms the client speaks.
var scramHashes = map[string]func() hash.Hash{
	"SCRAM-SHA-1":   sha1.New,
	"SCRAM-SHA-256": sha256.New,
	"SCRAM-SHA-512": sha512.New,
}

var b64 = base64.StdEncoding

// saltedCache keeps SaltedPassword per mechanism, password, salt and
// iteration count. The loadserver gives every account the same salt, so
// one entry serves all of them.
type saltedCache struct{ m sync.Map }

func (sc *saltedCache) get(mech string, h func() hash.Hash, pass string, salt []byte, iter int) ([]byte, error) {
	key := mech + "\x00" + pass + "\x00" + string(salt) + "\x00" + strconv.Itoa(iter)
	if v, ok := sc.m.Load(key); ok {
		return v.([]byte), nil
	}
	sp, err := pbkdf2.Key(h, pass, salt, iter, h().Size())
	if err != nil {
		return nil, err
	}
	sc.m.Store(key, sp)
	return sp, nil
}

// scram runs the SASL exchange for user with the target's mechanism.
func (c *conn) scram(user, pass string) error {
	mech := c.t.mech
	h := scramHashes[mech]
	nonce := make([]byte, 18)
	rand.Read(nonce)
	cnonce := b64.EncodeToString(nonce)
	bare := "n=" + strings.NewReplacer("=", "=3D", ",", "=2C").Replace(user) + ",r=" + cnonce

	n, err := c.saslStep("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mech + "'>" +
		b64.EncodeToString([]byte("n,,"+bare)) + "</auth>")
	if err != nil {
		return err
	}
	if n.XMLName.Local != "challenge" {
		return &saslFailure{n.condition()}
	}
	first, err := b64.DecodeString(strings.TrimSpace(n.Text))
	if err != nil {
		return fmt.Errorf("scram: challenge: %w", err)
	}
	snonce, salt, iter, err := parseServerFirst(string(first))
	if err != nil {
		return err
	}
	if !strings.HasPrefix(snonce, cnonce) || len(snonce) == len(cnonce) {
		return errors.New("scram: the server nonce does not extend ours")
	}
	salted, err := c.t.salted.get(mech, h, pass, salt, iter)
	if err != nil {
		return err
	}
	clientKey := hmacSum(h, salted, "Client Key")
	storedKey := h()
	storedKey.Write(clientKey)
	withoutProof := "c=biws,r=" + snonce
	authMessage := bare + "," + string(first) + "," + withoutProof
	proof := hmacSum(h, storedKey.Sum(nil), authMessage)
	subtle.XORBytes(proof, proof, clientKey)

	n, err = c.saslStep("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" +
		b64.EncodeToString([]byte(withoutProof+",p="+b64.EncodeToString(proof))) + "</response>")
	if err != nil {
		return err
	}
	if n.XMLName.Local != "success" {
		return &saslFailure{n.condition()}
	}
	final, err := b64.DecodeString(strings.TrimSpace(n.Text))
	if err != nil {
		return fmt.Errorf("scram: success: %w", err)
	}
	want := "v=" + b64.EncodeToString(hmacSum(h, hmacSum(h, salted, "Server Key"), authMessage))
	if subtle.ConstantTimeCompare(final, []byte(want)) != 1 {
		return errors.New("scram: wrong server signature")
	}
	return nil
}

// saslStep sends one SASL element and returns the server's answer.
func (c *conn) saslStep(x string) (*node, error) {
	if err := c.send(x); err != nil {
		return nil, err
	}
	for {
		el, err := c.next()
		if err != nil {
			return nil, err
		}
		switch name(el) {
		case "challenge", "success", "failure":
			return parseNode(el)
		}
	}
}

// parseServerFirst reads the nonce, salt and iteration count of a
// server-first-message.
func parseServerFirst(msg string) (nonce string, salt []byte, iter int, err error) {
	for part := range strings.SplitSeq(msg, ",") {
		if len(part) < 2 || part[1] != '=' {
			continue
		}
		switch v := part[2:]; part[0] {
		case 'r':
			nonce = v
		case 's':
			if salt, err = b64.DecodeString(v); err != nil {
				return "", nil, 0, fmt.Errorf("scram: salt: %w", err)
			}
		case 'i':
			iter, _ = strconv.Atoi(v)
		}
	}
	if nonce == "" || len(salt) == 0 || iter < 1 || iter > 1_000_000 {
		return "", nil, 0, fmt.Errorf("scram: bad server-first-message %q", msg)
	}
	return nonce, salt, iter, nil
}

func hmacSum(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

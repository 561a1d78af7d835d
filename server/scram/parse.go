package scram

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf8"
)

// maxMessageLen bounds every SCRAM message we parse. A localpart is at most
// 1023 bytes, three times that when escaped; nothing legitimate comes close.
const maxMessageLen = 8192

// clientFirst is a parsed client-first-message (RFC 5802 §7).
type clientFirst struct {
	flag      byte   // 'n', 'y' or 'p'
	cbName    string // with flag 'p'
	authzid   string // unescaped, may be empty
	username  string // unescaped
	nonce     string // c-nonce
	gs2Header string // "n,," or "p=tls-exporter,a=x," for instance
	bare      string // client-first-message-bare
}

// parseClientFirst parses
//
//	gs2-header = gs2-cbind-flag "," [ authzid ] ","
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
func parseClientFirst(msg []byte) (clientFirst, *Failure) {
	var m clientFirst
	if err := checkMessage(msg); err != nil {
		return m, err
	}
	s := string(msg)
	flag, rest, ok1 := strings.Cut(s, ",")
	authz, bare, ok2 := strings.Cut(rest, ",")
	if !ok1 || !ok2 {
		return m, malformed("missing GS2 header")
	}
	m.gs2Header = s[:len(s)-len(bare)]
	m.bare = bare
	switch {
	case flag == "n" || flag == "y":
		m.flag = flag[0]
	case strings.HasPrefix(flag, "p="):
		m.flag = 'p'
		m.cbName = flag[2:]
		if !validCBName(m.cbName) {
			return m, malformed("invalid channel binding name")
		}
	default:
		return m, malformed("invalid channel binding flag")
	}
	if authz != "" {
		v, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return m, malformed("invalid authzid attribute")
		}
		var err error
		if m.authzid, err = unescapeSaslname(v); err != nil {
			return m, malformed("invalid authzid")
		}
	}

	fields := strings.Split(bare, ",")
	if strings.HasPrefix(fields[0], "m=") {
		return m, malformed("unsupported mandatory extension")
	}
	if len(fields) < 2 {
		return m, malformed("missing attributes")
	}
	user, ok := strings.CutPrefix(fields[0], "n=")
	if !ok {
		return m, malformed("missing username")
	}
	var err error
	if m.username, err = unescapeSaslname(user); err != nil {
		return m, malformed("invalid username")
	}
	if m.nonce, ok = strings.CutPrefix(fields[1], "r="); !ok || !validNonce(m.nonce) {
		return m, malformed("missing or invalid nonce")
	}
	if f := checkExtensions(fields[2:]); f != nil {
		return m, f
	}
	return m, nil
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	channelBinding []byte // decoded c=
	nonce          string
	proof          []byte // decoded p=
	withoutProof   string // client-final-message-without-proof
}

// parseClientFinal parses
//
//	client-final-message-without-proof = channel-binding "," nonce ["," extensions]
//	client-final-message = client-final-message-without-proof "," proof
func parseClientFinal(msg []byte) (clientFinal, *Failure) {
	var m clientFinal
	if err := checkMessage(msg); err != nil {
		return m, err
	}
	s := string(msg)
	fields := strings.Split(s, ",")
	if len(fields) < 3 {
		return m, malformed("missing attributes")
	}
	cb, ok := strings.CutPrefix(fields[0], "c=")
	if !ok {
		return m, malformed("missing channel binding")
	}
	var err error
	if m.channelBinding, err = decodeBase64(cb); err != nil || len(m.channelBinding) == 0 {
		return m, malformed("invalid channel binding encoding")
	}
	if m.nonce, ok = strings.CutPrefix(fields[1], "r="); !ok || !validNonce(m.nonce) {
		return m, malformed("missing or invalid nonce")
	}
	last := fields[len(fields)-1]
	p, ok := strings.CutPrefix(last, "p=")
	if !ok {
		return m, malformed("missing proof")
	}
	if m.proof, err = decodeBase64(p); err != nil || len(m.proof) == 0 {
		return m, malformed("invalid proof encoding")
	}
	if f := checkExtensions(fields[2 : len(fields)-1]); f != nil {
		return m, f
	}
	m.withoutProof = s[:len(s)-len(last)-1]
	return m, nil
}

// serverFirst is a parsed server-first-message.
type serverFirst struct {
	nonce      string
	salt       []byte
	iterations int
}

// parseServerFirst parses
//
//	server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
func parseServerFirst(msg []byte) (serverFirst, error) {
	var m serverFirst
	if checkMessage(msg) != nil {
		return m, errors.New("scram: malformed server-first-message")
	}
	fields := strings.Split(string(msg), ",")
	if strings.HasPrefix(fields[0], "m=") {
		return m, errors.New("scram: server sent a mandatory extension")
	}
	if len(fields) < 3 {
		return m, errors.New("scram: server-first-message lacks attributes")
	}
	var ok bool
	if m.nonce, ok = strings.CutPrefix(fields[0], "r="); !ok || !validNonce(m.nonce) {
		return m, errors.New("scram: server-first-message lacks a valid nonce")
	}
	s, ok := strings.CutPrefix(fields[1], "s=")
	var err error
	if m.salt, err = decodeBase64(s); !ok || err != nil || len(m.salt) == 0 {
		return m, errors.New("scram: server-first-message lacks a valid salt")
	}
	i, ok := strings.CutPrefix(fields[2], "i=")
	if m.iterations, ok = parseCount(i); !ok {
		return m, errors.New("scram: server-first-message lacks a valid iteration count")
	}
	if checkExtensions(fields[3:]) != nil {
		return m, errors.New("scram: malformed server-first-message extension")
	}
	return m, nil
}

// parseServerFinal parses server-final-message = (server-error / verifier)
// ["," extensions] and returns the decoded verifier.
func parseServerFinal(msg []byte) ([]byte, error) {
	if checkMessage(msg) != nil {
		return nil, errors.New("scram: malformed server-final-message")
	}
	fields := strings.Split(string(msg), ",")
	if e, ok := strings.CutPrefix(fields[0], "e="); ok {
		return nil, errors.New("scram: server error: " + e)
	}
	v, ok := strings.CutPrefix(fields[0], "v=")
	sig, err := decodeBase64(v)
	if !ok || err != nil || len(sig) == 0 {
		return nil, errors.New("scram: server-final-message lacks a valid verifier")
	}
	if checkExtensions(fields[1:]) != nil {
		return nil, errors.New("scram: malformed server-final-message extension")
	}
	return sig, nil
}

// checkMessage rejects empty, oversized and non-UTF-8 messages, and NUL,
// which no SCRAM attribute value may contain.
func checkMessage(msg []byte) *Failure {
	switch {
	case len(msg) == 0:
		return malformed("empty message")
	case len(msg) > maxMessageLen:
		return malformed("message too long")
	case !utf8.Valid(msg):
		return malformed("message is not UTF-8")
	case strings.IndexByte(string(msg), 0) >= 0:
		return malformed("message contains NUL")
	}
	return nil
}

// checkExtensions validates optional extensions (attr-val = ALPHA "=" value),
// which are otherwise ignored. The reserved "m" fails authentication (RFC
// 5802 §5.1), and so do letters the RFC already assigns, to keep one meaning
// per attribute.
func checkExtensions(fields []string) *Failure {
	for _, f := range fields {
		if len(f) < 3 || f[1] != '=' || !isAlpha(f[0]) {
			return malformed("invalid attribute")
		}
		switch f[0] {
		case 'm':
			return malformed("unsupported mandatory extension")
		case 'a', 'c', 'e', 'i', 'n', 'p', 'r', 's', 'v':
			return malformed("duplicate or misplaced attribute")
		}
	}
	return nil
}

// parseCount parses a positive decimal iteration count without signs or
// leading zeros, up to 2^31-1.
func parseCount(s string) (int, bool) {
	if s == "" || len(s) > 10 || s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= 1<<31-1
}

// decodeBase64 decodes strict, padded standard base64. Go's decoder skips
// CR and LF; SCRAM allows neither, so they are rejected first.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("scram: newline in base64")
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

func encodeBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// validNonce reports whether s is a non-empty run of printable ASCII
// characters other than ',' (RFC 5802 §7, "printable").
func validNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validCBName reports whether s is a channel binding type name:
// 1*(ALPHA / DIGIT / "." / "-").
func validCBName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && (c < '0' || c > '9') && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

var saslnameEscaper = strings.NewReplacer("=", "=3D", ",", "=2C")

// escapeSaslname escapes '=' and ',' as "=3D" and "=2C" (RFC 5802 §5.1).
func escapeSaslname(s string) string { return saslnameEscaper.Replace(s) }

// unescapeSaslname decodes a saslname: 1*(value-safe-char / "=2C" / "=3D").
// Any other '=', an empty name, NUL and invalid UTF-8 are errors.
func unescapeSaslname(s string) (string, error) {
	if s == "" || !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return "", errors.New("scram: invalid saslname")
	}
	if strings.IndexByte(s, '=') < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errors.New("scram: invalid escape in saslname")
		}
		i += 2
	}
	return b.String(), nil
}

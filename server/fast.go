package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage"
)

// XEP-0484 Fast Authentication Streamlining Tokens (FAST) on SASL2: a
// client asks for a token (<request-token/>) in one authentication and
// logs in with it later by one of the HT-SHA-256 mechanisms
// (draft-schmaus-kitten-sasl-ht), one round trip and no key stretching,
// with <fast/> in its <authenticate/>.
//
// The store keeps, per account and user agent, two slots as XEP-0484 §5.1
// describes: the token last issued ("new") and the one last used
// ("current"), each as a random id with its mechanism, the days it was
// issued and expires and the highest replay counter seen, in
// storage.ServiceData. The token is an HMAC of the id (and the account,
// user agent and mechanism) under a key: Config.FASTKey if set, kept
// outside the store, so that the store alone yields no usable token;
// otherwise a secret in the store itself (storage.Secrets, fastSecretName),
// so that a leaked store does yield the tokens, or, without
// storage.Secrets, a random key per process (tokens die with it). Tokens
// and keys are never logged.

const (
	nsFAST         = "urn:xmpp:fast:0"
	fastNamespace  = "fast"       // the ServiceData namespace
	fastSecretName = "fast-token" // the storage.Secrets name of the key without Config.FASTKey
	// fastLifetime is a token's validity from the day it was issued,
	// as Prosody's sasl2_fast_token_ttl. A token used on a later day than
	// its issue is replaced, as Prosody's sasl2_fast_token_min_ttl (a
	// day) has it; the store keeps days, not login times.
	fastLifetime = 21 * 24 * time.Hour
	// fastMinKey is the fewest bytes Config.FASTKey may have.
	fastMinKey = 32
)

// The HT-SHA-256 mechanisms, strongest first, with the channel binding
// type each uses ("" for none).
var htMechs = []struct{ name, cb string }{
	{"HT-SHA-256-EXPR", scram.TLSExporter},
	{"HT-SHA-256-ENDP", scram.TLSServerEndPoint},
	{"HT-SHA-256-UNIQ", scram.TLSUnique},
	{"HT-SHA-256-NONE", ""},
}

// htBinding returns the channel binding type of the HT mechanism mech,
// and whether mech is one.
func htBinding(mech string) (string, bool) {
	for _, m := range htMechs {
		if m.name == mech {
			return m.cb, true
		}
	}
	return "", false
}

// fastMechanisms returns the HT mechanisms this stream can run: those
// whose channel binding type it offers, and HT-SHA-256-NONE.
func (c *conn) fastMechanisms() []string {
	var ms []string
	for _, m := range htMechs {
		ok := m.cb == ""
		for _, t := range c.cbTypes {
			ok = ok || t == m.cb
		}
		if ok {
			ms = append(ms, m.name)
		}
	}
	return ms
}

// fastOffered reports whether mech is an HT mechanism this stream runs.
func (c *conn) fastOffered(mech string) bool {
	for _, m := range c.fastMechanisms() {
		if m == mech {
			return true
		}
	}
	return false
}

// appendFAST appends the <fast/> inline feature of SASL2, if FAST is on.
// No 'tls-0rtt': the server takes no TLS early data.
func (c *conn) appendFAST(b []byte) []byte {
	if c.srv.fast == nil {
		return b
	}
	b = append(b, `<fast xmlns='urn:xmpp:fast:0'>`...)
	for _, m := range c.fastMechanisms() {
		b = append(b, "<mechanism>"...)
		b = append(b, m...)
		b = append(b, "</mechanism>"...)
	}
	return append(b, `</fast>`...)
}

// fastTokens issues and checks FAST tokens; nil when the store keeps no
// ServiceData.
type fastTokens struct {
	key []byte
	sd  storage.ServiceData
	// locks serialise the read, check and write of one record (by a hash
	// of its key) within the process: two logins with one count, or a
	// login and an invalidation, do not both act on what they read.
	locks [64]sync.Mutex
	// skew is added to the time, by tests that age tokens.
	skew atomic.Int64
}

// lock locks the record at key and returns its unlock.
func (f *fastTokens) lock(key string) func() {
	h := fnv.New32a()
	h.Write([]byte(key))
	m := &f.locks[h.Sum32()%uint32(len(f.locks))]
	m.Lock()
	return m.Unlock
}

// now returns the time tokens are issued and checked at.
func (f *fastTokens) now() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) }

// fastSlot is one token in the store: its id (hex), never the token.
type fastSlot struct {
	ID   string `json:"i"`
	Mech string `json:"m"`
	// Issued is the UTC day the token was issued (no time of day, as
	// for the accounts' days: the store tells no login time), Exp that
	// day plus fastLifetime.
	Issued time.Time `json:"t"`
	Exp    time.Time `json:"e"`
	// Count is the highest XEP-0484 'count' a login with the token
	// gave, nil before the first.
	Count *uint64 `json:"n,omitempty"`
}

// fastRecord is what the store keeps per account and user agent.
type fastRecord struct {
	New *fastSlot `json:"new,omitempty"` // issued, not used yet
	Cur *fastSlot `json:"cur,omitempty"` // the last used
}

func newFASTTokens(ctx context.Context, accounts storage.Accounts, key []byte) (*fastTokens, error) {
	sd, ok := accounts.(storage.ServiceData)
	if !ok {
		return nil, nil
	}
	f := &fastTokens{sd: sd}
	switch st, ok := accounts.(storage.Secrets); {
	case len(key) > 0:
		if len(key) < fastMinKey {
			return nil, fmt.Errorf("server: FASTKey has %d bytes, fewer than %d", len(key), fastMinKey)
		}
		f.key = key
	case ok:
		s, err := st.Secret(ctx, fastSecretName, 32)
		if err != nil {
			return nil, fmt.Errorf("server: FAST key: %w", err)
		}
		f.key = s
	default:
		f.key = make([]byte, 32)
		rand.Read(f.key)
	}
	return f, nil
}

// fastKey is the ServiceData key of user's (bare JID) tokens for the user
// agent id ua: the user first, so that a prefix scan finds all of them.
func fastKey(user, ua string) string {
	h := sha256.Sum256([]byte(ua))
	return user + "/" + hex.EncodeToString(h[:])
}

// token derives the token of slot s of the record at key.
func (f *fastTokens) token(key string, s *fastSlot) []byte {
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte("kiez FAST token\x00" + key + "\x00" + s.Mech + "\x00" + s.ID))
	return []byte(base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
}

// load returns the record at key; a record it cannot read (of an older
// format) counts as none.
func (f *fastTokens) load(ctx context.Context, key string) (fastRecord, error) {
	var r fastRecord
	v, _, err := f.sd.ServiceValue(ctx, fastNamespace, key)
	if err != nil {
		return r, err
	}
	if json.Unmarshal(v, &r) != nil {
		return fastRecord{}, storage.ErrNotFound
	}
	return r, nil
}

// store writes r at key, or deletes it when it holds no token.
func (f *fastTokens) store(ctx context.Context, key string, r fastRecord) error {
	var exp time.Time
	for _, s := range []*fastSlot{r.New, r.Cur} {
		if s != nil && s.Exp.After(exp) {
			exp = s.Exp
		}
	}
	if exp.IsZero() {
		err := f.sd.DeleteServiceValue(ctx, fastNamespace, key)
		if errors.Is(err, storage.ErrNotFound) {
			err = nil
		}
		return err
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return f.sd.PutServiceValue(ctx, fastNamespace, key, v, exp)
}

// newToken puts a new token for mech into r's new slot, replacing a token
// issued before and never used (XEP-0484 §3.5), and returns the <token/>
// element for <success/>.
func (f *fastTokens) newToken(key string, r *fastRecord, mech string, now time.Time) string {
	id := make([]byte, 16)
	rand.Read(id)
	day := storage.Day(now)
	r.New = &fastSlot{ID: hex.EncodeToString(id), Mech: mech, Issued: day, Exp: day.Add(fastLifetime)}
	return `<token xmlns='` + nsFAST + `' expiry='` + r.New.Exp.UTC().Format(time.RFC3339) +
		`' token='` + string(f.token(key, r.New)) + `'/>`
}

// requestedToken issues the token a password login asked for with
// <request-token/>, and returns its <token/>. A failing store leaves the
// token out (logged): the login goes on without it.
func (c *conn) requestedToken(req authenticateRequest, u jid.JID) string {
	f := c.srv.fast
	if f == nil || req.requestToken == "" {
		return ""
	}
	if req.userAgent == "" || !c.fastOffered(req.requestToken) {
		c.srv.log.Debug("FAST token request without a user agent id or for a mechanism not offered")
		return ""
	}
	key := fastKey(u.String(), req.userAgent)
	defer f.lock(key)()
	r, err := f.load(c.ctx, key)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		c.srv.log.Warn("reading FAST tokens failed; no token issued", "err", err)
		return ""
	}
	tok := f.newToken(key, &r, req.requestToken, f.now())
	if err := f.store(c.ctx, key, r); err != nil {
		c.srv.log.Warn("storing a FAST token failed; none issued", "err", err)
		return ""
	}
	return tok
}

// fastHMAC returns HMAC-SHA-256(token, label || cb).
func fastHMAC(token []byte, label string, cb []byte) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(label))
	m.Write(cb)
	return m.Sum(nil)
}

// fastAuth runs an HT mechanism: the initial response is the username,
// NUL, and HMAC(token, "Initiator" || channel binding data). It returns
// the user, the server's HMAC(token, "Responder" || channel binding data)
// for <additional-data/>, and the <token/> for <success/>: a new one if
// the client asked for one or the token it used is due for rotation.
//
// It checks the token against the user agent's new slot, then its
// current one, with the mechanism it was issued for; an expired token is
// credentials-expired (XEP-0484 §4.2), and a 'count' not above the last
// one seen for the token is refused as a replay. XEP-0484 asks for
// 'count' only with TLS 0-RTT, so a login without one is accepted while
// the token has none recorded; once a client counted with a token, a
// login with it that omits the count is refused too, or a replay would
// pass by dropping the attribute. The record is read, checked and
// written under its lock (fastTokens.lock), atomic within the process.
// A login with the new
// token makes it the current one; invalidate removes the user agent's
// tokens (a new one is issued only if asked for).
func (c *conn) fastAuth(mech string, req authenticateRequest) (jid.JID, []byte, string, error) {
	f := c.srv.fast
	notAuth := &scram.Failure{Condition: scram.NotAuthorized, Text: "authentication failed"}
	if !c.fastOffered(mech) {
		return jid.JID{}, nil, "", &scram.Failure{Condition: scram.InvalidMechanism}
	}
	switch {
	case !req.fast:
		return jid.JID{}, nil, "", &scram.Failure{Condition: scram.MalformedRequest, Text: "a FAST mechanism needs <fast xmlns='urn:xmpp:fast:0'/>"}
	case req.userAgent == "":
		return jid.JID{}, nil, "", &scram.Failure{Condition: scram.MalformedRequest, Text: "FAST needs <user-agent id=…/>"}
	case req.fastCountBad:
		return jid.JID{}, nil, "", &scram.Failure{Condition: scram.MalformedRequest, Text: "count is not a non-negative integer"}
	case !req.present:
		return jid.JID{}, nil, "", &scram.Failure{Condition: scram.MalformedRequest, Text: "no initial response"}
	}
	name, mac, ok := strings.Cut(string(req.data), "\x00")
	if !ok || len(mac) != sha256.Size {
		return jid.JID{}, nil, "", &scram.Failure{Condition: scram.MalformedRequest}
	}
	var cb []byte
	if t, _ := htBinding(mech); t != "" {
		var err error
		if cb, err = scram.BindingData(c.tlsState, c.leaf, t); err != nil {
			return jid.JID{}, nil, "", &scram.Failure{Condition: scram.MalformedRequest, Text: "channel binding unavailable", Err: err}
		}
	}
	u, err := c.userJID(name)
	if err != nil || c.srv.beingDeleted(u.String()) {
		return jid.JID{}, nil, "", notAuth
	}
	ctx := c.ctx
	key := fastKey(u.String(), req.userAgent)
	defer f.lock(key)()
	r, err := f.load(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return jid.JID{}, nil, "", notAuth
	}
	if err != nil {
		return jid.JID{}, nil, "", &scram.Failure{Condition: scram.TemporaryAuthFailure, Err: err}
	}
	now := f.now()
	var used *fastSlot
	var token []byte
	for _, s := range []*fastSlot{r.New, r.Cur} {
		if s == nil || s.Mech != mech {
			continue
		}
		if t := f.token(key, s); hmac.Equal(fastHMAC(t, "Initiator", cb), []byte(mac)) && used == nil {
			used, token = s, t
		}
	}
	switch {
	case used == nil:
		return jid.JID{}, nil, "", notAuth
	case !used.Exp.After(now):
		if used == r.New {
			r.New = nil
		} else {
			r.Cur = nil
		}
		if err := f.store(ctx, key, r); err != nil {
			c.srv.log.Warn("removing an expired FAST token failed", "err", err)
		}
		return jid.JID{}, nil, "", &scram.Failure{Condition: scram.CredentialsExpired, Text: "the token has expired"}
	case used.Count != nil && req.fastCount == nil:
		return jid.JID{}, nil, "", &scram.Failure{Condition: scram.NotAuthorized, Text: "count missing: the token was used with one"}
	case req.fastCount != nil && used.Count != nil && *req.fastCount <= *used.Count:
		return jid.JID{}, nil, "", &scram.Failure{Condition: scram.NotAuthorized, Text: "count already seen"}
	}
	if acct, err := c.srv.accounts.Account(ctx, u.String()); err != nil || !acct.Removed.IsZero() {
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			return jid.JID{}, nil, "", notAuth
		}
		return jid.JID{}, nil, "", &scram.Failure{Condition: scram.TemporaryAuthFailure, Err: err}
	}
	addl := fastHMAC(token, "Responder", cb)
	// The record is written back only if the login changed it: most
	// logins with the current token and no count leave it as it was.
	changed := false
	if req.fastCount != nil {
		n := *req.fastCount
		used.Count = &n
		changed = true
	}
	if used == r.New {
		// The client has the new token: it becomes the current one,
		// and the one before is no longer valid (§3.5).
		r.Cur, r.New = r.New, nil
		changed = true
	}
	asked := req.requestToken != "" && c.fastOffered(req.requestToken)
	var tok string
	switch {
	case req.fastInvalidate:
		r = fastRecord{}
		changed = true
		if asked {
			tok = f.newToken(key, &r, req.requestToken, now)
		}
	case asked:
		tok = f.newToken(key, &r, req.requestToken, now)
	case used.Issued.Before(storage.Day(now)):
		tok = f.newToken(key, &r, mech, now)
	}
	if !changed && tok == "" {
		return u, addl, "", nil
	}
	if err := f.store(ctx, key, r); err != nil {
		if req.fastInvalidate {
			// The client asked for the token to be gone; it is not.
			return jid.JID{}, nil, "", &scram.Failure{Condition: scram.TemporaryAuthFailure, Err: err}
		}
		// The token was right: the login goes on, without a new token.
		c.srv.log.Warn("storing FAST tokens failed; no token issued", "err", err)
		tok = ""
	}
	return u, addl, tok, nil
}

// deleteUser removes every FAST token of user (a bare JID).
func (f *fastTokens) deleteUser(ctx context.Context, user string) error {
	if f == nil {
		return nil
	}
	var errs []error
	for {
		keys, err := f.sd.ServiceKeys(ctx, fastNamespace, storage.ServiceKeysQuery{Prefix: user + "/", Max: 100})
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := f.sd.DeleteServiceValue(ctx, fastNamespace, k); err != nil && !errors.Is(err, storage.ErrNotFound) {
				errs = append(errs, err)
			}
		}
		if len(keys) < 100 || len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
}

// RevokeTokens revokes every XEP-0484 FAST token of user (a bare JID of a
// local account): its devices log in with the password again. SetPassword
// and DeleteUser do this too.
func (s *Server) RevokeTokens(ctx context.Context, user jid.JID) error {
	user, err := s.userJID(user)
	if err != nil {
		return err
	}
	if err := s.fast.deleteUser(ctx, user.String()); err != nil {
		return fmt.Errorf("server: revoking the FAST tokens of %s: %w", user, err)
	}
	return nil
}

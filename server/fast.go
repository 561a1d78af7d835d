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
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage"
)

// XEP-0484 Fast Authentication Streamlining Tokens (FAST) on SASL2: a
// client asks for a token in one authentication and logs in with it later
// by the HT-SHA-256-NONE mechanism, one round trip and no key stretching.
//
// The store keeps, per account and user agent, only a random token id
// (and the previous one while a rotation is under way) with its expiry, in
// storage.ServiceData; the token is an HMAC of the id keyed by a server
// secret (storage.Secrets), so the store alone yields no token. Tokens and
// secrets are never logged.

const (
	nsFAST          = "urn:xmpp:fast:0"
	fastNamespace   = "fast"              // the ServiceData namespace
	fastSecretName  = "fast-token"        // the storage.Secrets name
	fastMech        = "HT-SHA-256-NONE"   // the only mechanism offered
	fastLifetime    = 14 * 24 * time.Hour // a token's validity
	fastRotateAfter = fastLifetime / 2    // a used token older than this is replaced
	fastGrace       = 24 * time.Hour      // the previous token stays valid this long after a rotation
)

// fastTokens issues and checks FAST tokens; nil when the store keeps no
// ServiceData.
type fastTokens struct {
	secret []byte
	sd     storage.ServiceData
}

// fastRecord is what the store keeps per account and user agent: token
// ids (hex), never tokens.
type fastRecord struct {
	Cur     string    `json:"c"`
	CurExp  time.Time `json:"ce"`
	Prev    string    `json:"p,omitempty"`
	PrevExp time.Time `json:"pe,omitempty"`
}

func newFASTTokens(ctx context.Context, accounts storage.Accounts) (*fastTokens, error) {
	sd, ok := accounts.(storage.ServiceData)
	if !ok {
		return nil, nil
	}
	f := &fastTokens{sd: sd}
	if st, ok := accounts.(storage.Secrets); ok {
		s, err := st.Secret(ctx, fastSecretName, 32)
		if err != nil {
			return nil, fmt.Errorf("server: FAST secret: %w", err)
		}
		f.secret = s
	} else {
		f.secret = make([]byte, 32)
		rand.Read(f.secret)
	}
	return f, nil
}

// fastKey is the ServiceData key of user's (bare JID) tokens for the user
// agent id ua: the user first, so that a prefix scan finds all of them.
func fastKey(user, ua string) string {
	h := sha256.Sum256([]byte(ua))
	return user + "/" + hex.EncodeToString(h[:])
}

// token derives the token of id.
func (f *fastTokens) token(id string) []byte {
	m := hmac.New(sha256.New, f.secret)
	m.Write([]byte(id))
	return []byte(base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
}

func (f *fastTokens) load(ctx context.Context, key string) (fastRecord, error) {
	var r fastRecord
	v, _, err := f.sd.ServiceValue(ctx, fastNamespace, key)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(v, &r)
}

func (f *fastTokens) store(ctx context.Context, key string, r fastRecord) error {
	exp := r.CurExp
	if r.PrevExp.After(exp) {
		exp = r.PrevExp
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return f.sd.PutServiceValue(ctx, fastNamespace, key, v, exp)
}

// issue makes a new token for key, keeping the current one as the previous
// one for fastGrace, and returns the <token/> element.
func (f *fastTokens) issue(ctx context.Context, key string, now time.Time) (string, error) {
	r, err := f.load(ctx, key)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	id := make([]byte, 16)
	rand.Read(id)
	if r.Cur != "" && r.CurExp.After(now) {
		r.Prev, r.PrevExp = r.Cur, now.Add(fastGrace)
		if r.CurExp.Before(r.PrevExp) {
			r.PrevExp = r.CurExp
		}
	}
	r.Cur, r.CurExp = hex.EncodeToString(id), now.Add(fastLifetime).Truncate(time.Second)
	if err := f.store(ctx, key, r); err != nil {
		return "", err
	}
	return `<token xmlns='` + nsFAST + `' expiry='` + r.CurExp.UTC().Format(time.RFC3339) +
		`' token='` + string(f.token(r.Cur)) + `'/>`, nil
}

// fastHMAC returns HMAC-SHA-256(token, label || cb).
func fastHMAC(token []byte, label string, cb []byte) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(label))
	m.Write(cb)
	return m.Sum(nil)
}

// fastAuth checks a HT-SHA-256-NONE initial response (username NUL
// HMAC(token, "Initiator")) for the user agent ua, and returns the user,
// the server's HMAC for <additional-data/> and the extra elements for
// <success/>: a new token if one was asked for or the used one is old.
// invalidate removes the tokens instead.
func (c *conn) fastAuth(req authenticateRequest) (jid.JID, []byte, string, error) {
	f := c.srv.fast
	notAuth := &scram.Failure{Condition: scram.NotAuthorized}
	if f == nil || req.userAgent == "" || !req.present {
		return jid.JID{}, nil, "", notAuth
	}
	name, mac, ok := strings.Cut(string(req.data), "\x00")
	if !ok || len(mac) != sha256.Size {
		return jid.JID{}, nil, "", &scram.Failure{Condition: scram.MalformedRequest}
	}
	u, err := c.userJID(name)
	if err != nil || c.srv.beingDeleted(u.String()) {
		return jid.JID{}, nil, "", notAuth
	}
	ctx := c.ctx
	key := fastKey(u.String(), req.userAgent)
	r, err := f.load(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return jid.JID{}, nil, "", notAuth
	}
	if err != nil {
		return jid.JID{}, nil, "", err
	}
	now := time.Now()
	var token []byte
	usedCur := false
	for _, t := range []struct {
		id  string
		exp time.Time
		cur bool
	}{{r.Cur, r.CurExp, true}, {r.Prev, r.PrevExp, false}} {
		if t.id == "" || !t.exp.After(now) {
			continue
		}
		tok := f.token(t.id)
		if hmac.Equal(fastHMAC(tok, "Initiator", nil), []byte(mac)) {
			token, usedCur = tok, t.cur
		}
	}
	if token == nil {
		return jid.JID{}, nil, "", notAuth
	}
	if _, err := c.srv.accounts.Account(ctx, u.String()); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return jid.JID{}, nil, "", notAuth
		}
		return jid.JID{}, nil, "", err
	}
	addl := fastHMAC(token, "Responder", nil)
	if req.fastInvalidate {
		if err := f.sd.DeleteServiceValue(ctx, fastNamespace, key); err != nil {
			return jid.JID{}, nil, "", err
		}
		return u, addl, "", nil
	}
	var extra string
	// A new token when asked for, when the client used the previous one
	// (it lacks the current one), or when the used one is old.
	if req.requestToken == fastMech || !usedCur || r.CurExp.Sub(now) < fastLifetime-fastRotateAfter {
		if extra, err = f.issue(ctx, key, now); err != nil {
			return jid.JID{}, nil, "", err
		}
	} else if usedCur && r.Prev != "" {
		// The client has the current token: the previous one goes.
		r.Prev, r.PrevExp = "", time.Time{}
		if err := f.store(ctx, key, r); err != nil {
			return jid.JID{}, nil, "", err
		}
	}
	return u, addl, extra, nil
}

// deleteUser removes every FAST token record of user (a bare JID).
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
			if err := f.sd.DeleteServiceValue(ctx, fastNamespace, k); err != nil {
				errs = append(errs, err)
			}
		}
		if len(keys) < 100 || len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
}

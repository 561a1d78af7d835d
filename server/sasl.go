package server

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// SASL (RFC 6120 §6), the negotiation step that authenticates a stream.

// mechanisms offered, strongest first. PLAIN is offered only on TLS
// streams, which all authenticating streams are.
var scramMechs = []string{
	scram.MechSHA512Plus, scram.MechSHA256Plus, scram.MechSHA1Plus,
	scram.MechSHA512, scram.MechSHA256, scram.MechSHA1,
}

// The SASL mechanisms offered with and without channel binding, and as
// the <mechanisms/> feature.
var (
	mechsPlus     = append(append([]string(nil), scramMechs...), "PLAIN")
	mechsNoPlus   = append(append([]string(nil), scramMechs[3:]...), "PLAIN")
	mechsElemPlus = mechanismsElement(mechsPlus)
	mechsElemNone = mechanismsElement(mechsNoPlus)
)

func mechanismsElement(mechs []string) string {
	s := `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>`
	for _, m := range mechs {
		s += "<mechanism>" + m + "</mechanism>"
	}
	return s + "</mechanisms>"
}

// offered are the SASL mechanisms a server offers (Config.SCRAMHashes),
// as the lists above.
type offered struct {
	plus, noPlus         []string
	elemPlus, elemNoPlus string
}

// offerMechanisms returns the mechanisms offered for the SCRAM hashes
// hashes (nil: all).
func offerMechanisms(hashes []storage.Hash) (offered, error) {
	if hashes == nil {
		return offered{mechsPlus, mechsNoPlus, mechsElemPlus, mechsElemNone}, nil
	}
	if len(hashes) == 0 {
		return offered{}, errors.New("server: SCRAMHashes is empty: offer at least one of SHA-1, SHA-256 and SHA-512")
	}
	want := map[storage.Hash]bool{}
	for _, h := range hashes {
		switch h {
		case storage.SHA1, storage.SHA256, storage.SHA512:
		default:
			return offered{}, fmt.Errorf("server: SCRAMHashes: unknown hash %q (SHA-1, SHA-256 or SHA-512)", h)
		}
		if want[h] {
			return offered{}, fmt.Errorf("server: SCRAMHashes: %s listed twice", h)
		}
		want[h] = true
	}
	var o offered
	for _, m := range mechsPlus {
		if m == "PLAIN" || want[mechHash(m)] {
			o.plus = append(o.plus, m)
			if !strings.HasSuffix(m, "-PLUS") {
				o.noPlus = append(o.noPlus, m)
			}
		}
	}
	o.elemPlus, o.elemNoPlus = mechanismsElement(o.plus), mechanismsElement(o.noPlus)
	return o, nil
}

// mechanisms returns the SASL mechanisms offered on this stream.
func (c *conn) mechanisms() []string {
	if len(c.cbTypes) > 0 {
		return c.srv.mechs.plus
	}
	return c.srv.mechs.noPlus
}

// userJID returns the bare JID of username at the stream's domain, whose
// normalisation is done once per stream.
func (c *conn) userJID(username string) (jid.JID, error) {
	if c.domJID.Domainpart() != c.dom {
		d, err := jid.New("", c.dom, "")
		if err != nil {
			return jid.JID{}, err
		}
		c.domJID = d
	}
	return c.domJID.WithLocal(username)
}

func (c *conn) writeFailure(f *scram.Failure) {
	b := `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><` + f.Condition + `/>`
	if f.Text != "" {
		b += `<text xml:lang='en'>` + escapeString(f.Text) + `</text>`
	}
	c.t.writeNonza(c.bw, []byte(b+`</failure>`))
}

// saslData reads the base64 text of a SASL element. An empty element means
// "no data"; "=" means empty data (RFC 6120 §6.4.2).
func saslData(toks []xml.Token) (data []byte, present bool, err error) {
	var text []byte
	for _, t := range toks {
		switch tt := t.(type) {
		case xml.CharData:
			text = append(text, tt...)
		case xml.StartElement:
			return nil, false, &scram.Failure{Condition: scram.MalformedRequest, Text: "unexpected child element"}
		}
	}
	s := strings.TrimSpace(string(text))
	if s == "" {
		return nil, false, nil
	}
	if s == "=" {
		return []byte{}, true, nil
	}
	data, err = base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, false, &scram.Failure{Condition: "incorrect-encoding", Text: "invalid base64"}
	}
	return data, true, nil
}

// saslMechanism returns the mechanism an <auth/> element names.
func saslMechanism(start xml.StartElement) string {
	for _, a := range start.Attr {
		if a.Name.Local == "mechanism" && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// authenticate runs one SASL exchange, starting at an <auth/> element.
func (c *conn) authenticate(start xml.StartElement) (jid.JID, error) {
	mech := saslMechanism(start)
	toks, err := c.t.readElement()
	if err != nil {
		return jid.JID{}, err
	}
	data, present, err := saslData(toks)
	if err != nil {
		return jid.JID{}, err
	}
	u, _, err := c.authMech(mech, data, present, false)
	return u, err
}

// authMech runs one SASL exchange with the mechanism mech and the client's
// initial response data (if present). v2 frames the challenges as SASL2
// does (XEP-0388), and leaves the success to the caller, to which it
// returns the mechanism's additional data; otherwise it writes the
// RFC 6120 success itself.
func (c *conn) authMech(mech string, data []byte, present, v2 bool) (jid.JID, []byte, error) {
	offered := false
	for _, m := range c.mechanisms() {
		offered = offered || m == mech
	}
	if !offered {
		return jid.JID{}, nil, &scram.Failure{Condition: scram.InvalidMechanism}
	}
	var err error
	if mech == "PLAIN" {
		if !present {
			if data, err = c.challenge(nil, v2); err != nil {
				return jid.JID{}, nil, err
			}
		}
		u, err := c.authPlain(data, v2)
		return u, nil, err
	}

	ctx := c.ctx
	h := mechHash(mech)
	// The JID the username normalises to, kept for after success.
	var looked string
	var lookedJID jid.JID
	var lastLogin time.Time
	srvMech, err := scram.NewServer(mech, scram.ServerConfig{
		Lookup: func(username string) (storage.SCRAMKeys, error) {
			u, err := c.userJID(username)
			if err != nil {
				return storage.SCRAMKeys{}, fmt.Errorf("%w: bad username", storage.ErrNotFound)
			}
			looked, lookedJID = username, u
			bare := u.String()
			if c.srv.beingDeleted(bare) {
				return storage.SCRAMKeys{}, fmt.Errorf("%w: being deleted", storage.ErrNotFound)
			}
			t0 := time.Now()
			acct, err := c.srv.accounts.Account(ctx, bare)
			c.srv.metrics.accountLookup.ObserveSince(t0)
			if err != nil {
				return storage.SCRAMKeys{}, err
			}
			if !acct.Removed.IsZero() {
				return storage.SCRAMKeys{}, fmt.Errorf("%w: removed", storage.ErrNotFound)
			}
			lastLogin = acct.LastLogin
			k, ok := acct.Keys[h]
			if !ok {
				return storage.SCRAMKeys{}, fmt.Errorf("%w: no %s keys", storage.ErrNotFound, h)
			}
			return k, nil
		},
		TLS:            c.tlsState,
		Certificate:    c.leaf,
		PlusAdvertised: len(c.cbTypes) > 0 && !c.cbUnusable,
		Domain:         c.dom,
		Decoy: func(username string, h storage.Hash) storage.SCRAMKeys {
			return c.srv.decoys.keys(ctx, username, c.dom, h)
		},
	})
	if err != nil {
		return jid.JID{}, nil, err
	}
	if !present {
		if data, err = c.challenge(nil, v2); err != nil {
			return jid.JID{}, nil, err
		}
	}
	for {
		resp, done, err := srvMech.Step(data)
		if err != nil {
			return jid.JID{}, nil, err
		}
		if done {
			if !v2 {
				c.t.writeNonza(c.bw, []byte(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>`+
					base64.StdEncoding.EncodeToString(resp)+`</success>`))
				if err := c.bw.Flush(); err != nil {
					return jid.JID{}, nil, err
				}
			}
			if name := srvMech.Username(); name == looked {
				c.lastLogin = lastLogin
				return lookedJID, resp, nil
			}
			u, err := c.userJID(srvMech.Username())
			if err != nil {
				return jid.JID{}, nil, &scram.Failure{Condition: scram.NotAuthorized}
			}
			return u, resp, nil
		}
		if data, err = c.challenge(resp, v2); err != nil {
			return jid.JID{}, nil, err
		}
	}
}

// challenge sends a SASL challenge and reads the client's response; v2
// frames both as SASL2 does.
func (c *conn) challenge(ch []byte, v2 bool) ([]byte, error) {
	data := "="
	if len(ch) > 0 {
		data = base64.StdEncoding.EncodeToString(ch)
	}
	ns := nsSASL
	if v2 {
		ns = nsSASL2
	}
	c.t.writeNonza(c.bw, []byte(`<challenge xmlns='`+ns+`'>`+data+`</challenge>`))
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	start, err := c.t.next()
	if err != nil {
		return nil, err
	}
	toks, err := c.t.readElement()
	if err != nil {
		return nil, err
	}
	switch start.Name {
	case xml.Name{Space: ns, Local: "response"}:
		data, _, err := saslData(toks)
		if data == nil && err == nil {
			data = []byte{}
		}
		return data, err
	case xml.Name{Space: ns, Local: "abort"}:
		return nil, &scram.Failure{Condition: "aborted"}
	}
	if stanza.KindOf(start.Name) != 0 {
		return nil, streamErr(condNotAuthorized, "")
	}
	return nil, streamErr(condPolicyViolation, "expected a SASL response")
}

func (c *conn) authPlain(data []byte, v2 bool) (jid.JID, error) {
	authzid, username, password, err := scram.ParsePlain(data)
	if err != nil {
		return jid.JID{}, err
	}
	u, err := c.userJID(username)
	if err != nil {
		return jid.JID{}, &scram.Failure{Condition: scram.NotAuthorized, Text: "authentication failed"}
	}
	if authzid != "" && authzid != u.String() {
		if a, err := jid.Parse(authzid); err != nil || !a.Equal(u) {
			return jid.JID{}, &scram.Failure{Condition: scram.InvalidAuthzid}
		}
	}
	t0 := time.Now()
	acct, err := c.srv.accounts.Account(c.ctx, u.String())
	c.srv.metrics.accountLookup.ObserveSince(t0)
	if err == nil && (c.srv.beingDeleted(u.String()) || !acct.Removed.IsZero()) {
		err = storage.ErrNotFound
	}
	if err != nil {
		// Spend the same work as a real check so timing does not tell.
		scram.VerifyPlain(c.srv.decoys.keys(c.ctx, u.Localpart(), c.dom, storage.SHA256), storage.SHA256, password)
		return jid.JID{}, &scram.Failure{Condition: scram.NotAuthorized, Text: "authentication failed"}
	}
	for _, h := range []storage.Hash{storage.SHA256, storage.SHA512, storage.SHA1} {
		if k, ok := acct.Keys[h]; ok {
			if !scram.VerifyPlain(k, h, password) {
				return jid.JID{}, &scram.Failure{Condition: scram.NotAuthorized, Text: "authentication failed"}
			}
			c.lastLogin = acct.LastLogin
			// The password is known now: an account that lacks keys
			// for some hashes (imported from Prosody, which keeps
			// SCRAM-SHA-1 only) gets them. Failing to does not refuse
			// the login.
			if added, err := c.srv.addMissingKeys(c.ctx, u, acct.Keys, password); err != nil {
				c.srv.log.Warn("adding the SCRAM keys an account lacks failed", "err", err)
			} else if len(added) > 0 {
				// No JID: the line would tell when the user logged in.
				c.srv.log.Info("added the SCRAM keys an account lacked", "hashes", added)
			}
			if v2 {
				return u, nil
			}
			c.t.writeNonza(c.bw, []byte(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`))
			return u, c.bw.Flush()
		}
	}
	return jid.JID{}, &scram.Failure{Condition: scram.NotAuthorized, Text: "authentication failed"}
}

// mechHash returns the hash a SCRAM mechanism name uses.
func mechHash(mech string) storage.Hash {
	switch strings.TrimSuffix(mech, "-PLUS") {
	case scram.MechSHA1:
		return storage.SHA1
	case scram.MechSHA256:
		return storage.SHA256
	}
	return storage.SHA512
}

// saslStep is the SASL negotiation step: <auth/> on a TLS stream not yet
// authenticated.
func saslStep() step {
	return step{
		name:       xml.Name{Space: nsSASL, Local: "auth"},
		necessary:  stateSecure,
		prohibited: stateAuthn,
		advertise:  (*conn).appendMechanisms,
		run:        (*conn).saslAuth,
	}
}

// appendMechanisms appends the <mechanisms/> feature offered on this
// stream, with the channel binding types (XEP-0440) when there are any.
func (c *conn) appendMechanisms(b []byte) []byte {
	if len(c.cbTypes) == 0 {
		return append(b, c.srv.mechs.elemNoPlus...)
	}
	b = append(b, c.srv.mechs.elemPlus...)
	b = append(b, `<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>`...)
	for _, t := range c.cbTypes {
		b = append(b, `<channel-binding type='`...)
		b = append(b, t...)
		b = append(b, `'/>`...)
	}
	return append(b, `</sasl-channel-binding>`...)
}

// saslAuth runs one authentication attempt. A failed attempt is answered
// with a SASL failure and negotiation goes on; Limits.AuthAttempts of them
// end the stream, and so does a ban by the connection filter, which
// learns of every failure that guesses a password.
func (c *conn) saslAuth(start xml.StartElement) (stepResult, error) {
	u, err := c.authenticate(start)
	if err != nil {
		return c.authFailure(saslMechanism(start), err, c.writeFailure)
	}
	c.authSucceeded(saslMechanism(start), u)
	return stepResult{state: stateAuthn, restart: true}, nil
}

// authFailure answers a failed authentication attempt with mech (SASL or
// SASL2, whose failure write writes): it counts the attempt, and ends the
// stream after Limits.AuthAttempts of them or a ban by the connection
// filter. An error that is no SASL failure ends the stream.
func (c *conn) authFailure(mech string, err error, write func(*scram.Failure)) (stepResult, error) {
	s := c.srv
	var f *scram.Failure
	if !errors.As(err, &f) {
		return stepResult{}, err
	}
	s.log.Debug("authentication failed", "condition", f.Condition)
	s.metrics.login(mech, false)
	// The connection filter counts the failure before the client
	// learns of it, so that its next connection meets any ban.
	banned := f.Condition == scram.NotAuthorized && c.authFailed(mech)
	write(f)
	if err := c.bw.Flush(); err != nil {
		return stepResult{}, err
	}
	if banned {
		return stepResult{}, streamErr(condPolicyViolation, "too many failed authentications from your network")
	}
	if errors.Is(err, scram.ErrUnsupportedBinding) {
		// The client saw our -PLUS offer but wants a binding type we
		// cannot give (slixmpp 1.8 uses tls-unique on TLS 1.3). It is
		// not guessing passwords, so this does not count; and its
		// coming fallback with the 'y' flag is no downgrade attack, so
		// accept it.
		c.cbUnusable = true
		return stepResult{}, nil
	}
	c.attempts++
	if c.attempts >= s.limits.AuthAttempts {
		return stepResult{}, streamErr(condPolicyViolation, "too many failed authentication attempts")
	}
	return stepResult{}, nil
}

// authSucceeded records a successful authentication of u with mech.
func (c *conn) authSucceeded(mech string, u jid.JID) {
	s := c.srv
	c.user = u
	s.metrics.login(mech, true)
	c.filterDone(true)
	if c.rc != nil {
		rate := int64(max(s.limits.ReadRateAuthenticated, 0))
		c.rc.setRate(rate, readBurst(rate, s.limits.MaxStanzaSize))
	}
	// The day of the last login, kept for operation (accounts unused for
	// long can be removed), unless the account read for the login has it
	// already. Failing to record it does not refuse the login; it is
	// logged.
	now := time.Now()
	if !c.lastLogin.Equal(storage.Day(now)) {
		if err := s.accounts.TouchLogin(c.ctx, u.String(), now); err != nil {
			s.log.Warn("recording the day of a login failed", "err", err)
		}
	}
}

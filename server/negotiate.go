package server

import (
	"context"
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

// mechanisms offered, strongest first. PLAIN is offered only on TLS
// streams, which all authenticating streams are.
var scramMechs = []string{
	scram.MechSHA512Plus, scram.MechSHA256Plus, scram.MechSHA1Plus,
	scram.MechSHA512, scram.MechSHA256, scram.MechSHA1,
}

func (c *conn) writeHeader(from string) {
	if c.id == "" {
		c.id = newID()
	}
	c.bw.WriteString(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='`)
	c.bw.WriteString(c.id)
	if from != "" {
		c.bw.WriteString(`' from='`)
		c.bw.WriteString(escapeString(from))
	}
	c.bw.WriteString(`' version='1.0' xml:lang='en'>`)
}

// negotiate runs the stream from its first header to resource binding.
func (c *conn) negotiate() (*Session, error) {
	s := c.srv
	var user jid.JID // set once authenticated
	attempts := 0
	for {
		limit := s.limits.MaxPreAuthSize
		if user.Localpart() != "" {
			limit = s.limits.MaxStanzaSize
		}
		if c.in == nil {
			c.in = newXMLIn(c.br, limit, s.limits.MaxDepth)
		} else {
			c.in.restart(limit)
		}
		h, err := c.in.readHeader()
		if err != nil {
			return nil, c.negErr(err)
		}
		c.id = "" // a new stream gets a new id
		if !s.local[h.to] {
			c.writeHeader("")
			return nil, streamErr(condHostUnknown, "")
		}
		if c.dom != "" && h.to != c.dom {
			c.writeHeader(c.dom)
			return nil, streamErr(condHostUnknown, "the domain changed during negotiation")
		}
		if major, _, _ := strings.Cut(h.version, "."); major != "1" {
			c.writeHeader(h.to)
			return nil, streamErr(condUnsupportedVersion, "")
		}
		c.dom, c.lng = h.to, h.lang
		c.writeHeader(c.dom)
		c.writeFeatures(user)
		if err := c.bw.Flush(); err != nil {
			return nil, err
		}

	elements:
		for {
			start, err := c.in.next()
			if err != nil {
				return nil, c.negErr(err)
			}
			switch {
			case stanza.KindOf(start.Name) != 0 && !(user.Localpart() != "" && start.Name.Local == "iq"):
				// RFC 6120 §4.9.3.12: no stanzas before authentication and
				// binding.
				return nil, streamErr(condNotAuthorized, "")
			case c.tlsConn == nil:
				if start.Name != (xml.Name{Space: nsTLS, Local: "starttls"}) {
					return nil, streamErr(condPolicyViolation, "STARTTLS is required")
				}
				if _, err := c.in.readElement(); err != nil {
					return nil, c.negErr(err)
				}
				c.bw.WriteString(`<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
				if err := c.bw.Flush(); err != nil {
					return nil, err
				}
				if err := c.startTLS(); err != nil {
					return nil, err
				}
				break elements
			case user.Localpart() == "":
				if start.Name != (xml.Name{Space: nsSASL, Local: "auth"}) {
					return nil, streamErr(condNotAuthorized, "authenticate first")
				}
				u, err := c.authenticate(start)
				if err != nil {
					var f *scram.Failure
					if !errors.As(err, &f) {
						return nil, c.negErr(err)
					}
					c.srv.log.Debug("authentication failed", "condition", f.Condition)
					c.writeFailure(f)
					if err := c.bw.Flush(); err != nil {
						return nil, err
					}
					if errors.Is(err, scram.ErrUnsupportedBinding) {
						// The client saw our -PLUS offer but wants a binding
						// type we cannot give (slixmpp 1.8 uses tls-unique on
						// TLS 1.3). It is not guessing passwords, so this does
						// not count; and its coming fallback with the 'y' flag
						// is no downgrade attack, so accept it.
						c.cbUnusable = true
						continue
					}
					attempts++
					if attempts >= s.limits.AuthAttempts {
						return nil, streamErr(condPolicyViolation, "too many failed authentication attempts")
					}
					continue
				}
				user = u
				// The day of the last login, kept for operation (accounts
				// unused for long can be removed), unless the account read
				// for the login has it already. Failing to record it does
				// not refuse the login; it is logged.
				now := time.Now()
				if !c.lastLogin.Equal(storage.Day(now)) {
					if err := s.accounts.TouchLogin(s.ctx, user.String(), now); err != nil {
						s.log.Warn("recording the day of a login failed", "err", err)
					}
				}
				break elements
			case start.Name.Space == nsSM:
				if start.Name.Local == "resume" {
					sess, err := c.resume(start, user)
					if err != nil {
						return nil, c.negErr(err)
					}
					if sess != nil {
						return sess, nil
					}
					continue
				}
				// <enable/> and the rest come after binding (XEP-0198 §3).
				if _, err := c.in.readElement(); err != nil {
					return nil, c.negErr(err)
				}
				c.bw.Write(smFailed("unexpected-request"))
				if err := c.bw.Flush(); err != nil {
					return nil, err
				}
			default:
				sess, err := c.bind(start, user)
				if err != nil {
					return nil, c.negErr(err)
				}
				if sess != nil {
					return sess, nil
				}
			}
		}
	}
}

// negErr maps a timed-out read to connection-timeout.
func (c *conn) negErr(err error) error {
	c.mu.Lock()
	pending := c.pending
	c.mu.Unlock()
	if pending != nil {
		return pending
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return streamErr(condConnectionTimeout, "")
	}
	return err
}

// Stream features that never change.
const (
	featuresStartTLS = `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`
	featuresBind     = `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>` +
		`<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>` +
		`<sm xmlns='urn:xmpp:sm:3'/><csi xmlns='urn:xmpp:csi:0'/>`
)

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

func (c *conn) writeFeatures(user jid.JID) {
	w := c.bw
	switch {
	case c.tlsConn == nil:
		w.WriteString(featuresStartTLS)
		return
	case user.Localpart() == "":
		w.WriteString("<stream:features>")
		if len(c.cbTypes) > 0 {
			w.WriteString(mechsElemPlus)
			w.WriteString(`<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>`)
			for _, t := range c.cbTypes {
				w.WriteString(`<channel-binding type='`)
				w.WriteString(t)
				w.WriteString(`'/>`)
			}
			w.WriteString(`</sasl-channel-binding>`)
		} else {
			w.WriteString(mechsElemNone)
		}
	default:
		w.WriteString(featuresBind)
		w.WriteString(c.srv.capsFeature())
		for _, f := range c.srv.streamFeats {
			stanza.WriteTokens(w, stanza.Resolve(f.Element(), nsClient), nsClient)
		}
	}
	w.WriteString("</stream:features>")
}

// mechanisms returns the SASL mechanisms offered on this stream.
func (c *conn) mechanisms() []string {
	if len(c.cbTypes) > 0 {
		return mechsPlus
	}
	return mechsNoPlus
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
	c.bw.WriteString(`<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><`)
	c.bw.WriteString(f.Condition)
	c.bw.WriteString(`/>`)
	if f.Text != "" {
		c.bw.WriteString(`<text xml:lang='en'>` + escapeString(f.Text) + `</text>`)
	}
	c.bw.WriteString(`</failure>`)
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

// authenticate runs one SASL exchange, starting at an <auth/> element.
func (c *conn) authenticate(start xml.StartElement) (jid.JID, error) {
	var mech string
	for _, a := range start.Attr {
		if a.Name.Local == "mechanism" && a.Name.Space == "" {
			mech = a.Value
		}
	}
	toks, err := c.in.readElement()
	if err != nil {
		return jid.JID{}, err
	}
	offered := false
	for _, m := range c.mechanisms() {
		offered = offered || m == mech
	}
	if !offered {
		return jid.JID{}, &scram.Failure{Condition: scram.InvalidMechanism}
	}
	data, present, err := saslData(toks)
	if err != nil {
		return jid.JID{}, err
	}
	if mech == "PLAIN" {
		if !present {
			if data, err = c.challenge(nil); err != nil {
				return jid.JID{}, err
			}
		}
		return c.authPlain(data)
	}

	ctx := context.Background()
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
			acct, err := c.srv.accounts.Account(ctx, bare)
			if err != nil {
				return storage.SCRAMKeys{}, err
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
		return jid.JID{}, err
	}
	if !present {
		if data, err = c.challenge(nil); err != nil {
			return jid.JID{}, err
		}
	}
	for {
		resp, done, err := srvMech.Step(data)
		if err != nil {
			return jid.JID{}, err
		}
		if done {
			c.bw.WriteString(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>`)
			c.bw.WriteString(base64.StdEncoding.EncodeToString(resp))
			c.bw.WriteString(`</success>`)
			if err := c.bw.Flush(); err != nil {
				return jid.JID{}, err
			}
			if name := srvMech.Username(); name == looked {
				c.lastLogin = lastLogin
				return lookedJID, nil
			}
			u, err := c.userJID(srvMech.Username())
			if err != nil {
				return jid.JID{}, &scram.Failure{Condition: scram.NotAuthorized}
			}
			return u, nil
		}
		if data, err = c.challenge(resp); err != nil {
			return jid.JID{}, err
		}
	}
}

// challenge sends a SASL challenge and reads the client's response.
func (c *conn) challenge(ch []byte) ([]byte, error) {
	c.bw.WriteString(`<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>`)
	if len(ch) == 0 {
		c.bw.WriteString("=")
	} else {
		c.bw.WriteString(base64.StdEncoding.EncodeToString(ch))
	}
	c.bw.WriteString(`</challenge>`)
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	start, err := c.in.next()
	if err != nil {
		return nil, err
	}
	toks, err := c.in.readElement()
	if err != nil {
		return nil, err
	}
	switch start.Name {
	case xml.Name{Space: nsSASL, Local: "response"}:
		data, _, err := saslData(toks)
		if data == nil && err == nil {
			data = []byte{}
		}
		return data, err
	case xml.Name{Space: nsSASL, Local: "abort"}:
		return nil, &scram.Failure{Condition: "aborted"}
	}
	if stanza.KindOf(start.Name) != 0 {
		return nil, streamErr(condNotAuthorized, "")
	}
	return nil, streamErr(condPolicyViolation, "expected a SASL response")
}

func (c *conn) authPlain(data []byte) (jid.JID, error) {
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
	acct, err := c.srv.accounts.Account(context.Background(), u.String())
	if err == nil && c.srv.beingDeleted(u.String()) {
		err = storage.ErrNotFound
	}
	if err != nil {
		// Spend the same work as a real check so timing does not tell.
		scram.VerifyPlain(c.srv.decoys.keys(context.Background(), u.Localpart(), c.dom, storage.SHA256), storage.SHA256, password)
		return jid.JID{}, &scram.Failure{Condition: scram.NotAuthorized, Text: "authentication failed"}
	}
	for _, h := range []storage.Hash{storage.SHA256, storage.SHA512, storage.SHA1} {
		if k, ok := acct.Keys[h]; ok {
			if !scram.VerifyPlain(k, h, password) {
				return jid.JID{}, &scram.Failure{Condition: scram.NotAuthorized, Text: "authentication failed"}
			}
			c.lastLogin = acct.LastLogin
			c.bw.WriteString(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
			return u, c.bw.Flush()
		}
	}
	return jid.JID{}, &scram.Failure{Condition: scram.NotAuthorized, Text: "authentication failed"}
}

func collect(r xml.TokenReader) []xml.Token {
	var out []xml.Token
	for {
		t, err := r.Token()
		if t != nil {
			out = append(out, xml.CopyToken(t))
		}
		if err != nil {
			return out
		}
	}
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

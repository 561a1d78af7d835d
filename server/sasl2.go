package server

import (
	"encoding/base64"
	"encoding/xml"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/stanza"
)

// XEP-0388 Extensible SASL Profile (SASL2): authentication in one
// <authenticate/> that may carry a Bind 2 request (XEP-0386, bind2.go),
// answered by a <success/> after which the stream goes on without a
// restart.

const nsSASL2 = "urn:xmpp:sasl:2"

// sasl2Step is the SASL2 negotiation step: <authenticate/> on a TLS stream
// not yet authenticated, offered beside SASL with the same mechanisms.
func (s *Server) sasl2Step() step {
	return step{
		name:       xml.Name{Space: nsSASL2, Local: "authenticate"},
		necessary:  stateSecure,
		prohibited: stateAuthn,
		advertise:  (*conn).appendAuthentication,
		run:        (*conn).sasl2Auth,
	}
}

// appendAuthentication appends the <authentication/> feature: the
// mechanisms offered on this stream and the inline features, Bind 2 with
// the features it can enable. The channel binding types are in the SASL
// feature's <sasl-channel-binding/>, which both share (XEP-0440).
func (c *conn) appendAuthentication(b []byte) []byte {
	b = append(b, `<authentication xmlns='urn:xmpp:sasl:2'>`...)
	for _, m := range c.mechanisms() {
		b = append(b, "<mechanism>"...)
		b = append(b, m...)
		b = append(b, "</mechanism>"...)
	}
	b = append(b, `<inline>`...)
	b = append(b, c.srv.bind2.feature...)
	b = c.appendFAST(b)
	return append(b, `<sm xmlns='urn:xmpp:sm:3'/></inline></authentication>`...)
}

// authenticateRequest is what a client's <authenticate/> holds.
type authenticateRequest struct {
	data    []byte // the initial response
	present bool   // whether there was one
	bind    *bind2Request
	resume  *xml.StartElement // an inline stream management <resume/>

	userAgent      string  // the <user-agent/> id
	requestToken   string  // the mechanism of a FAST <request-token/>
	fast           bool    // a FAST <fast/>: the client logs in with a token
	fastInvalidate bool    // with invalidate='true'
	fastCount      *uint64 // and its count, if any
	fastCountBad   bool    // a count that is no number
}

// parseAuthenticate reads the inner tokens of <authenticate/>. Unknown
// children are ignored (XEP-0388 §2.2 lets clients add extensions the
// server may not know).
func parseAuthenticate(toks []xml.Token) (authenticateRequest, error) {
	var req authenticateRequest
	depth := 0
	var child xml.Name // the current child of <authenticate/>
	var inner []xml.Token
	for _, t := range toks {
		switch tt := t.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				child, inner = tt.Name, nil
				switch tt.Name {
				case xml.Name{Space: nsSM, Local: "resume"}:
					st := tt.Copy()
					req.resume = &st
				case xml.Name{Space: nsSASL2, Local: "user-agent"}:
					req.userAgent = attr(tt, "id")
				case xml.Name{Space: nsFAST, Local: "request-token"}:
					req.requestToken = attr(tt, "mechanism")
				case xml.Name{Space: nsFAST, Local: "fast"}:
					req.fast = true
					v := attr(tt, "invalidate")
					req.fastInvalidate = v == "true" || v == "1"
					if v, ok := stanza.LookupAttr(tt.Attr, "count"); ok {
						n, err := strconv.ParseUint(v, 10, 64)
						req.fastCount, req.fastCountBad = &n, err != nil
					}
				}
				continue
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				switch child {
				case xml.Name{Space: nsSASL2, Local: "initial-response"}:
					data, present, err := saslData(inner)
					if err != nil {
						return req, err
					}
					req.data, req.present = data, present
					if !present {
						req.data, req.present = []byte{}, true
					}
				case xml.Name{Space: nsBind2, Local: "bind"}:
					req.bind = parseBind2(inner)
				}
				continue
			}
		}
		if depth >= 1 {
			inner = append(inner, xml.CopyToken(t))
		}
	}
	return req, nil
}

// sasl2Auth runs one SASL2 authentication attempt; failures are counted
// as SASL's are (authFailure). On success, a Bind 2 request starts the
// session at once; without one the client binds next, on the same stream.
func (c *conn) sasl2Auth(start xml.StartElement) (stepResult, error) {
	mech := saslMechanism(start)
	toks, err := c.t.readElement()
	if err != nil {
		return stepResult{}, err
	}
	req, err := parseAuthenticate(toks)
	if err != nil {
		return c.authFailure(mech, err, c.writeFailure2)
	}
	var u jid.JID
	var addl []byte
	var token string // a FAST <token/> for <success/>
	if _, ht := htBinding(mech); ht && c.srv.fast != nil {
		u, addl, token, err = c.fastAuth(mech, req)
	} else {
		u, addl, err = c.authMech(mech, req.data, req.present, true)
		if err == nil {
			token = c.requestedToken(req, u)
		}
	}
	if err != nil {
		return c.authFailure(mech, err, c.writeFailure2)
	}
	c.authSucceeded(mech, u)
	c.fastToken = token
	c.t.setLimit(c.srv.limits.MaxStanzaSize)
	if req.resume != nil {
		// XEP-0198 §5 with SASL2: the outcome inside <success/>; after
		// a failure the stream stays authenticated and the client binds.
		res, err := c.resumeWith(*req.resume, func(answer []byte, sess *Session) error {
			authzid := u.String()
			if sess != nil {
				authzid = sess.jid.String()
			}
			c.t.writeNonza(c.bw, sasl2Success(addl, authzid, string(answer)+c.fastToken))
			return c.bw.Flush()
		})
		res.state |= stateAuthn
		return res, err
	}
	if req.bind == nil {
		c.t.writeNonza(c.bw, sasl2Success(addl, u.String(), c.fastToken))
		return stepResult{state: stateAuthn}, c.bw.Flush()
	}
	return c.bind2(req.bind, req.userAgent, addl)
}

// sasl2Success returns a SASL2 <success/> with the mechanism's additional
// data, the authorization identifier (a bare or full JID) and extra
// elements (Bind 2's <bound/>).
func sasl2Success(addl []byte, authzid, extra string) []byte {
	var b strings.Builder
	b.WriteString(`<success xmlns='urn:xmpp:sasl:2'>`)
	if len(addl) > 0 {
		b.WriteString(`<additional-data>`)
		b.WriteString(base64.StdEncoding.EncodeToString(addl))
		b.WriteString(`</additional-data>`)
	}
	b.WriteString(`<authorization-identifier>`)
	b.WriteString(escapeString(authzid))
	b.WriteString(`</authorization-identifier>`)
	b.WriteString(extra)
	b.WriteString(`</success>`)
	return []byte(b.String())
}

// writeFailure2 writes a SASL2 failure: the RFC 6120 condition in the
// SASL namespace, inside SASL2's <failure/>.
func (c *conn) writeFailure2(f *scram.Failure) {
	b := `<failure xmlns='urn:xmpp:sasl:2'><` + f.Condition + ` xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`
	if f.Text != "" {
		b += `<text xml:lang='en'>` + escapeString(f.Text) + `</text>`
	}
	c.t.writeNonza(c.bw, []byte(b+`</failure>`))
}

// textOf returns the character data directly inside toks' first level.
func textOf(toks []xml.Token) string {
	depth := 0
	var b []byte
	for _, t := range toks {
		switch tt := t.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				b = append(b, tt...)
			}
		}
	}
	return strings.TrimSpace(string(b))
}

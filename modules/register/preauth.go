package register

import (
	"context"
	"encoding/xml"
	"errors"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
)

// Namespaces of XEP-0445 Pre-Authenticated In-Band Registration.
const (
	// NSIBRToken is the namespace of XEP-0445's stream feature
	// <register xmlns='urn:xmpp:ibr-token:0'/>: the server takes
	// invitation tokens before registration.
	NSIBRToken = "urn:xmpp:ibr-token:0"
	// NSInvite is the namespace of the same feature as clients written
	// before XEP-0445 look for it (<register xmlns='urn:xmpp:invite'/>);
	// both are offered, as Prosody does.
	NSInvite = "urn:xmpp:invite"
	// NSPreauth is the namespace of <preauth token='…'/>, which a client
	// sends in an iq set before it registers (and XEP-0379 puts in a
	// subscription request).
	NSPreauth = "urn:xmpp:pars:0"
)

var (
	ibrTokenFeatureName = xml.Name{Space: NSIBRToken, Local: "register"}
	inviteFeatureName   = xml.Name{Space: NSInvite, Local: "register"}
	preauthName         = xml.Name{Space: NSPreauth, Local: "preauth"}
)

// TokenChecker is implemented by Invites that can check a token without
// using it, for XEP-0445's <preauth/>. Without it the module takes a
// presented token unchecked and registration redeems it as usual.
type TokenChecker interface {
	// CheckToken returns nil if token is valid now for an account on
	// domain, or an error wrapping ErrInvalidToken.
	CheckToken(ctx context.Context, token, domain string) error
}

// preauthFeatures are XEP-0445's stream feature, under its namespace and
// the earlier one: a client presents its token in a <preauth/> iq, then
// registers with XEP-0077 as usual, without the token in the form.
func (m *Module) preauthFeatures() []server.StreamFeature {
	return []server.StreamFeature{{
		BeforeAuth: true,
		Element:    func() xml.TokenReader { return stanza.Elem(ibrTokenFeatureName, nil) },
		IQRoutes: []server.IQRoute{
			{Type: mstanza.SetIQ, Payload: preauthName, Handler: server.IQHandlerFunc(m.preauth)},
		},
	}, {
		BeforeAuth: true,
		Element:    func() xml.TokenReader { return stanza.Elem(inviteFeatureName, nil) },
	}}
}

// preauth checks a presented token and, if it is valid, keeps it for the
// stream's registration. The token counts as used only once that
// registration succeeds (XEP-0445 §3).
func (m *Module) preauth(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	el, ok := iq.ChildElement(preauthName)
	if !ok {
		return refuse(mstanza.Modify, mstanza.BadRequest, "no <preauth/>")
	}
	token := el.Attr("token")
	if token == "" {
		return refuse(mstanza.Modify, mstanza.BadRequest, "the token attribute is missing")
	}
	domain := iq.To.Domainpart()
	if !m.host.IsLocal(domain) {
		return refuse(mstanza.Modify, mstanza.BadRequest, "register with a domain of this server")
	}
	if c, ok := m.invites.(TokenChecker); ok {
		if err := c.CheckToken(ctx, token, domain); errors.Is(err, ErrInvalidToken) {
			return refuse(mstanza.Cancel, mstanza.ItemNotFound, "the invitation token is invalid, expired or used")
		} else if err != nil {
			return err
		}
	}
	if !m.presented.Set(ctx, token) {
		return refuse(mstanza.Cancel, mstanza.NotAllowed, "present the token before authenticating")
	}
	return w.Result(nil)
}

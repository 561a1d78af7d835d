// Package ping answers XEP-0199 XMPP Ping requests that clients send to
// their server or to their own account, so that they can check that the
// stream is alive. Pings the server sends to idle clients are part of the
// server core, not of this module.
package ping

import (
	"context"
	"encoding/xml"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
)

// NS is the XEP-0199 namespace, advertised as a disco#info feature.
const NS = "urn:xmpp:ping"

// Options configure the module. Ping has no settings: the type is there
// so that New has the shape of every module's constructor.
type Options struct{}

// Deps are what the module builds on. Ping needs nothing: the type is
// there so that New has the shape of every module's constructor.
type Deps struct{}

// Module answers pings. Create it with New.
type Module struct{}

// New returns the ping module. It never fails; the error is there for
// the shape every module's constructor shares.
func New(opts Options, deps Deps) (*Module, error) { return &Module{}, nil }

// Name returns "ping".
func (*Module) Name() string { return "ping" }

// IQRoutes answers <iq type='get'><ping xmlns='urn:xmpp:ping'/></iq> sent
// to the server's domain or to the sender's own account.
func (m *Module) IQRoutes() []server.IQRoute {
	payload := xml.Name{Space: NS, Local: "ping"}
	return []server.IQRoute{
		{Type: mstanza.GetIQ, Payload: payload, To: server.TargetHost, Handler: server.IQHandlerFunc(pong)},
		{Type: mstanza.GetIQ, Payload: payload, To: server.TargetSelf, Handler: server.IQHandlerFunc(pong)},
	}
}

// Features advertises urn:xmpp:ping on the server's domain.
func (*Module) Features(t server.Target) []string {
	if t == server.TargetHost {
		return []string{NS}
	}
	return nil
}

// pong answers a ping with an empty result (XEP-0199 §4.2).
func pong(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	return w.Result(nil)
}

var (
	_ server.Module          = (*Module)(nil)
	_ server.IQProvider      = (*Module)(nil)
	_ server.FeatureProvider = (*Module)(nil)
)

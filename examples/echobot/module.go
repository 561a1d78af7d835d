package main

import (
	"context"
	"encoding/xml"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
)

// Options configure the echo module, which has none.
type Options struct{}

// Deps are what the echo module builds on: nothing.
type Deps struct{}

// Echo serves echo.<domain>, echoing message bodies. Create it with New.
type Echo struct {
	router server.Router // set by Init
}

// New returns the echo module, in the shape of every module's New.
func New(opts Options, deps Deps) (*Echo, error) { return &Echo{}, nil }

// Name returns "echobot".
func (*Echo) Name() string { return "echobot" }

// Init keeps the router, to send the echoes with.
func (e *Echo) Init(ctx context.Context, h server.Host) error {
	e.router = h.Router()
	return nil
}

// Services claims echo.<domain> on every virtual host.
func (e *Echo) Services() []server.Service {
	return []server.Service{{Subdomain: "echo", Name: "Echo bot", Handler: e}}
}

// HandleStanza echoes message bodies. Returning a stanza error makes the
// server bounce it: iqs must be answered, and this service answers none.
func (e *Echo) HandleStanza(ctx context.Context, s *stanza.Stanza) error {
	body, ok := s.ChildText(xml.Name{Local: "body"})
	switch {
	case s.Kind == stanza.IQKind && (s.Type == stanza.Get || s.Type == stanza.Set):
		return mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable}
	case s.Kind != stanza.Message || s.IsError() || !ok:
		return nil // no body to echo; and errors are never answered
	}
	echo := &stanza.Stanza{Kind: stanza.Message, Type: s.Type, From: s.To, To: s.From}
	echo.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, body))
	return e.router.Route(ctx, echo)
}

var (
	_ server.Initializer     = (*Echo)(nil)
	_ server.ServiceProvider = (*Echo)(nil)
	_ server.StanzaHandler   = (*Echo)(nil)
)

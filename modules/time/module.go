// Package time answers XEP-0202 Entity Time requests sent to the server's
// domain with the current time in UTC and the server's time zone offset.
//
// The package shares its name with the standard library's; import it
// under another name, such as kieztime, where both are needed.
package time

import (
	"context"
	"encoding/xml"
	"time"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
)

// NS is the XEP-0202 namespace, advertised as a disco#info feature.
const NS = "urn:xmpp:time"

// Options configure the module.
type Options struct {
	// Location is the time zone whose offset from UTC is reported in
	// <tzo/>, taken at the moment of each request so that daylight
	// saving time is followed. Nil means UTC (<tzo>+00:00</tzo>), which
	// tells nothing about where the server runs.
	Location *time.Location
}

// Deps are what the module builds on. The time module needs nothing: the
// type is there so that New has the shape of every module's constructor.
type Deps struct{}

// Module answers entity time requests. Create it with New.
type Module struct {
	loc *time.Location
}

// New returns the time module configured by opts. It never fails: every
// Options value is valid; the error is there for the shape every module's
// constructor shares.
func New(opts Options, deps Deps) (*Module, error) {
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	return &Module{loc: loc}, nil
}

// Name returns "time".
func (*Module) Name() string { return "time" }

// IQRoutes answers <iq type='get'><time xmlns='urn:xmpp:time'/></iq> sent
// to the server's domain.
func (m *Module) IQRoutes() []server.IQRoute {
	return []server.IQRoute{{
		Type:    mstanza.GetIQ,
		Payload: xml.Name{Space: NS, Local: "time"},
		To:      server.TargetHost,
		Handler: server.IQHandlerFunc(m.handle),
	}}
}

// Features advertises urn:xmpp:time on the server's domain.
func (*Module) Features(t server.Target) []string {
	if t == server.TargetHost {
		return []string{NS}
	}
	return nil
}

// handle answers with the XEP-0082 date-time in UTC and the offset of the
// configured location (XEP-0202 §4).
func (m *Module) handle(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	now := time.Now()
	return w.Result(stanza.Elem(xml.Name{Space: NS, Local: "time"}, nil,
		stanza.TextElem(xml.Name{Local: "tzo"}, now.In(m.loc).Format("-07:00")),
		stanza.TextElem(xml.Name{Local: "utc"}, now.UTC().Format("2006-01-02T15:04:05Z")),
	))
}

var (
	_ server.Module          = (*Module)(nil)
	_ server.IQProvider      = (*Module)(nil)
	_ server.FeatureProvider = (*Module)(nil)
)

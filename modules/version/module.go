// Package version answers XEP-0092 Software Version requests sent to the
// server's domain with the name "Kiez", its version and, only when
// enabled, the operating system.
package version

import (
	"context"
	"encoding/xml"
	"runtime"
	"runtime/debug"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
)

// NS is the XEP-0092 namespace, advertised as a disco#info feature.
const NS = "jabber:iq:version"

// Software is the software name the module reports.
const Software = "Kiez"

// modulePath is the Kiez module, whose version is reported by default.
const modulePath = "github.com/kiez-im/kiez"

// Options configure the module. The zero value reports the Kiez version
// from the build information and no operating system.
type Options struct {
	// Version is the version reported. Empty means the version of the
	// Kiez module this binary was built with, or "devel" when the build
	// does not record one.
	Version string
	// ShowOS adds the operating system (runtime.GOOS, such as "linux") to
	// the answer. XEP-0092 §5 requires that administrators can switch
	// this disclosure off; here it is off unless enabled.
	ShowOS bool
	// Hide withdraws the module: it claims no iq route and advertises no
	// feature. A version request is then answered with
	// service-unavailable by the server core, exactly as by an entity
	// that does not support the namespace (XEP-0092 §3), and disco#info
	// does not list jabber:iq:version (XEP-0092 §4). A hidden server thus
	// discloses nothing, not even that it withholds its version.
	Hide bool
}

// Deps are what the module builds on. The version module needs nothing:
// the type is there so that New has the shape of every module's
// constructor.
type Deps struct{}

// Module answers software version requests. Create it with New.
type Module struct {
	version string
	os      string
	hide    bool
}

// New returns the version module configured by opts. It never fails:
// every Options value is valid; the error is there for the shape every
// module's constructor shares.
func New(opts Options, deps Deps) (*Module, error) {
	m := &Module{version: opts.Version, hide: opts.Hide}
	if m.version == "" {
		m.version = buildVersion()
	}
	if opts.ShowOS {
		m.os = runtime.GOOS
	}
	return m, nil
}

// Name returns "version".
func (*Module) Name() string { return "version" }

// Version returns the version the module reports.
func (m *Module) Version() string { return m.version }

// IQRoutes answers <iq type='get'><query xmlns='jabber:iq:version'/></iq>
// sent to the server's domain, unless the module is hidden.
func (m *Module) IQRoutes() []server.IQRoute {
	if m.hide {
		return nil
	}
	return []server.IQRoute{{
		Type:    mstanza.GetIQ,
		Payload: xml.Name{Space: NS, Local: "query"},
		To:      server.TargetHost,
		Handler: server.IQHandlerFunc(m.handle),
	}}
}

// Features advertises jabber:iq:version on the server's domain, unless
// the module is hidden.
func (m *Module) Features(t server.Target) []string {
	if m.hide || t != server.TargetHost {
		return nil
	}
	return []string{NS}
}

func (m *Module) handle(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	children := []xml.TokenReader{
		stanza.TextElem(xml.Name{Local: "name"}, Software),
		stanza.TextElem(xml.Name{Local: "version"}, m.version),
	}
	if m.os != "" {
		children = append(children, stanza.TextElem(xml.Name{Local: "os"}, m.os))
	}
	return w.Result(stanza.Elem(xml.Name{Space: NS, Local: "query"}, nil, children...))
}

// buildVersion returns the version of the Kiez module in this binary:
// the main module's when Kiez is built itself, the dependency's when it
// is embedded, and "devel" for untagged builds.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	mod := &bi.Main
	if mod.Path != modulePath {
		mod = nil
		for _, d := range bi.Deps {
			if d.Path == modulePath {
				mod = d
				if d.Replace != nil {
					mod = d.Replace
				}
				break
			}
		}
	}
	if mod == nil || mod.Version == "" || mod.Version == "(devel)" {
		return "devel"
	}
	return mod.Version
}

var (
	_ server.Module          = (*Module)(nil)
	_ server.IQProvider      = (*Module)(nil)
	_ server.FeatureProvider = (*Module)(nil)
)

// Package contact publishes XEP-0157 contact addresses: whom to write
// about abuse, security problems or support, as a XEP-0128 data form in
// the disco#info of the server's domain.
package contact

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"slices"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
)

// FormType is the FORM_TYPE of the XEP-0157 server information form.
const FormType = "http://jabber.org/network/serverinfo"

// NSData is the XEP-0004 data forms namespace.
const NSData = "jabber:x:data"

// The address types XEP-0157 registers, used as keys of
// Options.Addresses.
const (
	Abuse    = "abuse-addresses"
	Admin    = "admin-addresses"
	Feedback = "feedback-addresses"
	Sales    = "sales-addresses"
	Security = "security-addresses"
	Status   = "status-addresses"
	Support  = "support-addresses"
)

// ErrUnknownType is wrapped by the error New returns for an address type
// XEP-0157 does not register.
var ErrUnknownType = errors.New("contact: unknown address type")

// ErrBadURI is wrapped by the error New returns for an address that is
// not an absolute URI.
var ErrBadURI = errors.New("contact: malformed URI")

// Options configure the module.
type Options struct {
	// Addresses maps each address type (Abuse, Security, ...) to its
	// URIs, such as "mailto:abuse@example.org", "xmpp:admin@example.org"
	// or "https://example.org/support". Types without URIs are left out.
	Addresses map[string][]string
}

// Deps are what the module builds on. The contact module needs nothing:
// the type is there so that New has the shape of every module's
// constructor.
type Deps struct{}

// Module publishes contact addresses. Create it with New.
type Module struct {
	// form is the complete <x/> element, or nil when nothing is
	// configured. It is never changed after New.
	form []xml.Token
}

// New validates opts and returns the contact module. It fails, wrapping
// ErrUnknownType or ErrBadURI, for an address type XEP-0157 does not
// register or an address that is not a URI with a scheme.
func New(opts Options, deps Deps) (*Module, error) {
	types := make([]string, 0, len(opts.Addresses))
	for typ, uris := range opts.Addresses {
		if !known(typ) {
			return nil, fmt.Errorf("%w %q (want one of %s)", ErrUnknownType, typ, knownTypes)
		}
		for _, u := range uris {
			if reason := checkURI(u); reason != "" {
				return nil, fmt.Errorf("%w %q in %s: %s", ErrBadURI, u, typ, reason)
			}
		}
		if len(uris) > 0 {
			types = append(types, typ)
		}
	}
	m := &Module{}
	if len(types) == 0 {
		return m, nil
	}
	slices.Sort(types)
	fields := []xml.TokenReader{field("FORM_TYPE", "hidden", FormType)}
	for _, typ := range types {
		fields = append(fields, field(typ, "", opts.Addresses[typ]...))
	}
	x := stanza.Elem(xml.Name{Space: NSData, Local: "x"}, []xml.Attr{stanza.Attr("type", "result")}, fields...)
	for tok, err := x.Token(); err == nil; tok, err = x.Token() {
		m.form = append(m.form, tok)
	}
	return m, nil
}

const knownTypes = Abuse + ", " + Admin + ", " + Feedback + ", " + Sales + ", " + Security + ", " + Status + ", " + Support

// known reports whether XEP-0157 registers the address type typ.
func known(typ string) bool {
	switch typ {
	case Abuse, Admin, Feedback, Sales, Security, Status, Support:
		return true
	}
	return false
}

// checkURI accepts absolute URIs with something after the scheme; for
// anything else it says what is wrong.
func checkURI(s string) (reason string) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err.Error()
	case u.Scheme == "":
		return "no scheme"
	case u.Opaque == "" && u.Host == "" && u.Path == "":
		return "nothing after the scheme"
	}
	return ""
}

// field returns a data form field with one <value/> per value.
func field(name, typ string, values ...string) xml.TokenReader {
	attrs := []xml.Attr{stanza.Attr("var", name)}
	if typ != "" {
		attrs = append(attrs, stanza.Attr("type", typ))
	}
	vals := make([]xml.TokenReader, len(values))
	for i, v := range values {
		vals[i] = stanza.TextElem(xml.Name{Local: "value"}, v)
	}
	return stanza.Elem(xml.Name{Local: "field"}, attrs, vals...)
}

// Name returns "contact".
func (*Module) Name() string { return "contact" }

// Forms returns the contact address form for the server's domain, and
// nothing when no address is configured.
func (m *Module) Forms(t server.Target) []xml.TokenReader {
	if t != server.TargetHost || m.form == nil {
		return nil
	}
	return []xml.TokenReader{stanza.Tokens(m.form...)}
}

var (
	_ server.Module       = (*Module)(nil)
	_ server.FormProvider = (*Module)(nil)
)

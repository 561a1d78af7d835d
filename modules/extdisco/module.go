// Package extdisco implements XEP-0215 external service discovery: it
// tells local clients which STUN and TURN servers to use for calls
// (Jingle audio and video, XEP-0167), and hands out time-limited TURN
// credentials computed from a secret shared with the TURN server, as
// coturn's REST API ("use-auth-secret", also eturnal and Prosody's
// mod_turn_external) expects:
//
//	username = <expiry as Unix seconds> ":" <random, non-identifying tag>
//	password = base64(HMAC-SHA1(secret, username))
//
// The TURN server recomputes the password from the username and refuses
// it after the expiry; nothing is stored. The tag is random per request
// rather than the user's JID, so that the TURN server's logs and the
// relay's users learn nothing of who calls.
//
// Only local accounts get the list: an iq from another server's user, or
// from a domain or service, is refused with forbidden.
package extdisco

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strconv"
	"time"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
)

// NS is the XEP-0215 namespace, advertised on the server.
const NS = "urn:xmpp:extdisco:2"

// Defaults and bounds of Options.
const (
	DefaultTTL = 24 * time.Hour
	MaxTTL     = 30 * 24 * time.Hour
)

// Service is one external server.
type Service struct {
	// Type is "stun", "stuns", "turn" or "turns" (required).
	Type string
	// Host is the server's host name or IP address (required).
	Host string
	// Port is the server's port (0 to leave it out: the type's default).
	Port int
	// Transport is "udp" or "tcp" ("" to leave it out).
	Transport string
	// Name is a human-readable name ("" for none).
	Name string
}

// Options configure the module.
type Options struct {
	// Services are the servers listed, in order.
	Services []Service
	// Secret is the secret shared with the TURN servers (coturn's
	// static-auth-secret). With it, "turn" and "turns" services are
	// listed as restricted, with credentials; without it they are listed
	// without credentials, for TURN servers that need none.
	Secret string
	// TTL is how long credentials are valid (default 24 hours, at most
	// 30 days).
	TTL time.Duration
}

// Deps are what the module builds on: nothing.
type Deps struct{}

// Module implements XEP-0215. Create it with New.
type Module struct {
	services []Service
	secret   []byte
	ttl      time.Duration
	host     server.Host
}

// New returns the module listing opts.Services. It fails for a service
// without a host or with an unknown type, port or transport, or a TTL
// out of range.
func New(opts Options, deps Deps) (*Module, error) {
	for i, s := range opts.Services {
		switch s.Type {
		case "stun", "stuns", "turn", "turns":
		default:
			return nil, fmt.Errorf("extdisco: service %d: type %q is none of stun, stuns, turn, turns", i+1, s.Type)
		}
		if s.Host == "" {
			return nil, fmt.Errorf("extdisco: service %d: no host", i+1)
		}
		if s.Port < 0 || s.Port > 65535 {
			return nil, fmt.Errorf("extdisco: service %d: port %d out of range", i+1, s.Port)
		}
		switch s.Transport {
		case "", "udp", "tcp":
		default:
			return nil, fmt.Errorf("extdisco: service %d: transport %q is neither udp nor tcp", i+1, s.Transport)
		}
	}
	switch {
	case opts.TTL == 0:
		opts.TTL = DefaultTTL
	case opts.TTL < time.Minute || opts.TTL > MaxTTL:
		return nil, fmt.Errorf("extdisco: ttl %v out of range 1m..%v", opts.TTL, MaxTTL)
	}
	m := &Module{services: append([]Service(nil), opts.Services...), ttl: opts.TTL}
	if opts.Secret != "" {
		m.secret = []byte(opts.Secret)
	}
	return m, nil
}

// Name returns "extdisco".
func (*Module) Name() string { return "extdisco" }

// Init keeps the host.
func (m *Module) Init(ctx context.Context, h server.Host) error {
	m.host = h
	return nil
}

// Features advertises urn:xmpp:extdisco:2 on the server.
func (*Module) Features(t server.Target) []string {
	if t == server.TargetHost {
		return []string{NS}
	}
	return nil
}

// IQRoutes answer services and credentials requests to the server.
func (m *Module) IQRoutes() []server.IQRoute {
	return []server.IQRoute{
		{Type: mstanza.GetIQ, Payload: xml.Name{Space: NS, Local: "services"}, To: server.TargetHost, Handler: server.IQHandlerFunc(m.list)},
		{Type: mstanza.GetIQ, Payload: xml.Name{Space: NS, Local: "credentials"}, To: server.TargetHost, Handler: server.IQHandlerFunc(m.credentials)},
	}
}

// restricted reports whether s is listed with credentials.
func (m *Module) restricted(s Service) bool {
	return m.secret != nil && (s.Type == "turn" || s.Type == "turns")
}

// local reports whether iq comes from a local account.
func (m *Module) local(iq stanza.IQ) bool {
	return iq.From.Localpart() != "" && m.host.IsLocal(iq.From.Domain().String())
}

var forbidden = mstanza.Error{Type: mstanza.Auth, Condition: mstanza.Forbidden}

// list answers <services/> (XEP-0215 §3.1), optionally of one type.
func (m *Module) list(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	if !m.local(iq) {
		return w.Error(forbidden)
	}
	el, _ := iq.ChildElement(xml.Name{Space: NS, Local: "services"})
	typ := el.Attr("type")
	now := time.Now()
	var items []xml.TokenReader
	for _, s := range m.services {
		if typ != "" && s.Type != typ {
			continue
		}
		items = append(items, m.element(s, now))
	}
	return w.Result(stanza.Elem(xml.Name{Space: NS, Local: "services"}, typeAttr(typ), items...))
}

// credentials answers <credentials/> (XEP-0215 §3.3) for the service
// with the host, type and (if given) port asked.
func (m *Module) credentials(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	if !m.local(iq) {
		return w.Error(forbidden)
	}
	el, _ := iq.ChildElement(xml.Name{Space: NS, Local: "credentials"})
	want, ok := el.Child(xml.Name{Space: NS, Local: "service"})
	if !ok || want.Attr("host") == "" {
		return w.Error(mstanza.Error{Type: mstanza.Modify, Condition: mstanza.BadRequest})
	}
	for _, s := range m.services {
		if s.Host != want.Attr("host") || (want.Attr("type") != "" && s.Type != want.Attr("type")) {
			continue
		}
		if p := want.Attr("port"); p != "" && p != strconv.Itoa(s.Port) {
			continue
		}
		if !m.restricted(s) {
			continue
		}
		return w.Result(stanza.Elem(xml.Name{Space: NS, Local: "credentials"}, nil, m.element(s, time.Now())))
	}
	return w.Error(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ItemNotFound})
}

func typeAttr(typ string) []xml.Attr {
	if typ == "" {
		return nil
	}
	return []xml.Attr{stanza.Attr("type", typ)}
}

// element returns s's <service/>, with fresh credentials when it is
// restricted.
func (m *Module) element(s Service, now time.Time) xml.TokenReader {
	attrs := []xml.Attr{stanza.Attr("host", s.Host), stanza.Attr("type", s.Type)}
	if s.Port != 0 {
		attrs = append(attrs, stanza.Attr("port", strconv.Itoa(s.Port)))
	}
	if s.Transport != "" {
		attrs = append(attrs, stanza.Attr("transport", s.Transport))
	}
	if s.Name != "" {
		attrs = append(attrs, stanza.Attr("name", s.Name))
	}
	if m.restricted(s) {
		expires := now.Add(m.ttl).UTC().Truncate(time.Second)
		user, pass := Credentials(m.secret, expires, tag())
		attrs = append(attrs,
			stanza.Attr("restricted", "1"),
			stanza.Attr("username", user),
			stanza.Attr("password", pass),
			stanza.Attr("expires", expires.Format(time.RFC3339)))
	}
	return stanza.Elem(xml.Name{Space: NS, Local: "service"}, attrs)
}

// tag returns a random, non-identifying username suffix.
func tag() string {
	var b [9]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Credentials returns the TURN username and password valid until
// expires under coturn's REST API scheme: the username is expires as Unix
// seconds, ":" and tag ("" for none: no colon); the password is the
// base64 HMAC-SHA1 of the username keyed with secret.
func Credentials(secret []byte, expires time.Time, tag string) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10)
	if tag != "" {
		username += ":" + tag
	}
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

var (
	_ server.Module          = (*Module)(nil)
	_ server.Initializer     = (*Module)(nil)
	_ server.IQProvider      = (*Module)(nil)
	_ server.FeatureProvider = (*Module)(nil)
)

package server

import (
	"context"
	"encoding/xml"
	"log/slog"
	"net/http"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
)

// Module is a feature plugged into a Server. Only Name is required; every
// other capability is an optional interface below, discovered once by type
// assertion in New and frozen into tables. Never wrap a module in a type
// that hides them.
type Module interface {
	// Name is a stable, lowercase name such as "ping". It scopes the
	// module's logger and appears in errors.
	Name() string
}

// Initializer is implemented by modules that need the Host, or must set
// things up, before the server accepts connections. Modules are initialised
// in Config.Modules order; an error fails New.
type Initializer interface {
	Init(ctx context.Context, h Host) error
}

// Closer is implemented by modules that hold resources. Modules are closed
// in reverse Config.Modules order when the server shuts down.
type Closer interface {
	Close(ctx context.Context) error
}

// Host is what the server lends a module.
type Host interface {
	// Domains returns the virtual hosts the server serves.
	Domains() []jid.JID
	// IsLocal reports whether domain is one of the server's virtual hosts.
	IsLocal(domain string) bool
	// Logger returns the server's logger scoped with the module's name.
	Logger() *slog.Logger
	// Router routes stanzas on the module's behalf.
	Router() Router
	// Request sends the iq get or set iq (with From and To set: the
	// server's domain, a service, or an account the module acts for) and
	// returns the answer, an iq result or error, or ctx's error if none
	// came before ctx ended. The server gives the request an id of its
	// own; iq itself is not changed. Only an answer from the address
	// asked (or, for a bare JID or domain, one of its resources) to the
	// address asking is taken.
	Request(ctx context.Context, iq *stanza.Stanza) (*stanza.Stanza, error)
	// Go runs f in a goroutine whose context is cancelled at shutdown; the
	// server waits for it before closing modules.
	Go(f func(ctx context.Context))
	// Sessions returns the bound sessions of the account user (a bare JID),
	// for pushes to every resource. The slice must not be changed.
	Sessions(user jid.JID) []*Session
	// SendTo hands st to one session (a push, a stored message): st
	// passes the filters of its sender's side (if the sender is local) and
	// of the session's account, as every stanza does, then is queued. It
	// returns filter.ErrDrop if a filter stopped it (no answer is sent:
	// the stanza was accepted before), or ErrNotDelivered if the session
	// is closing. st must not be changed afterwards.
	SendTo(ctx context.Context, sess *Session, st *stanza.Stanza) error
	// UserExists reports whether user (a bare JID) is a local account.
	UserExists(ctx context.Context, user jid.JID) bool
	// HTTPURL returns the absolute URL at which clients of the virtual
	// host domain reach path, an escaped URL path that the module's
	// HTTPRoutes serve such as "/upload/abc/cat.jpg": Config.HTTPBaseURL
	// with path appended. It returns "" if there is no base URL for
	// domain, so the module has no URL to give.
	HTTPURL(domain, path string) string
}

// Router routes stanzas the server itself (or a module) originates. The
// stanza must have From and To set and must not be changed afterwards.
type Router interface {
	Route(ctx context.Context, s *stanza.Stanza) error
}

// Target says which iq addresses an IQRoute serves.
type Target uint8

// Targets of an IQRoute.
const (
	// TargetHost: iqs to the server's domain (to='example.org').
	TargetHost Target = iota + 1
	// TargetSelf: iqs a user sends without 'to' or to their own bare JID.
	TargetSelf
	// TargetBare: iqs to any local account's bare JID (including one's
	// own, when no TargetSelf route claims it).
	TargetBare
)

func (t Target) String() string {
	switch t {
	case TargetHost:
		return "host"
	case TargetSelf:
		return "self"
	case TargetBare:
		return "bare"
	}
	return "unknown"
}

// IQRoute binds iqs of one type, payload and target to a handler.
type IQRoute struct {
	Type    mstanza.IQType // get or set
	Payload xml.Name       // the child element's namespace and local name
	To      Target
	Handler IQHandler
}

// IQProvider is implemented by modules that answer iqs.
type IQProvider interface {
	IQRoutes() []IQRoute
}

// IQHandler answers an iq get or set.
type IQHandler interface {
	HandleIQ(ctx context.Context, iq stanza.IQ, w ResponseWriter) error
}

// IQHandlerFunc adapts a function to IQHandler.
type IQHandlerFunc func(ctx context.Context, iq stanza.IQ, w ResponseWriter) error

// HandleIQ calls f.
func (f IQHandlerFunc) HandleIQ(ctx context.Context, iq stanza.IQ, w ResponseWriter) error {
	return f(ctx, iq, w)
}

// ResponseWriter answers one iq exactly once: a second call returns
// ErrAlreadyAnswered; a handler that returns without answering makes the
// server answer service-unavailable. A handler that returns a
// stanza.Failure or a mellium stanza.Error (possibly wrapped) without
// answering is answered with it, application-specific condition
// included; any other returned error is logged and answered with
// internal-server-error (if nothing was sent yet).
type ResponseWriter interface {
	// Result sends an iq result with payload as its child (nil for none).
	Result(payload xml.TokenReader) error
	// Error sends an iq error.
	Error(e mstanza.Error) error
}

// Identity is a XEP-0030 identity.
type Identity struct {
	Category, Type, Name, Lang string
}

// FeatureProvider is implemented by modules that add XEP-0030 features to
// disco#info of the server (TargetHost) or of accounts (TargetBare).
type FeatureProvider interface {
	Features(t Target) []string
}

// IdentityProvider is implemented by modules that add XEP-0030 identities.
type IdentityProvider interface {
	Identities(t Target) []Identity
}

// FormProvider is implemented by modules that add XEP-0128 data forms to
// disco#info (for example XEP-0157 contact addresses). Each reader yields
// one complete <x xmlns='jabber:x:data' type='result'/> element.
type FormProvider interface {
	Forms(t Target) []xml.TokenReader
}

// Service is a sub-domain service such as upload.example.org, for every
// virtual host: it receives the stanzas addressed to Subdomain.<vhost>
// and to addresses at it (room@conference.example.org/nick). The server
// answers disco#info and disco#items queries to the service itself
// (without a node) from Name, Identity, Features, Forms and Items; iq gets and sets go
// to the IQRoutes, answered exactly once through a ResponseWriter as a
// module's are (TargetHost: iqs to the service's domain; TargetBare: iqs
// to an address at the service, with or without a resource); everything
// else goes to Handler. An iq no route takes, without a Handler, is
// answered with service-unavailable; so is a message.
type Service struct {
	Subdomain string // "upload"
	Name      string // a human-readable name for disco#items and the identity
	// Identity is the service's XEP-0030 identity; the zero value means
	// category "component", type "generic".
	Identity Identity
	// Features are the service's disco#info features.
	Features []string
	// Forms, if set, yields XEP-0128 data forms for the service's
	// disco#info (such as XEP-0363's max-file-size), each a complete
	// <x xmlns='jabber:x:data' type='result'/> element, fresh per call.
	Forms func() []xml.TokenReader
	// Items, if set, lists the disco#items of the service at the domain
	// to (such as a chat service's public rooms) for the requester from,
	// fresh per call; without it the list is empty.
	Items func(ctx context.Context, from, to jid.JID) []DiscoItem
	// IQRoutes answer iq gets and sets; two routes with the same type,
	// payload and target make New fail.
	IQRoutes []IQRoute
	// Handler takes the other stanzas; it may be nil if IQRoutes are set.
	Handler StanzaHandler
}

// ServiceProvider is implemented by modules that host sub-domain services.
type ServiceProvider interface {
	Services() []Service
}

// StanzaHandler handles a stanza addressed to a service.
type StanzaHandler interface {
	HandleStanza(ctx context.Context, s *stanza.Stanza) error
}

// StreamFeature is a step of stream negotiation a module adds: an element
// advertised in the stream features and, optionally, iqs the client may
// send while it is offered. By default it is offered to authenticated
// streams, beside resource binding (for example roster versioning); with
// BeforeAuth, to TLS streams before authentication, beside SASL (for
// example XEP-0077 in-band registration).
type StreamFeature struct {
	// Element yields the complete feature element. The server
	// serialises it once, in New.
	Element func() xml.TokenReader
	// BeforeAuth offers the feature before authentication instead of
	// after it.
	BeforeAuth bool
	// IQRoutes answer iqs the client sends while the feature is offered
	// (their To is ignored). The iq's From is empty before authentication
	// (the account's bare JID after it), its To the stream's domain if
	// the client gave none. The handler answers through the
	// ResponseWriter before it returns; the answer goes to the stream.
	IQRoutes []IQRoute

	module string
}

// StreamFeatureProvider is implemented by modules that add steps to
// stream negotiation.
type StreamFeatureProvider interface {
	StreamFeatures() []StreamFeature
}

// HTTPRoute is an HTTP handler served on the server's HTTP listeners.
type HTTPRoute struct {
	Pattern string // a net/http ServeMux pattern
	Handler http.Handler
	module  string
}

// HTTPProvider is implemented by modules that serve HTTP (file upload).
type HTTPProvider interface {
	HTTPRoutes() []HTTPRoute
}

// SessionStarter is implemented by modules that act when a session's
// resource is bound, before the client learns it.
type SessionStarter interface {
	SessionStarted(ctx context.Context, s *Session)
}

// SessionResumer is implemented by modules that act when a session
// hibernated by stream management (XEP-0198) is resumed on a new
// connection, after the client learnt it: the client is connected again,
// as after SessionStarted.
type SessionResumer interface {
	SessionResumed(ctx context.Context, s *Session)
}

// SessionEnder is implemented by modules that act when a session ends,
// after it is gone from the registry. State a module keeps per session
// belongs in a SessionValue, which the server drops by itself.
type SessionEnder interface {
	SessionEnded(ctx context.Context, s *Session)
}

// AccountListener is implemented by modules that follow accounts created
// or deleted through the Server.
type AccountListener interface {
	AccountCreated(ctx context.Context, user jid.JID)
	AccountDeleted(ctx context.Context, user jid.JID)
}

// AvailabilityListener is implemented by modules that act when a session
// sends its initial presence (offline message delivery). It is called
// after the session counts as available, so that a message routed
// concurrently is either delivered to it or seen by the listener.
type AvailabilityListener interface {
	SessionAvailable(ctx context.Context, s *Session)
}

// DiscoItem is a XEP-0030 item.
type DiscoItem struct {
	JID  jid.JID
	Node string
	Name string
}

// DiscoNode is what a module tells about one of its XEP-0030 nodes.
type DiscoNode struct {
	Identities []Identity
	Features   []string
	Items      []DiscoItem
}

// NodeProvider is implemented by modules that answer disco#info and
// disco#items queries for nodes at the server (TargetHost) or at accounts
// (TargetBare), such as XEP-0050's command list. from is the requester's
// full JID and to the queried address; ok false means the node is not the
// module's (the next provider is asked, and item-not-found answered when
// none knows it).
type NodeProvider interface {
	DiscoNode(ctx context.Context, t Target, node string, from, to jid.JID) (n DiscoNode, ok bool)
}

// UndeliveredHandler is offered messages addressed to a local account that
// has no available resource, in Config.Modules order, until one returns
// handled (offline storage).
type UndeliveredHandler interface {
	HandleUndelivered(ctx context.Context, s *stanza.Stanza) (handled bool, err error)
}

// UserDataOwner is implemented by every module that stores data for a user.
// DeleteUser removes all of it; ExportUser writes it as XEP-0227 elements
// inside the <user/> element.
type UserDataOwner interface {
	DeleteUser(ctx context.Context, user jid.JID) error
	ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error
}

// UserDataDeclarer is implemented by modules that keep per-user data; it
// names the kinds kept (for example "roster items"). New refuses a module
// that declares user data without implementing UserDataOwner, so that
// deleting an account can never leave that data behind.
type UserDataDeclarer interface {
	UserData() []string
}

// RemoteRouter carries stanzas to other servers (federation). Until one is
// configured, stanzas to remote domains are answered with
// remote-server-not-found.
type RemoteRouter interface {
	RouteRemote(ctx context.Context, s *stanza.Stanza) error
}

// StanzaHandlerFunc adapts a function to StanzaHandler.
type StanzaHandlerFunc func(ctx context.Context, s *stanza.Stanza) error

// HandleStanza calls f.
func (f StanzaHandlerFunc) HandleStanza(ctx context.Context, s *stanza.Stanza) error {
	return f(ctx, s)
}

// Package register implements XEP-0077 In-Band Registration for the
// server's own accounts: before authentication a client may ask for the
// registration fields and create an account (jabber:iq:register on the
// negotiating stream, advertised with the
// <register xmlns='http://jabber.org/features/iq-register'/> stream
// feature); after it, a user may change their password (XEP-0077 §3.3)
// or delete their account (§3.2).
//
// Who may register is Options.Policy: nobody (PolicyClosed), anybody
// (PolicyOpen), or whoever holds an invitation token (PolicyInvite, the
// default), which Deps.Invites redeems. The token travels in the
// registration data form (XEP-0004, FORM_TYPE jabber:iq:register), in a
// field "token", as XEP-0401 0.2 put it, or, as XEP-0445 has it, in a
// <preauth xmlns='urn:xmpp:pars:0' token='…'/> iq the client sends on
// the negotiating stream before registering (stream feature
// <register xmlns='urn:xmpp:ibr-token:0'/>, and its earlier name
// <register xmlns='urn:xmpp:invite'/>, offered when Deps.Invites is set).
//
// Accounts are created, changed and deleted through Deps.Accounts, which
// *server.Server implements; deleting one goes through
// server.Server.DeleteUser, so every module's data of the account goes
// with it.
package register

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
)

// Namespaces of XEP-0077.
const (
	// NS is the registration namespace (<query xmlns='jabber:iq:register'/>),
	// also the FORM_TYPE of the registration data form and a disco#info
	// feature of the server.
	NS = "jabber:iq:register"
	// NSFeature is the namespace of the stream feature.
	NSFeature = "http://jabber.org/features/iq-register"
	// FormTypeChangePassword is the FORM_TYPE of XEP-0077's password
	// change form, accepted beside NS when a user changes their password.
	FormTypeChangePassword = "jabber:iq:register:changepassword"
)

// Policy says who may register an account.
type Policy string

// Policies.
const (
	// PolicyClosed: nobody registers in-band; password changes and
	// account removal still work.
	PolicyClosed Policy = "closed"
	// PolicyInvite: a registration needs an invitation token that
	// Deps.Invites redeems.
	PolicyInvite Policy = "invite"
	// PolicyOpen: anybody registers.
	PolicyOpen Policy = "open"
)

// Defaults for zero Options.
const (
	DefaultPolicy      = PolicyInvite
	DefaultMinPassword = 8
	DefaultMaxUsername = 64
)

// MaxPassword is the longest password accepted, in bytes.
const MaxPassword = 1024

// DefaultReserved are the usernames nobody may register unless
// Options.Reserved says otherwise: addresses of the server's staff (RFC
// 2142 mailboxes, among others) that a stranger could abuse.
var DefaultReserved = []string{
	"abuse", "admin", "administrator", "hostmaster", "postmaster", "root",
	"security", "support", "webmaster", "www", "xmpp",
}

// Options configure the module. The zero value allows registration by
// invitation with the defaults below.
type Options struct {
	// Policy is who may register: PolicyClosed, PolicyInvite or
	// PolicyOpen. Empty means DefaultPolicy (PolicyInvite).
	Policy Policy
	// Reserved are usernames that cannot be registered (compared after
	// PRECIS case mapping, so "Admin" is "admin"), except with an
	// invitation naming them. Nil means DefaultReserved; an empty,
	// non-nil slice reserves none.
	Reserved []string
	// MinPassword is the fewest characters (Unicode code points, after
	// PRECIS OpaqueString preparation) of a new password. Zero means
	// DefaultMinPassword.
	MinPassword int
	// MaxUsername is the most characters of a username (after PRECIS
	// case mapping). Zero means DefaultMaxUsername.
	MaxUsername int
	// Instructions, if set, replace the default <instructions/> of the
	// registration fields.
	Instructions string
	// AllowRemove says whether users may delete their account in-band
	// (XEP-0077 §3.2). Nil means true; register.Options{AllowRemove:
	// new(false)} refuses removal with not-allowed.
	AllowRemove *bool
}

// Accounts manages the server's accounts. *server.Server implements it.
type Accounts interface {
	// CreateUser creates the account user (a bare JID); it fails with an
	// error wrapping storage.ErrExists if the account exists.
	CreateUser(ctx context.Context, user jid.JID, password string) error
	// SetPassword replaces the account's password.
	SetPassword(ctx context.Context, user jid.JID, password string) error
	// DeleteUser deletes the account and all its data, ending its
	// sessions.
	DeleteUser(ctx context.Context, user jid.JID) error
}

// Remover is implemented by Accounts that honour a grace period for an
// owner's removal of their account (*server.Server.RemoveUser, with
// server.Config.RemovalGrace); <remove/> uses it when Accounts has it,
// DeleteUser otherwise.
type Remover interface {
	RemoveUser(ctx context.Context, user jid.JID) error
}

// Invite is what an invitation token allows.
type Invite struct {
	// Username, if set, is the only username the token registers (an
	// XEP-0401 account creation invitation naming the account). It is
	// compared after PRECIS case mapping.
	Username string
}

// ErrInvalidToken is returned (wrapped) by Invites.Redeem for a token
// that is unknown, expired, used up or being used.
var ErrInvalidToken = errors.New("register: invalid invitation token")

// Invites redeems invitation tokens (an invitation module implements it).
type Invites interface {
	// Redeem registers the account user with token: if the token is
	// valid, it calls create with what the token allows and, only if
	// create succeeds, counts the token as used (XEP-0445: a token is not
	// used until the registration succeeded). It returns an error
	// wrapping ErrInvalidToken for a token that is not valid, or create's
	// error. Two Redeems of one single-use token must not both call
	// create: one being redeemed counts as used meanwhile. An
	// implementation may act on the new account once create succeeded
	// (subscribe the inviter and the invitee to each other, XEP-0401).
	Redeem(ctx context.Context, token string, user jid.JID, create func(Invite) error) error
}

// Deps are what the module builds on.
type Deps struct {
	// Accounts returns the account manager (required). It is called for
	// every request, never before the server serves, so it can return a
	// *server.Server that server.New returns after this module was
	// built:
	//
	//	var srv *server.Server
	//	reg, err := register.New(opts, register.Deps{
	//		Accounts: func() register.Accounts { return srv },
	//	})
	//	...
	//	srv, err = server.New(ctx, server.Config{Modules: []server.Module{reg}})
	Accounts func() Accounts
	// Invites redeems invitation tokens; required with PolicyInvite.
	Invites Invites
	// RateLimit, if set, is asked before each account is created, with
	// the registering client's IP address (server.ClientAddr;
	// filter/ipfilter's Filter.AllowRegistration fits); false refuses
	// the registration with resource-constraint. A stream without an IP
	// address (an in-process pipe) is not limited.
	RateLimit func(addr netip.Addr) bool
}

// Module serves in-band registration. Create it with New.
type Module struct {
	policy       Policy
	reserved     map[string]bool
	minPassword  int
	maxUsername  int
	instructions string
	allowRemove  bool
	accounts     func() Accounts
	invites      Invites
	presented    server.StreamValue[string] // a XEP-0445 token
	rateLimit    func(netip.Addr) bool
	host         server.Host
	log          *slog.Logger
}

// New returns the registration module. It fails without Deps.Accounts,
// for an unknown policy, for PolicyInvite without Deps.Invites, for
// negative limits, and for a reserved name that is no valid username.
func New(opts Options, deps Deps) (*Module, error) {
	if deps.Accounts == nil {
		return nil, errors.New("register: no Deps.Accounts")
	}
	if opts.Policy == "" {
		opts.Policy = DefaultPolicy
	}
	switch opts.Policy {
	case PolicyClosed, PolicyOpen:
	case PolicyInvite:
		if deps.Invites == nil {
			return nil, errors.New("register: policy invite without Deps.Invites")
		}
	default:
		return nil, fmt.Errorf("register: unknown policy %q (want closed, invite or open)", opts.Policy)
	}
	if opts.MinPassword < 0 || opts.MaxUsername < 0 {
		return nil, fmt.Errorf("register: negative limit (MinPassword %d, MaxUsername %d)", opts.MinPassword, opts.MaxUsername)
	}
	if opts.MinPassword == 0 {
		opts.MinPassword = DefaultMinPassword
	}
	if opts.MaxUsername == 0 {
		opts.MaxUsername = DefaultMaxUsername
	}
	if opts.Reserved == nil {
		opts.Reserved = DefaultReserved
	}
	m := &Module{
		policy:       opts.Policy,
		reserved:     make(map[string]bool, len(opts.Reserved)),
		minPassword:  opts.MinPassword,
		maxUsername:  opts.MaxUsername,
		instructions: opts.Instructions,
		allowRemove:  opts.AllowRemove == nil || *opts.AllowRemove,
		accounts:     deps.Accounts,
		invites:      deps.Invites,
		presented:    server.NewStreamValue[string](),
		rateLimit:    deps.RateLimit,
		log:          slog.New(slog.DiscardHandler),
	}
	for _, r := range opts.Reserved {
		p, err := precis.UsernameCaseMapped.String(r)
		if err != nil {
			return nil, fmt.Errorf("register: reserved name %q: %w", r, err)
		}
		m.reserved[p] = true
	}
	if m.instructions == "" {
		m.instructions = "Choose a username and a password of at least " + strconv.Itoa(m.minPassword) + " characters."
		if m.policy == PolicyInvite {
			m.instructions += " Registration needs an invitation token, in the form's token field."
		}
	}
	return m, nil
}

// Name returns "register".
func (*Module) Name() string { return "register" }

// Init keeps the host.
func (m *Module) Init(_ context.Context, h server.Host) error {
	m.host = h
	m.log = h.Logger()
	return nil
}

var (
	queryName   = xml.Name{Space: NS, Local: "query"}
	featureName = xml.Name{Space: NSFeature, Local: "register"}
)

// StreamFeatures offers registration before authentication: the
// <register/> stream feature (unless the policy is closed) and the
// jabber:iq:register get and set on the negotiating stream. With
// PolicyClosed the iqs are still answered, with errors, so that a client
// trying anyway learns why.
func (m *Module) StreamFeatures() []server.StreamFeature {
	f := server.StreamFeature{BeforeAuth: true, IQRoutes: []server.IQRoute{
		{Type: mstanza.GetIQ, Payload: queryName, Handler: server.IQHandlerFunc(m.get)},
		{Type: mstanza.SetIQ, Payload: queryName, Handler: server.IQHandlerFunc(m.set)},
	}}
	if m.policy == PolicyClosed {
		return []server.StreamFeature{f}
	}
	f.Element = func() xml.TokenReader { return stanza.Elem(featureName, nil) }
	if m.invites == nil {
		return []server.StreamFeature{f}
	}
	return append(m.preauthFeatures(), f)
}

// IQRoutes answers jabber:iq:register gets and sets of authenticated
// users, to the server's domain or without 'to' (password change,
// removal).
func (m *Module) IQRoutes() []server.IQRoute {
	var routes []server.IQRoute
	for _, to := range []server.Target{server.TargetHost, server.TargetSelf} {
		routes = append(routes,
			server.IQRoute{Type: mstanza.GetIQ, Payload: queryName, To: to, Handler: server.IQHandlerFunc(m.get)},
			server.IQRoute{Type: mstanza.SetIQ, Payload: queryName, To: to, Handler: server.IQHandlerFunc(m.set)},
		)
	}
	return routes
}

// Features lists jabber:iq:register on the server's domain, where clients
// look for in-band password change.
func (m *Module) Features(t server.Target) []string {
	if t == server.TargetHost {
		return []string{NS}
	}
	return nil
}

// requester says who sent a registration iq.
type requester int

const (
	unauthenticated requester = iota // on the negotiating stream
	localUser                        // an account of this server, about itself
	stranger                         // anybody else
)

func (m *Module) requester(iq stanza.IQ) requester {
	switch {
	case iq.From.String() == "":
		return unauthenticated
	case iq.From.Localpart() != "" && m.host.IsLocal(iq.From.Domainpart()) &&
		(iq.To.String() == "" || iq.To.Domainpart() == iq.From.Domainpart()):
		return localUser
	}
	return stranger
}

func refuse(typ mstanza.ErrorType, cond mstanza.Condition, text string) error {
	return stanza.NewError(typ, cond, text)
}

func (m *Module) get(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	switch m.requester(iq) {
	case localUser:
		return w.Result(stanza.Elem(queryName, nil,
			stanza.Elem(xml.Name{Space: NS, Local: "registered"}, nil),
			stanza.TextElem(xml.Name{Space: NS, Local: "username"}, iq.From.Localpart()),
			stanza.Elem(xml.Name{Space: NS, Local: "password"}, nil),
		))
	case stranger:
		return refuse(mstanza.Cancel, mstanza.NotAllowed, "registration is for this server's own clients")
	}
	if m.policy == PolicyClosed {
		// XEP-0077 §3.1: a host without in-band registration answers
		// service-unavailable.
		return refuse(mstanza.Cancel, mstanza.ServiceUnavailable, "registration is closed")
	}
	children := []xml.TokenReader{
		stanza.TextElem(xml.Name{Space: NS, Local: "instructions"}, m.instructions),
		stanza.Elem(xml.Name{Space: NS, Local: "username"}, nil),
		stanza.Elem(xml.Name{Space: NS, Local: "password"}, nil),
	}
	if m.policy == PolicyInvite {
		children = append(children, m.form().TokenReader())
	}
	return w.Result(stanza.Elem(queryName, nil, children...))
}

// form is the registration form shown with PolicyInvite.
func (m *Module) form() *form.Form {
	return &form.Form{
		Type:         form.TypeForm,
		Title:        "Account registration",
		Instructions: m.instructions,
		Fields: []form.Field{
			form.FormTypeField(NS),
			{Var: "username", Type: form.TextSingle, Label: "Username", Required: true},
			{Var: "password", Type: form.TextPrivate, Label: "Password", Required: true},
			{Var: "token", Type: form.TextSingle, Label: "Invitation token", Required: true},
		},
	}
}

// request is what a set carries.
type request struct {
	remove                    bool
	username, password, token string
	hasUsername, hasPassword  bool
}

// parse reads a set's query: the legacy fields or, if there is one, the
// data form with FORM_TYPE jabber:iq:register (or, for a password change,
// jabber:iq:register:changepassword).
func parse(iq stanza.IQ) (request, error) {
	var r request
	query, _ := iq.PayloadElement()
	n := 0
	for el := range query.Children() {
		n++
		if el.Name.Space != NS {
			if el.Name.Space == form.NS && el.Name.Local == "x" {
				return parseForm(el)
			}
			continue
		}
		switch el.Name.Local {
		case "remove":
			r.remove = true
		case "username":
			r.username, r.hasUsername = el.Text(), true
		case "password":
			r.password, r.hasPassword = el.Text(), true
		}
	}
	if r.remove && n > 1 {
		return r, refuse(mstanza.Modify, mstanza.BadRequest, "<remove/> must be the only child of the query")
	}
	return r, nil
}

func parseForm(el stanza.Element) (request, error) {
	var r request
	f, err := form.Parse(stanza.Tokens(el.Tokens()...))
	if err != nil {
		var se interface{ StanzaError() mstanza.Error }
		if errors.As(err, &se) {
			return r, se.StanzaError()
		}
		return r, refuse(mstanza.Modify, mstanza.BadRequest, "not a data form")
	}
	if f.Type != form.TypeSubmit {
		return r, refuse(mstanza.Modify, mstanza.BadRequest, "the form must be submitted")
	}
	if ft := f.FormType(); ft != NS && ft != FormTypeChangePassword {
		return r, refuse(mstanza.Modify, mstanza.BadRequest, "unknown FORM_TYPE "+strconv.Quote(ft))
	}
	r.username, r.hasUsername = f.Value("username")
	r.password, r.hasPassword = f.Value("password")
	r.token, _ = f.Value("token")
	return r, nil
}

func (m *Module) set(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	who := m.requester(iq)
	if who == stranger {
		return refuse(mstanza.Cancel, mstanza.NotAllowed, "registration is for this server's own clients")
	}
	r, err := parse(iq)
	if err != nil {
		return err
	}
	if who == localUser {
		if r.remove {
			return m.remove(iq, w)
		}
		return m.changePassword(ctx, iq, r, w)
	}
	if r.remove {
		return refuse(mstanza.Cancel, mstanza.UnexpectedRequest, "not registered: authenticate first")
	}
	return m.register(ctx, iq, r, w)
}

// register creates an account from an unauthenticated stream.
func (m *Module) register(ctx context.Context, iq stanza.IQ, r request, w server.ResponseWriter) error {
	if m.policy == PolicyClosed {
		return refuse(mstanza.Cancel, mstanza.NotAllowed, "registration is closed")
	}
	domain := iq.To
	if domain.Localpart() != "" || domain.Resourcepart() != "" || !m.host.IsLocal(domain.Domainpart()) {
		return refuse(mstanza.Modify, mstanza.BadRequest, "register with a domain of this server")
	}
	if r.username == "" || r.password == "" {
		// XEP-0077 §3.1: missing information (an empty password
		// included) is not-acceptable.
		return refuse(mstanza.Modify, mstanza.NotAcceptable, "a username and a password are required")
	}
	user, err := m.username(r.username, domain.Domainpart())
	if err != nil {
		return err
	}
	// A reserved name is refused, unless an invitation names it: the
	// administrator who made it chose the name.
	reserved := m.reserved[user.Localpart()]
	if reserved && m.policy != PolicyInvite {
		return refuseReserved
	}
	if err := m.checkPassword(r.password); err != nil {
		return err
	}
	if r.token == "" {
		r.token, _ = m.presented.Get(ctx) // XEP-0445
	}
	if m.policy == PolicyInvite && r.token == "" {
		return refuse(mstanza.Cancel, mstanza.NotAllowed, "registration needs an invitation token")
	}
	// Checked before the keys are derived (CreateUser runs PBKDF2);
	// CreateUser still reports a name taken meanwhile.
	if m.host.UserExists(ctx, user) {
		return refuse(mstanza.Cancel, mstanza.Conflict, "the username is taken")
	}
	if m.rateLimit != nil {
		if addr, ok := server.ClientAddr(ctx); ok && !m.rateLimit(addr) {
			return refuse(mstanza.Wait, mstanza.ResourceConstraint, "too many registrations: try again later")
		}
	}
	accounts := m.accounts()
	if accounts == nil {
		return errors.New("register: Deps.Accounts returned nil")
	}
	if m.policy == PolicyOpen && (r.token == "" || m.invites == nil) {
		// With a token, an open server still redeems it: a contact
		// invitation makes the inviter a contact.
		err = accounts.CreateUser(ctx, user, r.password)
	} else {
		err = m.invites.Redeem(ctx, r.token, user, func(inv Invite) error {
			if inv.Username == "" {
				if reserved {
					return errReserved
				}
			} else if want, err := precis.UsernameCaseMapped.String(inv.Username); err != nil || want != user.Localpart() {
				return errWrongName
			}
			return accounts.CreateUser(ctx, user, r.password)
		})
	}
	switch {
	case errors.Is(err, storage.ErrExists):
		return refuse(mstanza.Cancel, mstanza.Conflict, "the username is taken")
	case errors.Is(err, ErrInvalidToken):
		return refuse(mstanza.Cancel, mstanza.NotAllowed, "the invitation token is invalid, expired or used")
	case errors.Is(err, errReserved):
		return refuseReserved
	case errors.Is(err, errWrongName):
		return refuse(mstanza.Cancel, mstanza.NotAllowed, "the invitation is for another username")
	case err != nil:
		return err
	}
	m.log.Info("account registered", "policy", string(m.policy))
	return w.Result(nil)
}

var (
	errWrongName = errors.New("register: the invitation names another account")
	errReserved  = errors.New("register: the username is reserved")
)

var refuseReserved = refuse(mstanza.Modify, mstanza.NotAcceptable, "the username is reserved")

// username prepares a requested username (a localpart, or a bare JID at
// domain) and checks it against the rules.
func (m *Module) username(name, domain string) (jid.JID, error) {
	local := name
	if l, d, ok := strings.Cut(name, "@"); ok && d == domain {
		local = l
	}
	user, err := jid.New(local, domain, "")
	if err != nil || user.Localpart() == "" {
		return user, refuse(mstanza.Modify, mstanza.NotAcceptable, "the username is not valid (letters, digits and punctuation other than \"&'/:<>@, no spaces)")
	}
	if utf8.RuneCountInString(user.Localpart()) > m.maxUsername {
		return user, refuse(mstanza.Modify, mstanza.NotAcceptable, "the username is longer than "+strconv.Itoa(m.maxUsername)+" characters")
	}
	return user, nil
}

// checkPassword checks a new password against the rules.
func (m *Module) checkPassword(password string) error {
	if len(password) > MaxPassword {
		return refuse(mstanza.Modify, mstanza.NotAcceptable, "the password is longer than "+strconv.Itoa(MaxPassword)+" bytes")
	}
	p, err := precis.OpaqueString.String(password)
	if err != nil {
		return refuse(mstanza.Modify, mstanza.NotAcceptable, "the password contains characters that are not allowed")
	}
	if utf8.RuneCountInString(p) < m.minPassword {
		return refuse(mstanza.Modify, mstanza.NotAcceptable, "the password must have at least "+strconv.Itoa(m.minPassword)+" characters")
	}
	return nil
}

// changePassword is XEP-0077 §3.3: the user names their account and
// gives the new password.
func (m *Module) changePassword(ctx context.Context, iq stanza.IQ, r request, w server.ResponseWriter) error {
	user := iq.From.Bare()
	if !r.hasUsername || !r.hasPassword {
		return refuse(mstanza.Modify, mstanza.BadRequest, "a password change needs <username/> and <password/>")
	}
	if named, err := jid.New(strings.TrimSuffix(r.username, "@"+user.Domainpart()), user.Domainpart(), ""); err != nil || !named.Equal(user) {
		return refuse(mstanza.Modify, mstanza.BadRequest, "the username is not the account's")
	}
	if r.password == "" {
		// §3.3: an empty password never replaces the existing one.
		return refuse(mstanza.Modify, mstanza.NotAcceptable, "the password is empty")
	}
	if err := m.checkPassword(r.password); err != nil {
		return err
	}
	accounts := m.accounts()
	if accounts == nil {
		return errors.New("register: Deps.Accounts returned nil")
	}
	if err := accounts.SetPassword(ctx, user, r.password); err != nil {
		return err
	}
	return w.Result(nil)
}

// remove is XEP-0077 §3.2: the user deletes their account. The result is
// sent first; the deletion then ends the account's sessions (this one
// with a not-authorized stream error after the result) and deletes its
// data through every module. It runs apart from the session, which
// DeleteUser waits for.
func (m *Module) remove(iq stanza.IQ, w server.ResponseWriter) error {
	if !m.allowRemove {
		return refuse(mstanza.Cancel, mstanza.NotAllowed, "accounts cannot be deleted in-band here")
	}
	accounts := m.accounts()
	if accounts == nil {
		return errors.New("register: Deps.Accounts returned nil")
	}
	if err := w.Result(nil); err != nil {
		return err
	}
	user := iq.From.Bare()
	remove := accounts.DeleteUser
	if r, ok := accounts.(Remover); ok {
		remove = r.RemoveUser
	}
	m.host.Go(func(ctx context.Context) {
		if err := remove(ctx, user); err != nil {
			m.log.Warn("deleting an account failed", "err", err)
			return
		}
		m.log.Info("account deleted in-band")
	})
	return nil
}

var (
	_ server.Module                = (*Module)(nil)
	_ server.Initializer           = (*Module)(nil)
	_ server.StreamFeatureProvider = (*Module)(nil)
	_ server.IQProvider            = (*Module)(nil)
	_ server.FeatureProvider       = (*Module)(nil)
	_ Accounts                     = (*server.Server)(nil)
)

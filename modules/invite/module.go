// Package invite implements invitations (XEP-0401 Easy User Onboarding):
// single-use, expiring tokens that let a person create an account with
// the registration module (modules/register, Deps.Invites) and, for an
// invitation from a user, become that user's mutual contact (XEP-0379
// pre-authenticated roster subscription, done on the server's side).
//
// Administrators create invitations with Module.Create; users create them
// with the ad-hoc command "Invite a friend" (node urn:xmpp:invite#invite,
// Module.Commands, offered through modules/adhoc). Each invitation has an
// xmpp: URI for clients and, when the server has an HTTP base URL, a
// landing page (GET /invite/{token}) telling the invitee which client to
// install.
//
// Tokens are never stored in clear: the storage key is the SHA-256 of the
// token, in storage.ServiceData namespace "invite", with the invitation's
// expiry: an expired invitation is no longer found, and the server's
// janitor removes it from the store (as server.KindServiceData) when
// Deps.Store is the server's Config.Accounts store, as in modules/stock.
// With a store of its own, the program expires it (ExpireServiceData).
package invite

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/register"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage"
)

// Namespace is the storage.ServiceData namespace of the invitations.
const Namespace = "invite"

// Defaults and bounds.
const (
	DefaultValidity   = 7 * 24 * time.Hour
	MaxValidity       = 90 * 24 * time.Hour
	DefaultMaxPerUser = 10
)

// Kind says what an invitation allows.
type Kind string

// Kinds of invitation.
const (
	// KindAccount creates an account.
	KindAccount Kind = "account"
	// KindContact creates an account that becomes the inviter's mutual
	// contact (subscription both on both rosters).
	KindContact Kind = "contact"
)

// Options configure the module.
type Options struct {
	// Validity is how long an invitation lasts unless CreateOptions says
	// otherwise. Zero means DefaultValidity (7 days); more than
	// MaxValidity (90 days) is an error.
	Validity time.Duration
	// AllowUsers says whether users may invite friends with the ad-hoc
	// command. Nil means true; new(false) offers no command.
	AllowUsers *bool
	// MaxPerUser is the most unused invitations one user may hold. Zero
	// means DefaultMaxPerUser (10).
	MaxPerUser int
}

// Deps are what the module builds on.
type Deps struct {
	// Store keeps the invitations (required).
	Store storage.ServiceData
	// Roster, if set, makes the invitee of a KindContact invitation and
	// the inviter mutual contacts once the account exists. Without it
	// such an invitation creates the account only.
	Roster *roster.Module
}

// Module keeps invitations. Create it with New.
type Module struct {
	validity   time.Duration
	allowUsers bool
	maxPerUser int
	store      storage.ServiceData
	roster     *roster.Module
	host       server.Host
	log        *slog.Logger
	now        func() time.Time

	mu   sync.Mutex
	busy map[string]bool // hashes being redeemed
}

// New returns the module. It fails without Deps.Store and for a negative
// or too long Validity or a negative MaxPerUser.
func New(opts Options, deps Deps) (*Module, error) {
	if deps.Store == nil {
		return nil, errors.New("invite: no Deps.Store")
	}
	if opts.Validity < 0 || opts.Validity > MaxValidity {
		return nil, fmt.Errorf("invite: Validity %v outside 0 to %v", opts.Validity, MaxValidity)
	}
	if opts.MaxPerUser < 0 {
		return nil, fmt.Errorf("invite: negative MaxPerUser %d", opts.MaxPerUser)
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultValidity
	}
	if opts.MaxPerUser == 0 {
		opts.MaxPerUser = DefaultMaxPerUser
	}
	return &Module{
		validity:   opts.Validity,
		allowUsers: opts.AllowUsers == nil || *opts.AllowUsers,
		maxPerUser: opts.MaxPerUser,
		store:      deps.Store,
		roster:     deps.Roster,
		log:        slog.New(slog.DiscardHandler),
		now:        time.Now,
		busy:       make(map[string]bool),
	}, nil
}

// Name returns "invite".
func (*Module) Name() string { return "invite" }

// Init keeps the host, for URLs, domains and the logger.
func (m *Module) Init(_ context.Context, h server.Host) error {
	m.host = h
	m.log = h.Logger()
	return nil
}

// CreateOptions describe an invitation.
type CreateOptions struct {
	// Domain is the virtual host of the account to create. Empty means
	// the server's domain if it has only one.
	Domain string
	// Creator is who invites: a local bare JID, or the zero JID for the
	// administrator. Deleting the creator's account deletes the
	// invitation.
	Creator jid.JID
	// Contact makes the invitee the creator's mutual contact (KindContact);
	// it needs a Creator.
	Contact bool
	// Username, if set, is the only username the invitation registers
	// (it may be a reserved one).
	Username string
	// Validity overrides Options.Validity (at most MaxValidity).
	Validity time.Duration
}

// Invite is a created invitation.
type Invite struct {
	// Token is the secret to hand over; only its hash is stored.
	Token string
	// Kind is KindAccount or KindContact.
	Kind Kind
	// Domain is the account's virtual host; Creator the inviter (the
	// zero JID for the administrator); Username the only username
	// allowed, if any.
	Domain   string
	Creator  jid.JID
	Username string
	// URI is the XEP-0401 xmpp: URI: xmpp:DOMAIN?register;preauth=TOKEN
	// (xmpp:USERNAME@DOMAIN?register;… naming the account), or for a
	// contact invitation xmpp:INVITER?roster;preauth=TOKEN;ibr=y.
	URI string
	// LandingURL is the https landing page, "" without an HTTP base URL.
	LandingURL string
	// Created and Expires bound its life.
	Created, Expires time.Time
}

// record is what the store keeps under the token's hash.
type record struct {
	Domain   string `json:"d"`
	Creator  string `json:"c,omitempty"`
	Kind     Kind   `json:"k"`
	Username string `json:"u,omitempty"`
	Created  int64  `json:"t"` // Unix seconds
}

func (r record) valid() bool {
	if r.Kind != KindAccount && r.Kind != KindContact {
		return false
	}
	if d, err := jid.New("", r.Domain, ""); err != nil || d.Domainpart() != r.Domain {
		return false
	}
	if r.Username != "" {
		if u, err := jid.New(r.Username, r.Domain, ""); err != nil || u.Localpart() == "" {
			return false
		}
	}
	if r.Kind == KindContact && r.Creator == "" {
		return false
	}
	if r.Creator != "" {
		c, err := jid.Parse(r.Creator)
		if err != nil || c.Localpart() == "" || c.Resourcepart() != "" || c.String() != r.Creator {
			return false
		}
	}
	return true
}

// Keys: "t/" + hex(SHA-256(token)) holds the record; "u/" + creator + "/"
// + the same hex is an empty index entry for DeleteUser and MaxPerUser (a
// bare JID has no "/").
func tokenKey(hash string) string         { return "t/" + hash }
func userPrefix(creator string) string    { return "u/" + creator + "/" }
func userKey(creator, hash string) string { return userPrefix(creator) + hash }

// hashToken is the hex SHA-256 of a token, its storage key. Tokens carry
// 144 random bits, so a plain hash cannot be reversed by guessing.
func hashToken(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// validToken reports whether token has the form of the module's tokens.
func validToken(token string) bool {
	if len(token) != tokenLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil
}

// newToken returns a fresh token: 144 random bits in base64url.
func newToken() string {
	var b [tokenLen * 3 / 4]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// parseRecord decodes a stored record; false for anything malformed.
func parseRecord(b []byte) (record, bool) {
	var rec record
	if json.Unmarshal(b, &rec) != nil || !rec.valid() {
		return record{}, false
	}
	return rec, true
}

// userCount counts creator's unused invitations, up to MaxPerUser + 1.
func (m *Module) userCount(ctx context.Context, creator string) (int, error) {
	keys, err := m.store.ServiceKeys(ctx, Namespace, storage.ServiceKeysQuery{Prefix: userPrefix(creator), Max: m.maxPerUser + 1})
	return len(keys), err
}

// tokenLen is the length of a token: 144 random bits in base64url.
const tokenLen = 24

// ErrTooMany is returned by Create when the creator holds MaxPerUser
// unused invitations.
var ErrTooMany = errors.New("invite: too many unused invitations")

// Create makes an invitation. It fails for an unknown domain, a creator
// that is not a local bare JID, a contact invitation without a creator, a
// too long validity, and with ErrTooMany for a user who holds
// Options.MaxPerUser unused invitations.
func (m *Module) Create(ctx context.Context, opts CreateOptions) (Invite, error) {
	domain := opts.Domain
	if domain == "" && m.host != nil {
		if ds := m.host.Domains(); len(ds) == 1 {
			domain = ds[0].Domainpart()
		}
	}
	if domain == "" {
		return Invite{}, errors.New("invite: no domain")
	}
	d, err := jid.New("", domain, "")
	if err != nil {
		return Invite{}, fmt.Errorf("invite: invalid domain %q", domain)
	}
	domain = d.Domainpart()
	if m.host != nil && !m.host.IsLocal(domain) {
		return Invite{}, fmt.Errorf("invite: %q is not a domain of this server", domain)
	}
	validity := opts.Validity
	if validity < 0 || validity > MaxValidity {
		return Invite{}, fmt.Errorf("invite: Validity %v outside 0 to %v", validity, MaxValidity)
	}
	if validity == 0 {
		validity = m.validity
	}
	rec := record{Domain: domain, Kind: KindAccount, Username: opts.Username}
	if opts.Contact {
		rec.Kind = KindContact
	}
	if opts.Creator.String() != "" {
		c := opts.Creator
		if c.Localpart() == "" || c.Resourcepart() != "" || (m.host != nil && !m.host.IsLocal(c.Domainpart())) {
			return Invite{}, fmt.Errorf("invite: creator %q is not a local bare JID", c)
		}
		rec.Creator = c.String()
	}
	if opts.Username != "" {
		u, err := jid.New(opts.Username, domain, "")
		if err != nil || u.Localpart() == "" {
			return Invite{}, fmt.Errorf("invite: invalid username %q", opts.Username)
		}
	}
	if !rec.valid() {
		return Invite{}, errors.New("invite: a contact invitation needs a creator")
	}
	if rec.Creator != "" {
		n, err := m.userCount(ctx, rec.Creator)
		if err != nil {
			return Invite{}, fmt.Errorf("invite: %w", err)
		}
		if n >= m.maxPerUser {
			return Invite{}, ErrTooMany
		}
	}
	now := m.now()
	rec.Created = now.Unix()
	expires := now.Add(validity)
	val, err := json.Marshal(rec)
	if err != nil {
		return Invite{}, err
	}
	token := newToken()
	h := hashToken(token)
	if rec.Creator != "" {
		// The index first: an index entry without its invitation is
		// harmless, an invitation DeleteUser cannot find is not.
		if err := m.store.PutServiceValue(ctx, Namespace, userKey(rec.Creator, h), nil, expires); err != nil {
			return Invite{}, fmt.Errorf("invite: %w", err)
		}
	}
	if err := m.store.PutServiceValue(ctx, Namespace, tokenKey(h), val, expires); err != nil {
		return Invite{}, fmt.Errorf("invite: %w", err)
	}
	return m.invite(token, rec, expires), nil
}

// invite builds the Invite of a stored record.
func (m *Module) invite(token string, rec record, expires time.Time) Invite {
	inv := Invite{Token: token, Kind: rec.Kind, Domain: rec.Domain, Username: rec.Username,
		Created: time.Unix(rec.Created, 0), Expires: expires, URI: uri(token, rec)}
	if rec.Creator != "" {
		inv.Creator, _ = jid.Parse(rec.Creator)
	}
	if m.host != nil {
		inv.LandingURL = m.host.HTTPURL(rec.Domain, Path+token)
	}
	return inv
}

// uri is the XEP-0401 §4 URI of an invitation.
func uri(token string, rec record) string {
	t := url.QueryEscape(token) // base64url needs none; kept safe anyway
	if rec.Kind == KindContact {
		return "xmpp:" + escapeJID(rec.Creator) + "?roster;preauth=" + t + ";ibr=y"
	}
	addr := rec.Domain
	if rec.Username != "" {
		addr = rec.Username + "@" + rec.Domain
	}
	return "xmpp:" + escapeJID(addr) + "?register;preauth=" + t
}

// escapeJID escapes a JID for the path of an xmpp: URI (RFC 5122 §2.2).
func escapeJID(s string) string {
	return (&url.URL{Path: s}).EscapedPath()
}

// lookup returns the valid record stored for token.
func (m *Module) lookup(ctx context.Context, token string) (record, time.Time, error) {
	if !validToken(token) {
		return record{}, time.Time{}, register.ErrInvalidToken
	}
	val, expires, err := m.store.ServiceValue(ctx, Namespace, tokenKey(hashToken(token)))
	if errors.Is(err, storage.ErrNotFound) {
		return record{}, time.Time{}, register.ErrInvalidToken
	}
	if err != nil {
		return record{}, time.Time{}, fmt.Errorf("invite: %w", err)
	}
	rec, ok := parseRecord(val)
	if !ok || (!expires.IsZero() && !expires.After(m.now())) {
		return record{}, time.Time{}, register.ErrInvalidToken
	}
	return rec, expires, nil
}

// Redeem implements register.Invites: for a valid token for user's
// domain it calls create and, if create succeeds, deletes the token and,
// for a contact invitation with Deps.Roster, makes the inviter and user
// mutual contacts. While create runs the token counts as used, so of two
// concurrent Redeems only one calls create.
func (m *Module) Redeem(ctx context.Context, token string, user jid.JID, create func(register.Invite) error) error {
	if !validToken(token) {
		return register.ErrInvalidToken
	}
	h := hashToken(token)
	if !m.claim(h) {
		return register.ErrInvalidToken
	}
	defer m.release(h)
	rec, _, err := m.lookup(ctx, token)
	if err != nil {
		return err
	}
	if rec.Domain != user.Domainpart() {
		return register.ErrInvalidToken
	}
	if err := create(register.Invite{Username: rec.Username}); err != nil {
		return err
	}
	if err := m.remove(ctx, h, rec.Creator); err != nil {
		// The account exists; the token may live on until it expires.
		m.log.Warn("deleting a used invitation failed", "err", err)
	}
	if rec.Kind == KindContact && m.roster != nil {
		inviter, _ := jid.Parse(rec.Creator)
		if err := m.befriend(ctx, inviter, user.Bare()); err != nil {
			m.log.Warn("subscribing the inviter and the invitee failed", "err", err)
		}
	}
	return nil
}

// remove deletes an invitation and its index entry.
func (m *Module) remove(ctx context.Context, hash, creator string) error {
	err := m.store.DeleteServiceValue(ctx, Namespace, tokenKey(hash))
	if creator != "" {
		err = errors.Join(err, m.store.DeleteServiceValue(ctx, Namespace, userKey(creator, hash)))
	}
	return err
}

// befriend gives a and b each other with subscription both (RFC 6121:
// both have approved the other's subscription; XEP-0379's outcome).
func (m *Module) befriend(ctx context.Context, a, b jid.JID) error {
	both := func(it storage.RosterItem, _ bool) (storage.RosterItem, bool, error) {
		it.Subscription = storage.SubBoth
		it.Ask, it.Approved, it.PendingIn, it.Hidden = false, false, false, false
		return it, false, nil
	}
	return errors.Join(m.roster.Update(ctx, a, b, both), m.roster.Update(ctx, b, a, both))
}

// UserData names what the module keeps per user.
func (*Module) UserData() []string { return []string{"invitations created"} }

// DeleteUser deletes the invitations user created.
func (m *Module) DeleteUser(ctx context.Context, user jid.JID) error {
	creator := user.Bare().String()
	for {
		keys, err := m.store.ServiceKeys(ctx, Namespace, storage.ServiceKeysQuery{Prefix: userPrefix(creator), Max: 100})
		if err != nil {
			return fmt.Errorf("invite: %w", err)
		}
		for _, k := range keys {
			if err := m.remove(ctx, k[len(userPrefix(creator)):], creator); err != nil {
				return fmt.Errorf("invite: %w", err)
			}
		}
		if len(keys) < 100 {
			return nil
		}
	}
}

// ExportUser writes nothing: unused invitations are secrets of the moment
// (only their hashes are kept), not data to carry to another server.
func (*Module) ExportUser(context.Context, jid.JID, xmlstream.TokenWriter) error { return nil }

var (
	_ server.Module           = (*Module)(nil)
	_ server.Initializer      = (*Module)(nil)
	_ server.HTTPProvider     = (*Module)(nil)
	_ server.UserDataOwner    = (*Module)(nil)
	_ server.UserDataDeclarer = (*Module)(nil)
	_ register.Invites        = (*Module)(nil)
	_ register.TokenChecker   = (*Module)(nil)
	_ server.FilterProvider   = (*Module)(nil)
)

// Package muc implements XEP-0045 Multi-User Chat: a group chat service
// at conference.<domain> whose rooms are created by joining them, keep
// their occupants, roles and affiliations, fan messages out to every
// occupant with a XEP-0359 stanza-id and a XEP-0421 occupant-id, send
// recent history on join, and are configured, moderated and destroyed by
// their owners and admins.
//
// A room is one state machine behind one mutex (room.go): each event
// (a join, a message, an admin request) changes the room's state under the
// lock and returns the stanzas to send, which are routed after the lock is
// released. Presence fan-out (presence.go), messages (message.go), history
// (history.go), the admin and owner protocol (admin.go, owner.go), the
// room archive's seam with XEP-0313 queries and retention (archive.go),
// retraction and moderation (retract.go) and account deletion
// (userdata.go) are separate files.
//
// Persistent rooms, their affiliations and registered nicks are kept in a
// storage.MUC; temporary rooms live in memory and are gone when their last
// occupant leaves.
package muc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// Namespaces of XEP-0045 and the extensions the service speaks.
const (
	NS        = "http://jabber.org/protocol/muc"
	NSUser    = NS + "#user"
	NSAdmin   = NS + "#admin"
	NSOwner   = NS + "#owner"
	NSOccID   = "urn:xmpp:occupant-id:0"
	NSSID     = "urn:xmpp:sid:0"
	NSDelay   = "urn:xmpp:delay"
	NSPing    = "urn:xmpp:ping"
	NSVCard   = "vcard-temp"
	NSMAM     = "urn:xmpp:mam:2"
	NSConfX   = "jabber:x:conference"
	NSExport  = "urn:kiez:muc:export"
	nsVUpdate = "vcard-temp:x:update"
)

// Defaults for zero Options.
const (
	DefaultSubdomain       = "conference"
	DefaultName            = "Chatrooms"
	DefaultMaxOccupants    = 500
	DefaultMaxRoomsPerUser = 100
	DefaultMaxNickLength   = 64
	DefaultMaxHistory      = 100
	DefaultHistory         = 20
	DefaultMessageRate     = 1.0 // messages per second, sustained
	DefaultMessageBurst    = 10
	DefaultMaxForwards     = 1000 // iqs forwarded to occupants awaiting an answer
	DefaultMaxAvatarSize   = 64 << 10
)

// Creation says who may create rooms.
type Creation uint8

// Room creation policies.
const (
	// CreateLocal lets the accounts of the server's domains create rooms
	// (the default).
	CreateLocal Creation = iota
	// CreateAnyone lets any address create rooms.
	CreateAnyone
	// CreateAdmins lets only Options.Admins create rooms.
	CreateAdmins
)

// Orphans says what becomes of a room whose only owner's account is
// deleted.
type Orphans uint8

// Orphan policies.
const (
	// HandToAdmin makes the room's first admin (by address) its owner, and
	// destroys the room if it has none (the default).
	HandToAdmin Orphans = iota
	// DestroyOrphans destroys the room.
	DestroyOrphans
)

// Options configure the module.
type Options struct {
	// Subdomain is the service's label: conference.<domain>. Zero means
	// DefaultSubdomain.
	Subdomain string
	// Name is the service's name in disco. Zero means DefaultName.
	Name string
	// Creation says who may create rooms; the zero value is CreateLocal.
	Creation Creation
	// Admins are service administrators (bare JIDs): they may always
	// create rooms, and count as owners of every room.
	Admins []jid.JID
	// Orphans says what becomes of a room whose only owner's account is
	// deleted; the zero value is HandToAdmin.
	Orphans Orphans
	// MaxRoomsPerUser is how many rooms one account may own. Zero means
	// DefaultMaxRoomsPerUser; service admins are not limited.
	MaxRoomsPerUser int
	// MaxOccupants caps every room's muc#roomconfig_maxusers. Zero means
	// DefaultMaxOccupants.
	MaxOccupants int
	// MaxNickLength is the longest nick, in characters. Zero means
	// DefaultMaxNickLength.
	MaxNickLength int
	// MaxHistory caps every room's history length. Zero means
	// DefaultMaxHistory.
	MaxHistory int
	// DefaultHistory is a new room's history length. Zero means
	// DefaultHistory; negative means none.
	DefaultHistory int
	// MessageRate (messages per second) and MessageBurst bound the
	// groupchat and private messages of each occupant (a token bucket);
	// zero means the defaults, a negative rate no limit.
	MessageRate  float64
	MessageBurst int
	// MaxAvatarSize is the largest room vCard, in bytes. Zero means
	// DefaultMaxAvatarSize.
	MaxAvatarSize int
	// ArchiveRetention bounds how long room archives keep messages: each
	// room may keep them for less (its retention field in the
	// configuration form, in days), never longer. The server's janitor
	// applies it (Module.Expire). Zero means DefaultArchiveRetention; it
	// is at least a day.
	ArchiveRetention time.Duration
	// ArchiveByDefault says whether new rooms archive their messages
	// (muc#roomconfig_enablearchiving) until an owner switches it off, as
	// Prosody's muc_log_by_default does: clients catch up on a room from
	// its archive on every device. It needs Deps.Archive. Nil means true.
	ArchiveByDefault *bool
	// OccupantIDSecret keys XEP-0421 occupant ids. Empty means the secret
	// "muc-occupant-id" of Deps.Secrets, or a random one per process
	// (occupant ids then change at restart) without it.
	OccupantIDSecret []byte
}

// Archive is the seam for a room archive (XEP-0313 on room JIDs). When a
// room archives (muc#roomconfig_enablearchiving), every groupchat message
// it accepts is handed to Append before it is fanned out, exactly as
// occupants receive it but for the 'to' address and the stanza-id, which
// the archive gives: its ID for the message is the XEP-0359 stanza-id
// occupants see, and the id of the message's XEP-0313 result.
// mam.RoomArchive implements it, with the optional interfaces below.
type Archive interface {
	// Append stores msg, a groupchat message from room/nick (or from the
	// room) with its <occupant-id/>, and returns the message's id once it
	// is stored. The appends of one room are never concurrent and come in
	// the order occupants receive the messages. An error is logged; the
	// message is delivered anyway, with an id of the service's own.
	Append(ctx context.Context, room jid.JID, msg *stanza.Stanza) (id string, err error)
	// DeleteRoom removes the archive of a destroyed room.
	DeleteRoom(ctx context.Context, room jid.JID) error
}

// HistorySource is implemented by an Archive that also serves the history
// sent on join (XEP-0045 §7.2.14) from what it stored, so that history
// outlives a restart. Without it, history comes from memory.
type HistorySource interface {
	// History returns the latest at most max messages of room (as Append
	// got them, with their <stanza-id/>) sent at or after since (the zero Time: any), oldest
	// first.
	History(ctx context.Context, room jid.JID, max int, since time.Time) ([]ArchivedMessage, error)
}

// ArchivedMessage is a message of a room's history with the time it was
// sent.
type ArchivedMessage struct {
	Message *stanza.Stanza
	At      time.Time
}

// Deps are what the module builds on.
type Deps struct {
	// Store keeps persistent rooms, affiliations and registered nicks
	// (required).
	Store storage.MUC
	// Secrets, if set, keeps the occupant-id secret (see
	// Options.OccupantIDSecret).
	Secrets storage.Secrets
	// KV, if set, keeps room vCards (avatars) under the room's JID;
	// without it a room's vCard is kept in its stored configuration.
	KV storage.KV
	// Archive, if set, archives the messages of rooms that enable
	// archiving, and makes the option available.
	Archive Archive
}

// Module is the multi-user chat service. Create it with New.
type Module struct {
	opts    Options
	store   storage.MUC
	secrets storage.Secrets
	kv      storage.KV
	archive Archive
	admins  map[string]bool

	host   server.Host
	log    *slog.Logger
	secret []byte // occupant-id key
	now    func() time.Time

	mu       sync.Mutex
	rooms    map[string]*room               // loaded rooms by bare JID
	sessions map[string]map[string]struct{} // real full JID → rooms joined
	fwd      forwards

	// expireMu guards expireFrom, the room where the janitor's last call
	// stopped ("" when no pass over the rooms is under way).
	expireMu   sync.Mutex
	expireFrom string
}

// New returns the MUC module. It fails without a store and for limits
// out of range.
func New(opts Options, deps Deps) (*Module, error) {
	switch {
	case deps.Store == nil:
		return nil, errors.New("muc: a storage.MUC is required")
	case opts.MaxRoomsPerUser < 0 || opts.MaxOccupants < 0 || opts.MaxNickLength < 0 || opts.MaxHistory < 0 || opts.MessageBurst < 0 || opts.MaxAvatarSize < 0:
		return nil, errors.New("muc: negative limit")
	case opts.Creation > CreateAdmins:
		return nil, fmt.Errorf("muc: unknown creation policy %d", opts.Creation)
	case opts.Orphans > DestroyOrphans:
		return nil, fmt.Errorf("muc: unknown orphan policy %d", opts.Orphans)
	case opts.Creation == CreateAdmins && len(opts.Admins) == 0:
		return nil, errors.New("muc: rooms restricted to admins, but no admins")
	case opts.ArchiveRetention < 0 || (opts.ArchiveRetention > 0 && opts.ArchiveRetention < day):
		return nil, fmt.Errorf("muc: archive retention %v is less than a day", opts.ArchiveRetention)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if opts.Subdomain == "" {
		opts.Subdomain = DefaultSubdomain
	}
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	def(&opts.MaxRoomsPerUser, DefaultMaxRoomsPerUser)
	def(&opts.MaxOccupants, DefaultMaxOccupants)
	def(&opts.MaxNickLength, DefaultMaxNickLength)
	def(&opts.MaxHistory, DefaultMaxHistory)
	def(&opts.MessageBurst, DefaultMessageBurst)
	def(&opts.MaxAvatarSize, DefaultMaxAvatarSize)
	switch {
	case opts.DefaultHistory == 0:
		opts.DefaultHistory = min(DefaultHistory, opts.MaxHistory)
	case opts.DefaultHistory < 0:
		opts.DefaultHistory = 0
	default:
		opts.DefaultHistory = min(opts.DefaultHistory, opts.MaxHistory)
	}
	if opts.ArchiveRetention == 0 {
		opts.ArchiveRetention = DefaultArchiveRetention
	}
	if opts.MessageRate == 0 {
		opts.MessageRate = DefaultMessageRate
	}
	m := &Module{opts: opts, store: deps.Store, secrets: deps.Secrets, kv: deps.KV, archive: deps.Archive,
		admins: make(map[string]bool), log: slog.New(slog.DiscardHandler), now: time.Now,
		rooms: make(map[string]*room), sessions: make(map[string]map[string]struct{})}
	for _, a := range opts.Admins {
		m.admins[a.Bare().String()] = true
	}
	m.fwd.max = DefaultMaxForwards
	return m, nil
}

// Name returns "muc".
func (*Module) Name() string { return "muc" }

// Init keeps the host and reads the occupant-id secret.
func (m *Module) Init(ctx context.Context, h server.Host) error {
	m.host, m.log = h, h.Logger()
	switch {
	case len(m.opts.OccupantIDSecret) > 0:
		m.secret = append([]byte(nil), m.opts.OccupantIDSecret...)
	case m.secrets != nil:
		s, err := m.secrets.Secret(ctx, "muc-occupant-id", 32)
		if err != nil {
			return fmt.Errorf("muc: occupant-id secret: %w", err)
		}
		m.secret = s
	default:
		m.secret = make([]byte, 32)
		rand.Read(m.secret)
	}
	return nil
}

// Close tells every occupant that the service shuts down (status 332).
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		out := r.removeAll(m, []int{332}, "")
		r.mu.Unlock()
		m.send(ctx, out)
	}
	return nil
}

// Services declares conference.<domain>.
func (m *Module) Services() []server.Service {
	return []server.Service{{
		Subdomain: m.opts.Subdomain,
		Name:      m.opts.Name,
		Identity:  server.Identity{Category: "conference", Type: "text", Name: m.opts.Name},
		Features:  []string{NS, NSOccID, NSSID, "muc#stable_id", "muc#self-ping-optimization", NSVCard},
		Handler:   server.StanzaHandlerFunc(m.handle),
		Items:     m.publicItems,
	}}
}

// publicItems lists the public rooms of the service to (disco#items).
func (m *Module) publicItems(ctx context.Context, _, to jid.JID) []server.DiscoItem {
	items, err := m.PublicRooms(ctx, to)
	if err != nil {
		m.log.Warn("listing the public rooms failed", "err", err)
	}
	return items
}

// UserData names what the module keeps per user.
func (*Module) UserData() []string {
	return []string{"group chat room affiliations and registered nicks"}
}

// handle takes every stanza to the service and the addresses at it.
func (m *Module) handle(ctx context.Context, st *stanza.Stanza) error {
	if st.From.Equal(jid.JID{}) {
		return nil
	}
	var err error
	switch {
	case st.To.Localpart() == "":
		err = m.toService(ctx, st)
	case st.Kind == stanza.Presence:
		err = m.presence(ctx, st)
	case st.Kind == stanza.Message:
		err = m.message(ctx, st)
	case st.Kind == stanza.IQKind:
		err = m.iq(ctx, st)
	}
	if st.Type == stanza.Error || (st.Kind == stanza.IQKind && st.Type == stanza.Result) {
		// Never answer an error or a result.
		var se mstanza.Error
		if err != nil && !errors.As(err, &se) {
			m.log.Warn("muc: handling failed", "err", err)
		}
		return nil
	}
	return err
}

// toService handles stanzas to the service's own domain: iqs the server
// did not answer. Disco is the server's.
func (m *Module) toService(ctx context.Context, st *stanza.Stanza) error {
	if st.Kind == stanza.IQKind && st.Type == stanza.Get {
		if p, ok := st.PayloadElement(); ok && p.Name.Space == NSPing {
			m.route(ctx, st.ResultReply(nil))
			return nil
		}
	}
	if st.Kind == stanza.Presence {
		return nil
	}
	return stanza.NewError(mstanza.Cancel, mstanza.ServiceUnavailable, "")
}

// route sends one stanza, logging a failure.
func (m *Module) route(ctx context.Context, st *stanza.Stanza) {
	if err := m.host.Router().Route(ctx, st); err != nil && ctx.Err() == nil {
		m.log.Debug("muc: route failed", "kind", st.Kind.String(), "err", err)
	}
}

// send routes stanzas a room event produced, after its lock is released.
func (m *Module) send(ctx context.Context, out []*stanza.Stanza) {
	for _, st := range out {
		m.route(ctx, st)
	}
}

// isAdmin reports whether user (any JID) is a service admin.
func (m *Module) isAdmin(user jid.JID) bool { return m.admins[user.Bare().String()] }

// Interface guards.
var (
	_ server.Initializer      = (*Module)(nil)
	_ server.Closer           = (*Module)(nil)
	_ server.ServiceProvider  = (*Module)(nil)
	_ server.UserDataOwner    = (*Module)(nil)
	_ server.UserDataDeclarer = (*Module)(nil)
	_ server.SessionEnder     = (*Module)(nil)
)

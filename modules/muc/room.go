package muc

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// room is one room's state. Every field is guarded by mu; events change it
// under the lock and return the stanzas to route after it is released.
type room struct {
	mu      sync.Mutex
	jid     jid.JID
	cfg     roomConfig
	locked  bool // created, not yet configured (XEP-0045 §10.1)
	gone    bool // destroyed: a new event must look the room up again
	stored  bool // in storage.MUC
	created time.Time
	active  string // the UTC day LastActive was last stored

	occ  map[string]*occupant // by nick
	real map[string]*occupant // by real full JID
	affs map[string]affEntry  // by bare JID (or domain)
	hist history
}

// affEntry is a stored affiliation or registered nick.
type affEntry struct {
	aff, nick, reason string
}

// occupant is one nick in a room: one bare JID, with one or more sessions
// (XEP-0045 multi-session nicks; other occupants see one occupant).
type occupant struct {
	nick     string
	bare     jid.JID
	role     string
	sessions []*occSession // the last is the primary one
	tokens   float64
	refill   time.Time
}

// occSession is one real full JID joined as an occupant, with its latest
// available presence (the client's, without MUC elements).
type occSession struct {
	jid  jid.JID
	pres []stanza.Element
}

// primary returns the occupant's latest session.
func (o *occupant) primary() *occSession { return o.sessions[len(o.sessions)-1] }

// session returns the index of the session of full JID j, or -1.
func (o *occupant) session(j jid.JID) int {
	for i, s := range o.sessions {
		if s.jid.Equal(j) {
			return i
		}
	}
	return -1
}

// affRank orders affiliations.
func affRank(a string) int {
	switch a {
	case storage.AffOwner:
		return 4
	case storage.AffAdmin:
		return 3
	case storage.AffMember:
		return 2
	case storage.AffOutcast:
		return 0
	}
	return 1
}

// roleRank orders roles.
func roleRank(r string) int {
	switch r {
	case roleModerator:
		return 3
	case roleParticipant:
		return 2
	case roleVisitor:
		return 1
	}
	return 0
}

// aff returns the affiliation of a real JID: a service admin is an owner;
// a banned domain bans its accounts.
func (r *room) aff(m *Module, j jid.JID) string {
	if m.isAdmin(j) {
		return storage.AffOwner
	}
	if e, ok := r.affs[j.Bare().String()]; ok && e.aff != "" {
		return e.aff
	}
	if e, ok := r.affs[j.Domainpart()]; ok && e.aff == storage.AffOutcast {
		return storage.AffOutcast
	}
	return "none"
}

// defaultRole is the role an occupant of affiliation aff gets.
func (r *room) defaultRole(aff string) string {
	switch aff {
	case storage.AffOwner, storage.AffAdmin:
		return roleModerator
	case storage.AffMember:
		return roleParticipant
	case storage.AffOutcast:
		return roleNone
	}
	if r.cfg.Moderated {
		return roleVisitor
	}
	return roleParticipant
}

// nickOwner returns the bare JID that registered nick in the room, if any.
func (r *room) nickOwner(nick string) string {
	for j, e := range r.affs {
		if e.nick == nick {
			return j
		}
	}
	return ""
}

// occJID returns room/nick.
func (r *room) occJID(nick string) jid.JID {
	j, err := r.jid.WithResource(nick)
	if err != nil {
		return r.jid
	}
	return j
}

// list returns the bare JIDs with affiliation a, sorted.
func (r *room) list(a string) []string {
	var out []string
	for j, e := range r.affs {
		if e.aff == a {
			out = append(out, j)
		}
	}
	sort.Strings(out)
	return out
}

// ownedBy reports whether the bare JID bare is an owner of the room.
func (r *room) ownedBy(bare string) bool {
	return r.affs[bare].aff == storage.AffOwner
}

// setAff changes one affiliation (keeping a registered nick) in memory
// and, for a stored room, in the store.
func (r *room) setAff(ctx context.Context, m *Module, bare, aff, reason string) error {
	e := r.affs[bare]
	if aff == "none" {
		aff = ""
	}
	e.aff, e.reason = aff, reason
	if e.aff == "" && e.nick == "" {
		delete(r.affs, bare)
	} else {
		r.affs[bare] = e
	}
	if !r.stored {
		return nil
	}
	if err := m.store.SetAffiliation(ctx, storage.MUCAffiliation{Room: r.jid.String(), JID: bare, Affiliation: e.aff, Nick: e.nick, Reason: e.reason}); err != nil {
		return fmt.Errorf("muc: store affiliation: %w", err)
	}
	return nil
}

// save writes the room's configuration if it is persistent, and its
// affiliations the first time; a room no longer persistent is removed
// from the store.
func (r *room) save(ctx context.Context, m *Module) error {
	if !r.cfg.Persistent || r.locked {
		if r.stored {
			r.stored = false
			if err := m.store.DeleteRoom(ctx, r.jid.String()); err != nil {
				return fmt.Errorf("muc: delete stored room: %w", err)
			}
		}
		return nil
	}
	b, err := r.cfg.encode()
	if err != nil {
		return err
	}
	now := m.now()
	r.active = now.UTC().Format(time.DateOnly)
	if err := m.store.PutRoom(ctx, storage.MUCRoom{JID: r.jid.String(), Config: b, Created: r.created, LastActive: now}); err != nil {
		return fmt.Errorf("muc: store room: %w", err)
	}
	if !r.stored {
		r.stored = true
		var errs []error
		for j, e := range r.affs {
			errs = append(errs, m.store.SetAffiliation(ctx, storage.MUCAffiliation{Room: r.jid.String(), JID: j, Affiliation: e.aff, Nick: e.nick, Reason: e.reason}))
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("muc: store affiliations: %w", err)
		}
	}
	return nil
}

// markActive stores the room's LastActive day, once a day, for the
// removal of long-idle rooms.
func (r *room) markActive(ctx context.Context, m *Module) {
	if !r.stored || r.active == m.now().UTC().Format(time.DateOnly) {
		return
	}
	if err := r.save(ctx, m); err != nil {
		m.log.Warn("muc: store activity", "err", err)
	}
}

// lookup returns the loaded room rj, loading a stored one; nil if there is
// none.
func (m *Module) lookup(ctx context.Context, rj jid.JID) (*room, error) {
	key := rj.String()
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.rooms[key]; ok {
		return r, nil
	}
	sr, err := m.store.Room(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("muc: load room: %w", err)
	}
	cfg, err := decodeConfig(sr.Config)
	if err != nil {
		return nil, err
	}
	affs, err := m.store.Affiliations(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("muc: load affiliations: %w", err)
	}
	r := newRoom(rj, cfg, sr.Created)
	r.stored = true
	r.active = sr.LastActive.UTC().Format(time.DateOnly)
	for _, a := range affs {
		r.affs[a.JID] = affEntry{aff: a.Affiliation, nick: a.Nick, reason: a.Reason}
	}
	m.rooms[key] = r
	return r, nil
}

func newRoom(rj jid.JID, cfg roomConfig, created time.Time) *room {
	return &room{jid: rj, cfg: cfg, created: created, occ: make(map[string]*occupant),
		real: make(map[string]*occupant), affs: make(map[string]affEntry)}
}

// create adds a new room owned by creator, locked until configured when
// locked is set. It returns the room that exists if one was created
// meanwhile.
func (m *Module) create(rj jid.JID, creator jid.JID, locked bool) *room {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.rooms[rj.String()]; ok {
		return r
	}
	r := newRoom(rj, m.defaultConfig(), m.now().UTC())
	r.locked = locked
	r.affs[creator.Bare().String()] = affEntry{aff: storage.AffOwner}
	m.rooms[rj.String()] = r
	return r
}

// forget removes r from the loaded rooms.
func (m *Module) forget(r *room) {
	m.mu.Lock()
	if m.rooms[r.jid.String()] == r {
		delete(m.rooms, r.jid.String())
	}
	m.mu.Unlock()
}

// track records (or, with joined false, forgets) that the real full JID
// is joined to room.
func (m *Module) track(full jid.JID, room jid.JID, joined bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := full.String()
	if joined {
		if m.sessions[k] == nil {
			m.sessions[k] = make(map[string]struct{})
		}
		m.sessions[k][room.String()] = struct{}{}
		return
	}
	delete(m.sessions[k], room.String())
	if len(m.sessions[k]) == 0 {
		delete(m.sessions, k)
	}
}

// loadedRooms returns the loaded rooms.
func (m *Module) loadedRooms() []*room {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		out = append(out, r)
	}
	return out
}

// withRoom runs f on the room rj under its lock, loading it first; f gets
// nil if there is no such room. The stanzas f returns are routed after
// the lock is released.
func (m *Module) withRoom(ctx context.Context, rj jid.JID, f func(r *room) ([]*stanza.Stanza, error)) error {
	for range 3 {
		r, err := m.lookup(ctx, rj)
		if err != nil {
			return err
		}
		if r == nil {
			out, err := f(nil)
			m.send(ctx, out)
			return err
		}
		r.mu.Lock()
		if r.gone {
			r.mu.Unlock()
			continue
		}
		out, err := f(r)
		r.mu.Unlock()
		m.send(ctx, out)
		return err
	}
	return errors.New("muc: room keeps being destroyed")
}

// destroy removes the room: every occupant gets unavailable presence with
// <destroy/> (alternate venue alt, reason), and its stored state, vCard
// and archive go.
func (r *room) destroy(ctx context.Context, m *Module, alt jid.JID, reason, password string) []*stanza.Stanza {
	var out []*stanza.Stanza
	for _, o := range r.occupants() {
		for _, s := range o.sessions {
			p := &stanza.Stanza{Kind: stanza.Presence, Type: "unavailable", From: r.occJID(o.nick), To: s.jid}
			x := []xmlReader{elem(NSUser, "item", attrs("affiliation", "none", "role", "none"))}
			var d []xmlReader
			if reason != "" {
				d = append(d, text(NSUser, "reason", reason))
			}
			if password != "" {
				d = append(d, text(NSUser, "password", password))
			}
			var da []string
			if !alt.Equal(jid.JID{}) {
				da = []string{"jid", alt.String()}
			}
			x = append(x, elem(NSUser, "destroy", attrs(da...), d...))
			p.AppendChild(elem(NSUser, "x", nil, x...))
			out = append(out, p)
			m.track(s.jid, r.jid, false)
		}
	}
	r.occ, r.real = map[string]*occupant{}, map[string]*occupant{}
	r.gone = true
	m.forget(r)
	if err := m.store.DeleteRoom(ctx, r.jid.String()); err != nil {
		m.log.Warn("muc: delete stored room", "err", err)
	}
	if m.kv != nil {
		if err := m.kv.DeleteUser(ctx, r.jid.String()); err != nil {
			m.log.Warn("muc: delete room vcard", "err", err)
		}
	}
	if m.archive != nil {
		if err := m.archive.DeleteRoom(ctx, r.jid); err != nil {
			m.log.Warn("muc: delete room archive", "err", err)
		}
	}
	return out
}

// occupants returns the occupants sorted by nick.
func (r *room) occupants() []*occupant {
	out := make([]*occupant, 0, len(r.occ))
	for _, o := range r.occ {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].nick < out[j].nick })
	return out
}

// emptied destroys a temporary room without occupants.
func (r *room) emptied(ctx context.Context, m *Module) []*stanza.Stanza {
	if len(r.occ) == 0 && (!r.cfg.Persistent || r.locked) {
		return r.destroy(ctx, m, jid.JID{}, "", "")
	}
	return nil
}

package muc

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// DeleteUser removes the account's affiliations and registered nicks from
// every room, stored or loaded; its sessions leave every room; a room it
// alone owned goes to its first admin or is destroyed (Options.Orphans).
// A new account of the same name inherits nothing.
func (m *Module) DeleteUser(ctx context.Context, user jid.JID) error {
	user = user.Bare()
	key := user.String()
	stored, err := m.store.UserAffiliations(ctx, key)
	if err != nil {
		return fmt.Errorf("muc: delete user: %w", err)
	}
	rooms := make(map[string]bool)
	for _, a := range stored {
		rooms[a.Room] = true
	}
	for _, r := range m.loadedRooms() {
		rooms[r.jid.String()] = true
	}
	names := make([]string, 0, len(rooms))
	for k := range rooms {
		names = append(names, k)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		rj, err := jid.Parse(name)
		if err != nil {
			continue
		}
		errs = append(errs, m.withRoom(ctx, rj, func(r *room) ([]*stanza.Stanza, error) {
			if r == nil {
				return nil, nil
			}
			return r.dropUser(ctx, m, key)
		}))
	}
	// Whatever the rooms did not hold in memory.
	if _, err := m.store.DeleteUserAffiliations(ctx, key); err != nil {
		errs = append(errs, fmt.Errorf("muc: delete affiliations: %w", err))
	}
	return errors.Join(errs...)
}

// dropUser removes user (a bare JID) from the room: its occupants leave,
// its affiliation goes, and the room is handed on or destroyed if user was
// its only owner.
func (r *room) dropUser(ctx context.Context, m *Module, user string) ([]*stanza.Stanza, error) {
	var out []*stanza.Stanza
	for _, o := range r.occupants() {
		if o.bare.String() == user {
			out = append(out, r.removeOccupant(m, o, presOpts{})...)
		}
	}
	e, ok := r.affs[user]
	if !ok {
		return append(out, r.emptied(ctx, m)...), nil
	}
	soleOwner := e.aff == storage.AffOwner && len(r.list(storage.AffOwner)) == 1
	delete(r.affs, user)
	if r.stored {
		if err := m.store.SetAffiliation(ctx, storage.MUCAffiliation{Room: r.jid.String(), JID: user}); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return out, fmt.Errorf("muc: delete affiliation: %w", err)
		}
	}
	if soleOwner {
		admins := r.list(storage.AffAdmin)
		if m.opts.Orphans == HandToAdmin && len(admins) > 0 {
			heir, _ := jid.Parse(admins[0])
			o, err := r.changeAff(ctx, m, heir, storage.AffOwner, "", "")
			out = append(out, o...)
			if err != nil {
				return out, err
			}
		} else {
			return append(out, r.destroy(ctx, m, jid.JID{}, "The owner's account was deleted", "")...), nil
		}
	}
	return append(out, r.emptied(ctx, m)...), nil
}

// ExportUser writes the account's affiliations and registered nicks as
// <rooms xmlns='urn:kiez:muc:export'><room jid='…' affiliation='…'
// nick='…'/></rooms> (XEP-0227 has no element for them); nothing when
// there are none.
func (m *Module) ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error {
	affs, err := m.store.UserAffiliations(ctx, user.Bare().String())
	if err != nil {
		return fmt.Errorf("muc: export: %w", err)
	}
	seen := make(map[string]bool)
	var items []xmlReader
	for _, a := range affs {
		seen[a.Room] = true
		items = append(items, elem(NSExport, "room", attrs("jid", a.Room, "affiliation", a.Affiliation, "nick", a.Nick)))
	}
	for _, r := range m.loadedRooms() {
		r.mu.Lock()
		if e, ok := r.affs[user.Bare().String()]; ok && !seen[r.jid.String()] && !r.gone {
			items = append(items, elem(NSExport, "room", attrs("jid", r.jid.String(), "affiliation", e.aff, "nick", e.nick)))
		}
		r.mu.Unlock()
	}
	if len(items) == 0 {
		return nil
	}
	if _, err := xmlstream.Copy(w, elem(NSExport, "rooms", nil, items...)); err != nil {
		return fmt.Errorf("muc: export: %w", err)
	}
	return nil
}

// SessionEnded makes an ended session leave every room it was in (the
// presence module sends unavailable presence for directed presence too;
// whichever comes second finds nothing to do).
func (m *Module) SessionEnded(ctx context.Context, s *server.Session) {
	full := s.JID()
	m.mu.Lock()
	var rooms []string
	for r := range m.sessions[full.String()] {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	for _, name := range rooms {
		rj, err := jid.Parse(name)
		if err != nil {
			continue
		}
		if err := m.withRoom(ctx, rj, func(r *room) ([]*stanza.Stanza, error) {
			if r == nil {
				return nil, nil
			}
			return r.leave(ctx, m, full, nil, nil, nil), nil
		}); err != nil {
			m.log.Warn("muc: leave at session end", "err", err)
		}
	}
}

package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// The MUC store (storage.MUC) is Store.muc: the rooms by room JID, each
// with its entries by affiliated JID, and per affiliated JID the set of
// rooms it has an entry in, so that a user's entries are found without
// visiting every room. A JID's index entry is made with its first room
// entry and dropped with its last. Rooms lists and sorts every room JID,
// which suits the sizes this backend is for.

// mucTable is the MUC data. Its maps are made with the first room.
type mucTable struct {
	rooms map[string]*mucRoom            // by room JID
	users map[string]map[string]struct{} // by affiliated JID, the rooms it is in
}

// mucRoom is one room: its stored copy (Config owned by the store, days
// truncated) and its entries.
type mucRoom struct {
	room storage.MUCRoom
	affs map[string]storage.MUCAffiliation // by affiliated JID
}

// mucYears checks that t lies in years 1 to 9999, the days a persistent
// backend can hold.
func mucYears(what string, t time.Time) error {
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%s %v outside years 1 to 9999", what, t)
	}
	return nil
}

// mucRoomIn returns the copy of r that the store keeps, or an error if it
// cannot be stored.
func mucRoomIn(r storage.MUCRoom) (storage.MUCRoom, error) {
	if r.JID == "" {
		return r, errors.New("empty room JID")
	}
	if err := mucYears("created", r.Created); err != nil {
		return r, err
	}
	if err := mucYears("last active", r.LastActive); err != nil {
		return r, err
	}
	r.Config = append([]byte{}, r.Config...)
	r.Created = storage.Day(r.Created)
	r.LastActive = storage.Day(r.LastActive)
	return r, nil
}

// validAffiliation reports whether aff is one of the stored affiliations
// or "" (none).
func validAffiliation(aff string) bool {
	switch aff {
	case "", storage.AffOwner, storage.AffAdmin, storage.AffMember, storage.AffOutcast:
		return true
	}
	return false
}

// PutRoom implements storage.MUC.
func (s *Store) PutRoom(ctx context.Context, r storage.MUCRoom) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	in, err := mucRoomIn(r)
	if err != nil {
		return fmt.Errorf("memory: put room %q: %w", r.JID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.muc.rooms == nil {
		s.muc.rooms = make(map[string]*mucRoom)
		s.muc.users = make(map[string]map[string]struct{})
	}
	if old := s.muc.rooms[in.JID]; old != nil {
		old.room = in
		return nil
	}
	s.muc.rooms[in.JID] = &mucRoom{room: in, affs: make(map[string]storage.MUCAffiliation)}
	return nil
}

// Room implements storage.MUC.
func (s *Store) Room(ctx context.Context, room string) (storage.MUCRoom, error) {
	if err := ctx.Err(); err != nil {
		return storage.MUCRoom{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.muc.rooms[room]
	if r == nil {
		return storage.MUCRoom{}, fmt.Errorf("memory: room %q: %w", room, storage.ErrNotFound)
	}
	out := r.room
	out.Config = append([]byte{}, out.Config...)
	return out, nil
}

// Rooms implements storage.MUC. It visits every room.
func (s *Store) Rooms(ctx context.Context, service string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	var out []string
	for jid := range s.muc.rooms {
		if service == "" || domainOf(jid) == service {
			out = append(out, jid)
		}
	}
	s.mu.RUnlock()
	slices.Sort(out)
	return out, nil
}

// DeleteRoom implements storage.MUC.
func (s *Store) DeleteRoom(ctx context.Context, room string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.muc.rooms[room]
	if r == nil {
		return nil
	}
	for jid := range r.affs {
		s.unindexMUC(jid, room)
	}
	delete(s.muc.rooms, room)
	return nil
}

// unindexMUC removes room from jid's index entry, and the entry if it was
// the last room. Callers hold s.mu.
func (s *Store) unindexMUC(jid, room string) {
	rooms := s.muc.users[jid]
	delete(rooms, room)
	if len(rooms) == 0 {
		delete(s.muc.users, jid)
	}
}

// SetAffiliation implements storage.MUC.
func (s *Store) SetAffiliation(ctx context.Context, a storage.MUCAffiliation) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch {
	case a.Room == "" || a.JID == "":
		return fmt.Errorf("memory: set affiliation of %q in room %q: empty room or JID", a.JID, a.Room)
	case !validAffiliation(a.Affiliation):
		return fmt.Errorf("memory: set affiliation of %q in room %q: unknown affiliation %q", a.JID, a.Room, a.Affiliation)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.muc.rooms[a.Room]
	if r == nil {
		return fmt.Errorf("memory: set affiliation of %q in room %q: %w", a.JID, a.Room, storage.ErrNotFound)
	}
	if a.Affiliation == "" && a.Nick == "" {
		if _, ok := r.affs[a.JID]; ok {
			delete(r.affs, a.JID)
			s.unindexMUC(a.JID, a.Room)
		}
		return nil
	}
	r.affs[a.JID] = a
	rooms := s.muc.users[a.JID]
	if rooms == nil {
		rooms = make(map[string]struct{})
		s.muc.users[a.JID] = rooms
	}
	rooms[a.Room] = struct{}{}
	return nil
}

// Affiliation implements storage.MUC.
func (s *Store) Affiliation(ctx context.Context, room, jid string) (storage.MUCAffiliation, error) {
	if err := ctx.Err(); err != nil {
		return storage.MUCAffiliation{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.muc.rooms[room]
	if r == nil {
		return storage.MUCAffiliation{}, fmt.Errorf("memory: affiliation of %q in room %q: no such room: %w", jid, room, storage.ErrNotFound)
	}
	a, ok := r.affs[jid]
	if !ok {
		return storage.MUCAffiliation{}, fmt.Errorf("memory: affiliation of %q in room %q: %w", jid, room, storage.ErrNotFound)
	}
	return a, nil
}

// Affiliations implements storage.MUC.
func (s *Store) Affiliations(ctx context.Context, room string) ([]storage.MUCAffiliation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	r := s.muc.rooms[room]
	if r == nil {
		s.mu.RUnlock()
		return nil, fmt.Errorf("memory: affiliations of room %q: %w", room, storage.ErrNotFound)
	}
	var out []storage.MUCAffiliation
	for _, a := range r.affs {
		out = append(out, a)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b storage.MUCAffiliation) int { return strings.Compare(a.JID, b.JID) })
	return out, nil
}

// UserAffiliations implements storage.MUC.
func (s *Store) UserAffiliations(ctx context.Context, jid string) ([]storage.MUCAffiliation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	var out []storage.MUCAffiliation
	for room := range s.muc.users[jid] {
		out = append(out, s.muc.rooms[room].affs[jid])
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b storage.MUCAffiliation) int { return strings.Compare(a.Room, b.Room) })
	return out, nil
}

// DeleteUserAffiliations implements storage.MUC.
func (s *Store) DeleteUserAffiliations(ctx context.Context, jid string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	var out []string
	for room := range s.muc.users[jid] {
		delete(s.muc.rooms[room].affs, jid)
		out = append(out, room)
	}
	delete(s.muc.users, jid)
	s.mu.Unlock()
	slices.Sort(out)
	return out, nil
}

var _ storage.MUC = (*Store)(nil)

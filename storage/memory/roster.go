package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/internal/rosterver"
)

// rosterTable holds a Store's rosters, guarded by Store.mu.
type rosterTable struct {
	users map[string]*userRoster // by bare JID
}

// userRoster is one user's roster. Versions are "<gen>.<n>" (package
// storage/internal/rosterver): gen is drawn when the roster is created, n
// counts modifications from 1.
type userRoster struct {
	ver   rosterver.Version
	floor uint64 // versions below floor are unknown (tombstones dropped)
	items map[string]rosterEntry
	tombs map[string]uint64 // removed contact → version removed at
}

type rosterEntry struct {
	item storage.RosterItem
	ver  uint64
}

// rosters returns the Store's roster table. Callers hold s.mu.
func (s *Store) rosters() *rosterTable { return &s.roster }

// Roster implements storage.Roster.
func (s *Store) Roster(ctx context.Context, user string) ([]storage.RosterItem, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	t := s.rosters()
	s.mu.RLock()
	r := t.users[user]
	if r == nil {
		s.mu.RUnlock()
		return nil, "", nil
	}
	items := make([]storage.RosterItem, 0, len(r.items))
	for _, e := range r.items {
		items = append(items, e.item.Clone())
	}
	ver := r.ver.String()
	s.mu.RUnlock()
	slices.SortFunc(items, func(a, b storage.RosterItem) int { return strings.Compare(a.JID, b.JID) })
	return items, ver, nil
}

// RosterItem implements storage.Roster.
func (s *Store) RosterItem(ctx context.Context, user, contact string) (storage.RosterItem, error) {
	if err := ctx.Err(); err != nil {
		return storage.RosterItem{}, err
	}
	t := s.rosters()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := t.users[user]; r != nil {
		if e, ok := r.items[contact]; ok {
			return e.item.Clone(), nil
		}
	}
	return storage.RosterItem{}, fmt.Errorf("memory: roster item %q of %q: %w", contact, user, storage.ErrNotFound)
}

// SetRosterItem implements storage.Roster.
func (s *Store) SetRosterItem(ctx context.Context, user string, item storage.RosterItem) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if user == "" || item.JID == "" || !item.Subscription.Valid() {
		return "", fmt.Errorf("memory: set roster item %q of %q (subscription %q): %w", item.JID, user, item.Subscription, storage.ErrInvalidItem)
	}
	item = item.Clone()
	if item.Subscription == "" {
		item.Subscription = storage.SubNone
	}
	t := s.rosters()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := t.users[user]
	if r == nil {
		r = &userRoster{ver: rosterver.New(), items: make(map[string]rosterEntry)}
		t.users[user] = r
	}
	r.ver = r.ver.Next()
	r.items[item.JID] = rosterEntry{item: item, ver: r.ver.N}
	delete(r.tombs, item.JID)
	return r.ver.String(), nil
}

// DeleteRosterItem implements storage.Roster.
func (s *Store) DeleteRosterItem(ctx context.Context, user, contact string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	t := s.rosters()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := t.users[user]
	if r == nil {
		return "", fmt.Errorf("memory: delete roster item %q of %q: %w", contact, user, storage.ErrNotFound)
	}
	if _, ok := r.items[contact]; !ok {
		return "", fmt.Errorf("memory: delete roster item %q of %q: %w", contact, user, storage.ErrNotFound)
	}
	r.ver = r.ver.Next()
	delete(r.items, contact)
	if r.tombs == nil {
		r.tombs = make(map[string]uint64)
	}
	r.tombs[contact] = r.ver.N
	if len(r.tombs) > storage.MaxRosterTombstones {
		// Forget the oldest removal; versions up to it become unknown.
		oldest, at := "", uint64(0)
		for c, v := range r.tombs {
			if oldest == "" || v < at {
				oldest, at = c, v
			}
		}
		delete(r.tombs, oldest)
		r.floor = max(r.floor, at)
	}
	return r.ver.String(), nil
}

// RosterChangesSince implements storage.Roster.
func (s *Store) RosterChangesSince(ctx context.Context, user, ver string) ([]storage.RosterChange, string, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", false, err
	}
	t := s.rosters()
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := t.users[user]
	if r == nil {
		return nil, "", false, nil
	}
	cur := r.ver.String()
	n, ok := r.ver.Since(ver, r.floor)
	if !ok {
		return nil, cur, false, nil
	}
	type change struct {
		item storage.RosterItem
		ver  uint64
	}
	var changes []change
	for _, e := range r.items {
		if e.ver > n {
			changes = append(changes, change{e.item.Clone(), e.ver})
		}
	}
	for c, v := range r.tombs {
		if v > n {
			changes = append(changes, change{storage.RosterItem{JID: c, Subscription: storage.SubRemove}, v})
		}
	}
	slices.SortFunc(changes, func(a, b change) int { return cmp.Compare(a.ver, b.ver) })
	out := make([]storage.RosterChange, len(changes))
	for i, c := range changes {
		out[i] = storage.RosterChange{Item: c.item, Ver: r.ver.At(c.ver).String()}
	}
	return out, cur, true, nil
}

// DeleteRoster implements storage.Roster.
func (s *Store) DeleteRoster(ctx context.Context, user string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := s.rosters()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(t.users, user)
	return nil
}

var _ storage.Roster = (*Store)(nil)

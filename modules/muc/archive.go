package muc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
)

// NSMAMExtended is the XEP-0313 feature of before-id, after-id, ids and
// metadata, which room archives advertise with NSMAM.
const NSMAMExtended = NSMAM + "#extended"

// ArchiveQuerier is implemented by an Archive that answers XEP-0313
// requests on room JIDs: a query (set), the query form (get) and
// metadata (get). The service routes them there once the requester may
// read the room's archive (see the README), for rooms that archive.
type ArchiveQuerier interface {
	// Query answers iq, addressed to room's bare JID: it hands each
	// result message (addressed to iq's sender) to send, in order, and
	// returns the answer to iq (a result or an error reply). An error is
	// answered with internal-server-error.
	Query(ctx context.Context, room jid.JID, iq *stanza.Stanza, send func(*stanza.Stanza)) (*stanza.Stanza, error)
}

// ArchiveEditor is implemented by an Archive that finds and replaces a
// message by its stanza-id, for retractions (XEP-0424) and moderation
// (XEP-0425): the original is checked against the retraction and gives
// way to a tombstone.
type ArchiveEditor interface {
	// Message returns the archived message with the stanza-id id as
	// Append got it, or an error wrapping storage.ErrNotFound.
	Message(ctx context.Context, room jid.JID, id string) (*stanza.Stanza, error)
	// Replace puts msg in the place of the archived message id.
	Replace(ctx context.Context, room jid.JID, id string, msg *stanza.Stanza) error
}

// ArchiveExpirer is implemented by an Archive that removes a room's old
// messages, for the room retention the module enforces as a
// server.Expirer.
type ArchiveExpirer interface {
	// ExpireRoom removes at most limit (at least 1) of room's messages
	// archived before t and returns how many it removed; fewer than limit
	// means none is left.
	ExpireRoom(ctx context.Context, room jid.JID, t time.Time, limit int) (int, error)
}

// DefaultArchiveRetention is how long rooms keep archived messages when
// Options.ArchiveRetention is zero.
const DefaultArchiveRetention = 30 * 24 * time.Hour

// day is the unit of the per-room retention.
const day = 24 * time.Hour

// fieldRetention is the configuration field of a room's retention, in
// days (Clark notation, XEP-0068: no registered muc#roomconfig field
// exists for it).
const fieldRetention = "{urn:kiez:muc}archive_retention"

// retention is how long the room keeps archived messages: its own
// setting, bounded by the server's.
func (m *Module) retention(c *roomConfig) time.Duration {
	if c.Retention > 0 {
		if d := time.Duration(c.Retention) * day; d < m.opts.ArchiveRetention {
			return d
		}
	}
	return m.opts.ArchiveRetention
}

// retentionField is the configuration field of the room's retention: a
// choice of days up to the server's bound.
func (m *Module) retentionField(c *roomConfig) form.Field {
	bound := int(m.opts.ArchiveRetention / day)
	var opts []form.Option
	for _, n := range []int{1, 7, 30, 90, 365} {
		if n < bound {
			opts = append(opts, form.Option{Label: strconv.Itoa(n) + " days", Value: strconv.Itoa(n)})
		}
	}
	opts = append(opts, form.Option{Label: strconv.Itoa(bound) + " days (the most this service keeps)", Value: strconv.Itoa(bound)})
	return form.Field{Var: fieldRetention, Type: form.ListSingle, Label: "Keep archived messages for (days)",
		Values: []string{strconv.Itoa(int(m.retention(c) / day))}, Options: opts}
}

// applyRetention reads the retention field of a submitted configuration
// form: a number of days from 1, capped by the server's bound.
func (m *Module) applyRetention(f *form.Form, c *roomConfig) error {
	fd := f.Field(fieldRetention)
	if fd == nil || m.archive == nil {
		return nil
	}
	n, err := strconv.Atoi(fd.Value())
	if err != nil || n < 1 {
		return fmt.Errorf("%w: %s is not a number of days", errConfig, fieldRetention)
	}
	c.Retention = min(n, int(m.opts.ArchiveRetention/day))
	return nil
}

// mayRead reports whether the real JID from may read the room's archive
// (XEP-0313 on a room, as Prosody's mod_muc_mam): never an outcast; an
// occupant, a member, admin or owner always; others only if the room is
// neither members-only nor password-protected.
func (r *room) mayRead(m *Module, from jid.JID) error {
	aff := r.aff(m, from)
	switch {
	case aff == storage.AffOutcast:
		return stanza.NewError(mstanza.Auth, mstanza.Forbidden, "You are banned from this room")
	case r.real[from.String()] != nil, affRank(aff) >= affRank(storage.AffMember):
		return nil
	case r.cfg.MembersOnly:
		return stanza.NewError(mstanza.Auth, mstanza.Forbidden, "Only members may read the archive of this room")
	case r.cfg.Password != "":
		return stanza.NewError(mstanza.Auth, mstanza.Forbidden, "Join the room to read its archive")
	}
	return nil
}

// mamIQ routes a XEP-0313 request on a room to the archive, once the
// requester may read it; the query runs after the room's lock is
// released.
func (m *Module) mamIQ(ctx context.Context, st *stanza.Stanza) error {
	q, ok := m.archive.(ArchiveQuerier)
	allowed := false
	err := m.withRoom(ctx, st.To, func(r *room) ([]*stanza.Stanza, error) {
		if r == nil || (r.locked && r.aff(m, st.From) != storage.AffOwner) {
			return nil, stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "No such room")
		}
		if !ok || !r.archiving(m) {
			return nil, stanza.NewError(mstanza.Cancel, mstanza.ServiceUnavailable, "This room keeps no archive")
		}
		if err := r.mayRead(m, st.From); err != nil {
			return nil, err
		}
		allowed = true
		return nil, nil
	})
	if err != nil || !allowed {
		return err
	}
	reply, err := q.Query(ctx, st.To.Bare(), st, func(res *stanza.Stanza) { m.route(ctx, res) })
	if err != nil {
		return fmt.Errorf("muc: archive query: %w", err)
	}
	m.route(ctx, reply)
	return nil
}

// Expire implements server.Expirer: it applies each room's retention
// (its own, bounded by Options.ArchiveRetention) to the room archives,
// visiting the stored rooms and the loaded ones in address order and
// resuming, at the next call, at the room where limit was reached. more
// reports that the pass over the rooms is not over. Without an archive
// that is an ArchiveExpirer it does nothing.
func (m *Module) Expire(ctx context.Context, now time.Time, limit int) (removed int, more bool, err error) {
	ex, ok := m.archive.(ArchiveExpirer)
	if !ok {
		return 0, false, nil
	}
	names, err := m.store.Rooms(ctx, "")
	if err != nil {
		return 0, false, fmt.Errorf("muc: list rooms: %w", err)
	}
	for _, r := range m.loadedRooms() {
		names = append(names, r.jid.String())
	}
	slices.Sort(names)
	names = slices.Compact(names)
	m.expireMu.Lock()
	defer m.expireMu.Unlock()
	start, _ := slices.BinarySearch(names, m.expireFrom)
	for _, name := range names[start:] {
		rj, err := jid.Parse(name)
		if err != nil {
			continue
		}
		cfg, found, err := m.roomConfig(ctx, rj)
		if err != nil {
			return removed, false, err
		}
		ret := m.opts.ArchiveRetention
		if found {
			ret = m.retention(&cfg)
		}
		n, err := ex.ExpireRoom(ctx, rj, now.Add(-ret), limit-removed)
		removed += n
		if err != nil {
			return removed, false, fmt.Errorf("muc: %w", err)
		}
		if removed >= limit {
			// This room may have more: the next call starts with it.
			m.expireFrom = name
			return removed, true, nil
		}
	}
	m.expireFrom = ""
	return removed, false, nil
}

// roomConfig returns the configuration of a loaded or stored room
// without loading it.
func (m *Module) roomConfig(ctx context.Context, rj jid.JID) (roomConfig, bool, error) {
	m.mu.Lock()
	r, ok := m.rooms[rj.String()]
	m.mu.Unlock()
	if ok {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.cfg, true, nil
	}
	sr, err := m.store.Room(ctx, rj.String())
	if errors.Is(err, storage.ErrNotFound) {
		return roomConfig{}, false, nil
	}
	if err != nil {
		return roomConfig{}, false, fmt.Errorf("muc: load room: %w", err)
	}
	cfg, err := decodeConfig(sr.Config)
	return cfg, err == nil, err
}

var _ server.Expirer = (*Module)(nil)

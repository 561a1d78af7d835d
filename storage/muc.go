package storage

import (
	"context"
	"time"
)

// MUC affiliations (XEP-0045 §5.2) as stored.
const (
	AffOwner   = "owner"
	AffAdmin   = "admin"
	AffMember  = "member"
	AffOutcast = "outcast"
)

// MUCRoom is a persistent multi-user chat room as stored.
type MUCRoom struct {
	// JID is the room's bare JID, "room@conference.example.org".
	JID string
	// Config is the room's configuration in the module's own encoding
	// (opaque to the store), at most a few KiB.
	Config []byte
	// Created is the UTC day the room was created.
	Created time.Time
	// LastActive is the UTC day of the room's latest message or join,
	// for the removal of long-idle rooms.
	LastActive time.Time
}

// MUCAffiliation is one account's (or domain's) standing in one room: an
// affiliation other than none, a registered nick (XEP-0045 §7.10), or
// both.
type MUCAffiliation struct {
	// Room is the room's bare JID.
	Room string
	// JID is the affiliated bare JID, or a domain (XEP-0045 allows
	// banning a whole server).
	JID string
	// Affiliation is AffOwner, AffAdmin, AffMember or AffOutcast, or ""
	// (none) for an entry that only registers a nick.
	Affiliation string
	// Nick is the nick registered for JID in the room, if any.
	Nick string
	// Reason is the reason given with the affiliation, if any.
	Reason string
}

// MUC stores persistent rooms, their affiliations and registered nicks.
// Room and user addresses are bare JIDs as strings.
//
// Affiliations are indexed by room and by user, so that deleting an
// account removes its affiliations from every room, loaded in memory or
// not, without reading every room.
type MUC interface {
	// PutRoom creates or replaces the room r.JID (its Config, Created,
	// LastActive); affiliations are kept. Days are truncated to their
	// UTC day; a day outside years 1 to 9999 is an error.
	PutRoom(ctx context.Context, r MUCRoom) error
	// Room returns the stored room, or an error wrapping ErrNotFound.
	Room(ctx context.Context, room string) (MUCRoom, error)
	// Rooms lists the JIDs of the rooms stored at the service domain
	// (every room for ""), sorted.
	Rooms(ctx context.Context, service string) ([]string, error)
	// DeleteRoom removes the room with its affiliations and registered
	// nicks. Deleting a room that does not exist is not an error.
	DeleteRoom(ctx context.Context, room string) error

	// SetAffiliation stores a, replacing the entry of (a.Room, a.JID);
	// an entry with neither an affiliation nor a nick deletes it. The
	// room must exist (ErrNotFound otherwise). An empty Room or JID, or
	// an affiliation other than the four Aff constants and "", is an
	// error.
	SetAffiliation(ctx context.Context, a MUCAffiliation) error
	// Affiliation returns the entry of jid in room, or an error wrapping
	// ErrNotFound.
	Affiliation(ctx context.Context, room, jid string) (MUCAffiliation, error)
	// Affiliations lists the entries of room, sorted by JID, or returns
	// an error wrapping ErrNotFound if the room does not exist.
	Affiliations(ctx context.Context, room string) ([]MUCAffiliation, error)
	// UserAffiliations lists the entries of jid in every room, sorted by
	// room.
	UserAffiliations(ctx context.Context, jid string) ([]MUCAffiliation, error)
	// DeleteUserAffiliations removes every entry of jid in every room
	// and returns the rooms it was in, sorted.
	DeleteUserAffiliations(ctx context.Context, jid string) ([]string, error)
}

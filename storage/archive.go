package storage

import (
	"context"
	"time"
)

// ArchivedMessage is one message in a user's archive (XEP-0313).
type ArchivedMessage struct {
	// ID identifies the message within its owner's archive and orders the
	// archive: it is the number of microseconds since the Unix epoch at
	// which the message was archived, raised where needed so that IDs
	// strictly increase within an archive. Time returns it as a time.
	ID uint64
	// With is the other party's JID as the archive saw it (bare or full).
	With string
	// Data is the serialised message, opaque to the store.
	Data []byte
}

// Time returns the time the ID encodes.
func (m ArchivedMessage) Time() time.Time { return IDTime(m.ID) }

// IDTime returns the time an archive ID encodes.
func IDTime(id uint64) time.Time { return time.UnixMicro(int64(id)).UTC() }

// TimeID returns the smallest archive ID at or after t (0 for times
// before the epoch).
func TimeID(t time.Time) uint64 {
	us := t.UnixMicro()
	if us < 0 {
		return 0
	}
	return uint64(us)
}

// ArchiveQuery selects messages from one archive. Bounds and filters
// combine: a message is returned only if it passes all of them.
type ArchiveQuery struct {
	// With keeps messages with this party: a bare JID matches the bare JID
	// and all its full JIDs, a full JID only itself (XEP-0313 §4.1.1).
	// Empty keeps all.
	With string
	// After and Before are exclusive ID bounds; 0 means unbounded.
	After, Before uint64
	// IDs, when not empty, keeps only messages with these IDs.
	IDs []uint64
	// Max is the most messages returned; it must be at least 1.
	Max int
	// Reverse selects the newest Max messages of the range instead of the
	// oldest (paging backwards, XEP-0059 <before/>).
	Reverse bool
}

// ArchivePage is a query's result.
type ArchivePage struct {
	// Messages are in ascending ID order, whatever the query's direction.
	Messages []ArchivedMessage
	// Complete reports that no further message matches in the direction
	// of the query: beyond the last message returned, or, for a Reverse
	// query, before the first.
	Complete bool
}

// ArchiveStats summarises one archive (XEP-0313 metadata, XEP-0059 count).
type ArchiveStats struct {
	// Count is the number of messages in the archive.
	Count int
	// First and Last are the oldest and newest message, without Data;
	// zero when the archive is empty.
	First, Last ArchivedMessage
}

// Archive stores each user's message archive. IDs are time-ordered so that
// queries by time, by ID and expiry all seek rather than scan.
//
// user is a bare JID. Data is copied on the way in and out. Queries cost
// O(log n + returned messages) whatever the size of the archive and of
// other users' archives, including queries With a rarely seen party.
type Archive interface {
	// AppendArchive adds a message to user's archive with an ID for time
	// at (see ArchivedMessage.ID), and returns the ID once the message is
	// durable. Concurrent calls may share one commit (group commit).
	AppendArchive(ctx context.Context, user string, at time.Time, with string, data []byte) (uint64, error)
	// QueryArchive returns a page of user's archive.
	QueryArchive(ctx context.Context, user string, q ArchiveQuery) (ArchivePage, error)
	// ArchiveStats returns the size and ends of user's archive.
	ArchiveStats(ctx context.Context, user string) (ArchiveStats, error)
	// ExpireArchive removes every user's messages archived before t, at
	// most limit of them (limit <= 0: no limit), and returns how many it
	// removed. Removing fewer than a positive limit means none was left;
	// removing limit means more may be left, for another call (see
	// Limited). Its cost grows with the number of users and of removed
	// messages, not with the messages kept.
	ExpireArchive(ctx context.Context, t time.Time, limit int) (int, error)
	// ExpireUserArchive removes user's messages archived before t (an ID
	// below TimeID(t), to the nanosecond as ExpireArchive: a message
	// archived exactly at t stays) and returns how many it removed. Other
	// archives are untouched, the last ID assigned is kept (IDs keep
	// increasing) and stats follow at once. Its cost grows with the
	// removed messages, not with the messages kept nor with other users'
	// archives. It removes at most limit messages (limit <= 0: no limit),
	// as ExpireArchive. A user without an archive is not an error.
	ExpireUserArchive(ctx context.Context, user string, t time.Time, limit int) (int, error)
	// DeleteArchive removes user's whole archive.
	DeleteArchive(ctx context.Context, user string) error
}

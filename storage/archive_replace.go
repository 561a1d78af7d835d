package storage

import "context"

// ArchiveReplacer is implemented by an Archive that can replace one stored
// message in place, keeping its ID and party: a retracted or moderated
// message (XEP-0424, XEP-0425) gives way to a tombstone, and queries that
// page over it still find it at the same place.
type ArchiveReplacer interface {
	// ReplaceArchived replaces the data of the message id in user's
	// archive with data (copied). A message that is not there (never
	// was, expired, deleted) is an error wrapping ErrNotFound; other
	// messages and the archive's stats are untouched.
	ReplaceArchived(ctx context.Context, user string, id uint64, data []byte) error
}

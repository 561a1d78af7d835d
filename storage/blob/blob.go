// Package blob keeps the bytes of uploaded files, apart from their
// metadata (storage.Uploads): a small interface, and Dir, which keeps each
// file in a directory under a name made of its random ID only.
package blob

import (
	"context"
	"errors"
	"io"
	"time"
)

// Store keeps files under IDs the caller chooses: random, URL-safe
// strings (ASCII letters, digits, '-' and '_', 16 to 128 characters, as
// ValidID checks); any other ID is an error wrapping ErrInvalidID, for
// every method, and touches nothing.
type Store interface {
	// Create returns a Writer for a new file named id. Nothing is visible
	// under id until the Writer commits; a file of the same ID already
	// committed, or being written by another Writer, fails Create with an
	// error wrapping storage.ErrExists.
	Create(ctx context.Context, id string) (Writer, error)
	// Open returns the committed file named id, or an error wrapping
	// storage.ErrNotFound.
	Open(ctx context.Context, id string) (File, error)
	// Delete removes the committed file named id. Deleting one that does
	// not exist is not an error.
	Delete(ctx context.Context, id string) error
}

// Writer receives a new file's bytes. It is not safe for concurrent use,
// and must end with Commit or Abort: until then its ID stays taken.
type Writer interface {
	io.Writer
	// Commit makes the file durable (synced to disk) and visible under
	// its ID, at once and whole. If it fails, the file is discarded as by
	// Abort. Writing or committing after Commit is an error.
	Commit() error
	// Abort discards what was written. After Commit, or a second time, it
	// does nothing.
	Abort() error
}

// File is a committed file, read from the start or at any offset.
type File interface {
	io.ReadSeekCloser
	// Size is the file's length in bytes; ModTime when it was committed.
	Size() int64
	ModTime() time.Time
}

// ErrInvalidID is returned, wrapped, for an ID that ValidID rejects.
var ErrInvalidID = errors.New("blob: invalid ID")

// Lengths of a valid ID.
const (
	MinIDLen = 16
	MaxIDLen = 128
)

// ValidID reports whether id may name a file: MinIDLen to MaxIDLen ASCII
// letters, digits, '-' and '_'. Such an ID is a plain file name on every
// file system: no separator, no dot, no NUL.
func ValidID(id string) bool {
	if len(id) < MinIDLen || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

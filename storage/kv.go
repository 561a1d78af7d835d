package storage

import "context"

// KV stores small opaque values per user under string keys, for modules
// whose data is a handful of blobs per account (a vCard, private XML).
// Modules share one KV and keep apart by key prefix ("vcard",
// "private:..."); a module deletes only its own keys.
//
// user is a bare JID (localpart@domain); keys and user must be non-empty
// for Put. Values are copied on the way in and out.
type KV interface {
	// Get returns the value stored under key for user, or an error
	// wrapping ErrNotFound.
	Get(ctx context.Context, user, key string) ([]byte, error)
	// Put stores value under key for user, replacing any previous value.
	// An empty user or key is an error.
	Put(ctx context.Context, user, key string, value []byte) error
	// Delete removes key for user. Deleting a key that does not exist is
	// not an error.
	Delete(ctx context.Context, user, key string) error
	// Keys lists the keys stored for user, sorted bytewise (as Go sorts
	// strings). A user without keys has none: nil and no error.
	Keys(ctx context.Context, user string) ([]string, error)
	// DeleteUser removes every key of user, whichever module wrote it.
	// A user without keys is not an error.
	DeleteUser(ctx context.Context, user string) error
}

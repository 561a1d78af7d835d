package storage

import (
	"context"
	"time"
)

// ServiceData stores small opaque values that belong to a service or a
// domain rather than to a user: a MUC service's rooms, upload metadata,
// invitations, bans, the addresses an IP filter blocks.
//
// Values are kept per namespace, a string a module chooses and owns, such
// as "muc:conference.example.org" or "ipfilter", under string keys. Each
// entry may carry an expiry: every kind of data a server keeps needs a
// bounded retention, so entries such as invitations, bans and blocked
// addresses should have one. The zero time means none. An entry whose
// expiry is not after the current time is gone for ServiceValue and
// ServiceKeys at once, before ExpireServiceData removes it. Expiries are
// kept to the microsecond (truncated) and must lie in years 1 to 9999.
//
// Data about a user kept here (a ban, a room affiliation) is not removed by
// UserDataDeleter: the module that wrote it deletes it with the account.
//
// An empty namespace is an error for every method. Every method is atomic,
// and values are copied on the way in and out.
type ServiceData interface {
	// ServiceValue returns the value stored under key in namespace and
	// its expiry (the zero Time for none), or an error wrapping
	// ErrNotFound if there is none or it has expired. An empty key is
	// not found.
	ServiceValue(ctx context.Context, namespace, key string) (value []byte, expires time.Time, err error)
	// PutServiceValue stores value under key in namespace, replacing any
	// previous value and its expiry, until expires (the zero Time: no
	// expiry). An empty key, or an expiry outside years 1 to 9999, is an
	// error.
	PutServiceValue(ctx context.Context, namespace, key string, value []byte, expires time.Time) error
	// DeleteServiceValue removes key from namespace. Deleting a key that
	// does not exist (or an empty key) is not an error.
	DeleteServiceValue(ctx context.Context, namespace, key string) error
	// ServiceKeys returns a page of the keys in namespace that have not
	// expired, sorted bytewise (as Go sorts strings), as q selects. A page
	// with fewer than q.Max keys is the last. A namespace without keys has
	// none: nil and no error.
	ServiceKeys(ctx context.Context, namespace string, q ServiceKeysQuery) ([]string, error)
	// DeleteServiceNamespace removes every entry of namespace. A
	// namespace without entries is not an error.
	DeleteServiceNamespace(ctx context.Context, namespace string) error
	// ExpireServiceData removes the entries, in every namespace, whose
	// expiry is at or before t, at most limit of them (limit <= 0: no
	// limit), soonest expiry first, and returns how many it removed.
	// Removing fewer than a positive limit means none was left; removing
	// limit means more may be left, for another call (see Limited).
	ExpireServiceData(ctx context.Context, t time.Time, limit int) (int, error)
}

// ServiceKeysQuery selects a page of ServiceData.ServiceKeys.
type ServiceKeysQuery struct {
	// Prefix keeps only keys that begin with it; empty keeps all.
	Prefix string
	// After, if not empty, starts the page after this key: the last key
	// of the previous page.
	After string
	// Max is the most keys returned; it must be at least 1.
	Max int
}

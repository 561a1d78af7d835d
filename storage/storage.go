// Package storage defines the small, per-feature storage interfaces that Kiez
// modules depend on, and the plain data types they exchange.
//
// Every method takes a context and, where it concerns one user, that user's
// bare JID (localpart@domain) as a string. Each method is atomic on its own;
// there are no cross-store transactions. Implementations live in
// storage/bbolt (the default, one file on disk) and storage/memory; the suite
// in storage/storagetest checks any implementation.
package storage

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned (possibly wrapped) when a requested record does
// not exist.
var ErrNotFound = errors.New("storage: not found")

// ErrExists is returned (possibly wrapped) when a record that must be new
// already exists.
var ErrExists = errors.New("storage: already exists")

// Hash names a hash function used for SCRAM credentials.
type Hash string

// The SCRAM hash functions Kiez stores credentials for.
const (
	SHA1   Hash = "SHA-1"
	SHA256 Hash = "SHA-256"
	SHA512 Hash = "SHA-512"
)

// SCRAMKeys are the credentials RFC 5802 §3 lets a server keep for one hash
// function: enough to verify a client proof and to prove the server's own
// identity, but not enough to impersonate the user to another server that
// uses the same salt. Neither the password nor the SaltedPassword is ever
// stored.
type SCRAMKeys struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Account is a user account as stored.
type Account struct {
	// JID is the bare JID of the account, "user@domain".
	JID string
	// Keys holds one set of SCRAM credentials per hash function.
	Keys map[Hash]SCRAMKeys
	// Created is the UTC day the account was created (time of day is zero).
	Created time.Time
	// LastLogin is the UTC day of the latest login (time of day is zero),
	// or the zero Time if the account never logged in.
	LastLogin time.Time
	// Removed is the UTC day its owner removed the account while removals
	// have a grace period (the account is locked, invisible, and purged
	// once the period is over), or the zero Time.
	Removed time.Time
}

// Day truncates t to its UTC calendar day. Accounts keep only days, never
// times of day, so that stored dates cannot reveal when a user is active.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Accounts stores user accounts.
type Accounts interface {
	// CreateAccount stores a new account. It returns an error wrapping
	// ErrExists if the JID is taken. Created is truncated to its day.
	CreateAccount(ctx context.Context, a Account) error
	// Account returns the account for the bare JID, or an error wrapping
	// ErrNotFound.
	Account(ctx context.Context, jid string) (Account, error)
	// SetKeys replaces all SCRAM credentials of an account at once (a
	// password change), or returns an error wrapping ErrNotFound.
	SetKeys(ctx context.Context, jid string, keys map[Hash]SCRAMKeys) error
	// TouchLogin records day (truncated to its UTC day) as the account's last
	// login. It writes only when the stored day differs, so it costs at most
	// one write per account and day. An unknown account yields ErrNotFound.
	TouchLogin(ctx context.Context, jid string, day time.Time) error
	// SetRemoved records day (truncated to its UTC day) as the day the
	// account was removed; the zero Time clears it (the account is
	// restored). An unknown account yields ErrNotFound.
	SetRemoved(ctx context.Context, jid string, day time.Time) error
	// DeleteAccount removes the account, or returns an error wrapping
	// ErrNotFound.
	DeleteAccount(ctx context.Context, jid string) error
	// Accounts lists the bare JIDs of all accounts on domain, sorted. An
	// empty domain lists every account.
	Accounts(ctx context.Context, domain string) ([]string, error)
}

// Limited reports whether an expiry that removed n items under limit may
// have left more for another call: the expiry methods (ExpireArchive,
// ExpireOffline, ExpireServiceData…) remove fewer than a positive limit
// only when nothing due is left.
func Limited(n, limit int) bool { return limit > 0 && n >= limit }

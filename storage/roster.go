package storage

import (
	"context"
	"errors"
)

// Subscription is the subscription state of a roster item (RFC 6121
// §2.1.2.5): whether the user receives the contact's presence ("to"), the
// contact receives the user's ("from"), both, or neither. "remove" appears
// only in roster pushes and in RosterChangesSince, for removed items.
type Subscription string

// The subscription states of RFC 6121 §2.1.2.5.
const (
	SubNone   Subscription = "none"
	SubTo     Subscription = "to"
	SubFrom   Subscription = "from"
	SubBoth   Subscription = "both"
	SubRemove Subscription = "remove"
)

// Valid reports whether s is a state an item can be stored with: none, to,
// from or both. The empty Subscription counts as none.
func (s Subscription) Valid() bool {
	switch s {
	case "", SubNone, SubTo, SubFrom, SubBoth:
		return true
	}
	return false
}

// RosterItem is one contact in a user's roster, with the subscription
// state RFC 6121 §3 and Appendix A need.
type RosterItem struct {
	// JID is the contact's bare JID.
	JID string
	// Name is the user's nickname for the contact; empty for none.
	Name string
	// Groups are the roster groups the item is in, in the order given.
	Groups []string
	// Subscription is none, to, from or both; "" is stored as none.
	Subscription Subscription
	// Ask is set while the user's subscription request to the contact is
	// pending (ask='subscribe', "Pending Out").
	Ask bool
	// Approved is set when the user pre-approved the contact's
	// subscription request (RFC 6121 §3.4, approved='true').
	Approved bool
	// PendingIn is set while the contact's subscription request awaits the
	// user's answer ("Pending In"). Servers do not show it to clients.
	PendingIn bool
	// Hidden marks an item the user never added, kept only to remember
	// the contact's pending request (RFC 6121 §3.1.3); clients do not see
	// it until the user acts on it.
	Hidden bool
}

// Clone returns a copy of it that shares no memory with it.
func (it RosterItem) Clone() RosterItem {
	if it.Groups != nil {
		it.Groups = append([]string{}, it.Groups...)
	}
	return it
}

// RosterChange is one entry of RosterChangesSince: the item as it is now
// (only JID and Subscription SubRemove for a removed item) and the roster
// version at which it last changed.
type RosterChange struct {
	Item RosterItem
	Ver  string
}

// ErrInvalidItem is returned, wrapped, by SetRosterItem for an item
// without a JID or with a subscription other than none, to, from or both.
var ErrInvalidItem = errors.New("storage: invalid roster item")

// MaxRosterTombstones is how many removals a Roster must remember, at
// least, for RosterChangesSince. Versions older than the oldest removal
// it still remembers are unknown.
const MaxRosterTombstones = 1000

// Roster stores each user's roster (RFC 6121 §2) and its version.
//
// A roster's version changes on every modification, including the first
// item ever added; it is an opaque string that clients cache and send
// back (RFC 6121 §2.6). Implementations use a per-user counter, prefixed
// with a value chosen when the roster is first written, so that a version
// of a deleted roster is never taken for one of the user's next roster.
// The version of a roster that was never written (or was deleted) is "".
//
// Removed items are remembered, with the version they were removed at,
// so that RosterChangesSince can report them; at least the latest
// MaxRosterTombstones removals are kept, and older versions become
// unknown.
//
// Every method is atomic, items are copied on the way in and out, and
// user and contact are bare JIDs.
type Roster interface {
	// Roster returns all of user's items, sorted by JID, and the roster's
	// version. An unknown user has an empty roster and version "".
	Roster(ctx context.Context, user string) (items []RosterItem, ver string, err error)
	// RosterItem returns user's item for contact, or an error wrapping
	// ErrNotFound.
	RosterItem(ctx context.Context, user, contact string) (RosterItem, error)
	// SetRosterItem adds item to user's roster or replaces the item with
	// the same JID, and returns the new version, written in the same
	// transaction. An empty user, or an item that is not valid, gives an
	// error wrapping ErrInvalidItem.
	SetRosterItem(ctx context.Context, user string, item RosterItem) (ver string, err error)
	// DeleteRosterItem removes user's item for contact and returns the new
	// version, or an error wrapping ErrNotFound if there is no such item.
	DeleteRosterItem(ctx context.Context, user, contact string) (ver string, err error)
	// RosterChangesSince returns the items changed since version ver, in
	// the order they were last changed, each with the version of its last
	// change (a removed item has only JID and Subscription SubRemove set),
	// and the current version. Applying the changes in order up to any one
	// of them gives the roster at that change's version, so each can be
	// pushed with its own version. ok is false, with no changes, when ver is not a
	// version of the user's current roster or is too old to tell what was
	// removed since, or is "": the client then needs the whole roster.
	// The current version itself is known and gives no changes.
	RosterChangesSince(ctx context.Context, user, ver string) (changes []RosterChange, newVer string, ok bool, err error)
	// DeleteRoster removes user's roster, its version and its removal
	// history. A user without a roster is not an error.
	DeleteRoster(ctx context.Context, user string) error
}

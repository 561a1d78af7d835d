package storage

import (
	"context"
	"time"
)

// ErrLimit is returned (wrapped, with what limit it was) when a write
// would go past a limit the caller set: nodes per user, bytes per user.
// It is the same error as ErrFull, named for limits other than a full
// queue, so errors.Is matches either name.
var ErrLimit = ErrFull

// PEPNode is one personal eventing node of an account (XEP-0163): its
// name and its configuration, which the module encodes and the store
// keeps as it is. Subscriptions are not stored: in PEP they follow from
// presence subscriptions.
type PEPNode struct {
	Name   string
	Config []byte
	// Items and Bytes are the node's item count and the total size of
	// its items' IDs and payloads, as stored; set by the store on the way
	// out, ignored on the way in.
	Items int
	Bytes int64
}

// PEPItem is one published item of a node.
type PEPItem struct {
	ID      string
	Payload []byte // the item's payload element, serialised
	// Published is when the item was (last) published, set by the
	// caller. It is kept to the microsecond (truncated), must lie in
	// years 1 to 9999 (the zero Time is stored as it is), and comes back
	// in UTC.
	Published time.Time
}

// PEPLimits bound what one user may store; zero fields are no bound, and a
// negative field is an error.
type PEPLimits struct {
	// MaxItems is the most items a node keeps: publishing one more drops
	// the oldest.
	MaxItems int
	// MaxNodes is the most nodes a user may have: creating one more fails
	// with ErrLimit.
	MaxNodes int
	// MaxBytes is the most bytes (item IDs and payloads, len of each) of
	// all of a user's nodes together: a publish after which the user's
	// total would exceed it, counting the items it drops and replaces,
	// fails with ErrLimit, even if it would shrink a total that is past a
	// lowered limit already. Node names and configurations do not count.
	MaxBytes int64
}

// PEP stores the personal eventing nodes and items of accounts.
//
// user is a bare JID; node names and item IDs must not be empty. Nothing
// is ever stored under an empty user, node name or item ID: CreatePEPNode
// and PublishPEPItem reject one with an error (wrapping none of ErrExists,
// ErrLimit and ErrNotFound), and the other methods find nothing there
// (ErrNotFound, or no nodes).
//
// A node's items are ordered by publication: publishing an ID the node
// has replaces that item and makes it the newest. Every method is atomic:
// when it returns an error, nothing changed. Values are copied on the way
// in and out; an empty Config or Payload may come back nil.
type PEP interface {
	// PEPNodes returns user's nodes sorted by name (bytewise, as Go sorts
	// strings). A user without nodes has none: nil and no error.
	PEPNodes(ctx context.Context, user string) ([]PEPNode, error)
	// PEPNode returns one node, or an error wrapping ErrNotFound.
	PEPNode(ctx context.Context, user, node string) (PEPNode, error)
	// CreatePEPNode creates node.Name with node.Config and no items, or
	// fails with ErrExists if user has it, or with ErrLimit if user
	// already has lim.MaxNodes nodes.
	CreatePEPNode(ctx context.Context, user string, node PEPNode, lim PEPLimits) error
	// ConfigurePEPNode replaces a node's configuration and drops its
	// oldest items beyond lim.MaxItems (without reporting which). A node
	// that does not exist is an error wrapping ErrNotFound.
	ConfigurePEPNode(ctx context.Context, user, node string, config []byte, lim PEPLimits) error
	// DeletePEPNode removes a node and its items, or fails with
	// ErrNotFound.
	DeletePEPNode(ctx context.Context, user, node string) error
	// PublishPEPItem makes item the newest of node, replacing an item
	// with the same ID, and drops the oldest beyond lim.MaxItems. If the
	// node does not exist it is created with config first (and created
	// reports so), within lim.MaxNodes; the config of a node that exists
	// is left as it is. Past lim.MaxBytes nothing changes and the error
	// wraps ErrLimit. The dropped items' IDs are returned, oldest first
	// (not the replaced one; nil if none).
	PublishPEPItem(ctx context.Context, user, node string, config []byte, item PEPItem, lim PEPLimits) (created bool, dropped []string, err error)
	// RetractPEPItem removes one item, or fails with ErrNotFound when the
	// node or the item does not exist.
	RetractPEPItem(ctx context.Context, user, node, id string) error
	// PurgePEPNode removes every item of a node, or fails with
	// ErrNotFound if there is no such node.
	PurgePEPNode(ctx context.Context, user, node string) error
	// PEPItems returns a node's items, oldest first: those with the given
	// IDs if ids is not empty (IDs it lacks are left out, and an ID given
	// twice counts once), else all; with max > 0, only the max newest of
	// those. A node that does not exist is an error wrapping ErrNotFound;
	// a node without the items asked for gives nil and no error.
	PEPItems(ctx context.Context, user, node string, ids []string, max int) ([]PEPItem, error)
	// DeletePEP removes every node of user. A user without nodes is not
	// an error.
	DeletePEP(ctx context.Context, user string) error
}

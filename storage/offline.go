package storage

import (
	"context"
	"errors"
	"time"
)

// ErrFull is returned (possibly wrapped) when a per-user limit would be
// exceeded, such as a full offline message queue.
var ErrFull = errors.New("storage: limit reached")

// OfflineMessage is a message kept for an account that had no available
// resource (XEP-0160).
type OfflineMessage struct {
	// Seq orders a user's offline messages; the store assigns it,
	// strictly increasing per user.
	Seq uint64
	// Stored is when the message was stored (its XEP-0203 delay stamp),
	// kept to the second.
	Stored time.Time
	// Data is the serialised message, opaque to the store.
	Data []byte
}

// Offline stores messages for accounts that are offline, in arrival order.
//
// user is a bare JID. Data is copied on the way in and out.
type Offline interface {
	// PushOffline appends msg (its Seq is ignored) to user's queue and
	// returns once it is durable. If the queue already holds limit
	// messages it stores nothing and returns an error wrapping ErrFull;
	// limit <= 0 means no limit. Concurrent calls may share one commit.
	PushOffline(ctx context.Context, user string, msg OfflineMessage, limit int) error
	// OfflineMessages returns user's queued messages, oldest first,
	// without removing them. A user with none gets nil and no error.
	OfflineMessages(ctx context.Context, user string) ([]OfflineMessage, error)
	// CountOffline returns how many messages user has queued, without
	// reading them.
	CountOffline(ctx context.Context, user string) (int, error)
	// DeleteOffline removes user's messages with Seq <= upTo (the ones a
	// delivery has sent). Messages pushed meanwhile stay.
	DeleteOffline(ctx context.Context, user string, upTo uint64) error
	// ExpireOffline removes every user's messages stored before t, at most
	// limit of them (limit <= 0: no limit), and returns how many it
	// removed. Removing fewer than a positive limit means none was left;
	// removing limit means more may be left, for another call (see
	// Limited). Its cost grows with the number of users and of removed
	// messages, not with the messages kept.
	ExpireOffline(ctx context.Context, t time.Time, limit int) (int, error)
	// DeleteOfflineUser removes all of user's messages.
	DeleteOfflineUser(ctx context.Context, user string) error
}

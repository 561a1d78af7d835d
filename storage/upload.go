package storage

import (
	"context"
	"time"
)

// UploadState is where an upload stands.
type UploadState uint8

// The states of an upload: a slot was handed out (XEP-0363), its bytes
// are being received, or the file is stored and served.
const (
	UploadSlot UploadState = iota + 1
	UploadReceiving
	UploadComplete
)

// Upload is the metadata of one file a user shares over HTTP (XEP-0363).
// Its bytes are kept apart (package storage/blob) under the same ID.
type Upload struct {
	// ID names the upload in URLs and in the blob store: random (at least
	// 128 bits), URL-safe, never derived from the filename. It must not be
	// empty; package storage/blob also wants 16 to 128 letters, digits,
	// '-' and '_' (blob.ValidID), which Uploads does not check.
	ID string
	// Owner is the bare JID of the account that asked for the slot. It
	// must not be empty.
	Owner string
	// Filename is the name the client gave, sanitised; it is only shown,
	// never used as a path.
	Filename string
	// Size is the file's length in bytes, as the slot request announced
	// it; it counts towards UploadLimits in every state. It must not be
	// negative.
	Size        int64
	ContentType string
	State       UploadState
	// Created is when the slot was handed out; Expires when the upload
	// (an unused slot, or the file) is deleted. Both are kept to the
	// microsecond (truncated), must lie in years 1 to 9999, and come back
	// in UTC. Expires must not be the zero Time: every upload expires (to
	// keep one for good, give a far date).
	Created time.Time
	Expires time.Time
}

// UploadLimits bound what one account may upload; zero fields are no
// bound, and a negative field is an error.
type UploadLimits struct {
	// MaxBytes is the most bytes (Size) of all the owner's uploads (slots
	// and files, in any state) together.
	MaxBytes int64
	// MaxDayBytes is the most bytes of the owner's uploads created at or
	// after DayStart. DayStart is taken to the microsecond (truncated), as
	// Created is; when MaxDayBytes is set it must lie in years 1 to 9999.
	MaxDayBytes int64
	DayStart    time.Time
}

// Uploads stores the metadata of uploads.
//
// IDs and owners must not be empty: every method rejects an empty one with
// an error wrapping none of ErrNotFound, ErrExists and ErrLimit, as it
// does other invalid arguments (a state that is not one of the three, a
// negative size or limit, a time to keep outside years 1 to 9999, a max
// below 1; ExpiredUploads takes any t). Every method is atomic: when it
// returns an error, nothing changed. Uploads are copies; changing one
// changes nothing stored.
//
// Uploads are not among the kinds of DeleteEveryKind: a backend's
// UserDataDeleter leaves them. Their bytes are in a blob store the backend
// does not know, so the upload module deletes a deleted account's uploads
// itself (UserUploads, then for each the bytes and then DeleteUpload), so
// that no file is left without its record.
type Uploads interface {
	// CreateUpload stores u, which must be in state UploadSlot. An ID
	// already taken fails with ErrExists; going past lim fails with an
	// error wrapping ErrLimit (saying which limit), and nothing is
	// stored. For lim.MaxBytes it sums the Size of all the owner's
	// uploads, in any state, and u's; for lim.MaxDayBytes that of those
	// created at or after lim.DayStart, and u's (whatever its Created). A
	// sum equal to the limit is within it.
	CreateUpload(ctx context.Context, u Upload, lim UploadLimits) error
	// Upload returns an upload, or an error wrapping ErrNotFound.
	Upload(ctx context.Context, id string) (Upload, error)
	// SetUploadState moves an upload from state from to state to (slot to
	// receiving when a PUT starts, receiving to complete when it ends) and
	// sets its expiry to expires, unless expires is the zero Time, which
	// keeps the expiry it has (a slot expires minutes after it was handed
	// out, a complete file after the retention); it fails with ErrExists
	// if the upload is not in state from (a second PUT), or ErrNotFound.
	// Any of the three states may move to any other (or stay); nothing
	// else of the upload changes. A new expiry is kept like Expires: to
	// the microsecond, in years 1 to 9999.
	SetUploadState(ctx context.Context, id string, from, to UploadState, expires time.Time) error
	// DeleteUpload removes an upload's record. Deleting one that does not
	// exist is not an error.
	DeleteUpload(ctx context.Context, id string) error
	// UserUploads returns owner's uploads, oldest first (by Created, and
	// uploads created in the same microsecond by ID, bytewise). An owner
	// without uploads has none: nil and no error.
	UserUploads(ctx context.Context, owner string) ([]Upload, error)
	// ExpiredUploads returns at most max uploads whose expiry is at or
	// before t, soonest first (by Expires, then by ID, bytewise), for the
	// janitor to delete (bytes first, then the record). max must be at
	// least 1. It removes nothing: an upload stays until DeleteUpload.
	ExpiredUploads(ctx context.Context, t time.Time, max int) ([]Upload, error)
}

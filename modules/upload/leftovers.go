package upload

import (
	"context"
	"errors"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
)

// Leftovers is a module for servers that run with the upload service
// switched off: it keeps the promises the service made for the files it
// stored before — deleting an account deletes its files, and every file
// expires when its retention ends — without offering uploads. Create it
// with NewLeftovers.
type Leftovers struct {
	deps Deps
}

// NewLeftovers returns the module; deps.Secrets is not needed. The
// server's janitor expires the files (see Leftovers.Expire).
func NewLeftovers(deps Deps) (*Leftovers, error) {
	if deps.Store == nil || deps.Files == nil {
		return nil, errors.New("upload: a metadata store and a file store are required")
	}
	return &Leftovers{deps: deps}, nil
}

// Name returns "upload-leftovers".
func (*Leftovers) Name() string { return "upload-leftovers" }

// Expire implements server.Expirer: it deletes at most limit expired
// files, as Module.Expire does.
func (l *Leftovers) Expire(ctx context.Context, now time.Time, limit int) (int, bool, error) {
	return ExpireFiles(ctx, l.deps.Store, l.deps.Files, now, limit)
}

// UserData names what the module deletes per user.
func (*Leftovers) UserData() []string { return []string{"uploaded files"} }

// DeleteUser deletes the account's files and day counters.
func (l *Leftovers) DeleteUser(ctx context.Context, user jid.JID) error {
	return errors.Join(DeleteUserFiles(ctx, l.deps.Store, l.deps.Files, user), deleteDayCounters(ctx, l.deps.Days, user, time.Now()))
}

// ExportUser writes nothing: the files are not offered any more.
func (*Leftovers) ExportUser(context.Context, jid.JID, xmlstream.TokenWriter) error { return nil }

var (
	_ server.Expirer       = (*Leftovers)(nil)
	_ server.UserDataOwner = (*Leftovers)(nil)
)

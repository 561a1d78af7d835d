package upload

import (
	"context"
	"errors"
	"log/slog"
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
	deps     Deps
	interval time.Duration
	log      *slog.Logger
}

// NewLeftovers returns the module; deps.Secrets is not needed. The
// janitor runs at start and every interval (zero: an hour).
func NewLeftovers(deps Deps, interval time.Duration) (*Leftovers, error) {
	if deps.Store == nil || deps.Files == nil {
		return nil, errors.New("upload: a metadata store and a file store are required")
	}
	if interval <= 0 {
		interval = time.Hour
	}
	return &Leftovers{deps: deps, interval: interval}, nil
}

// Name returns "upload-leftovers".
func (*Leftovers) Name() string { return "upload-leftovers" }

// Init starts the janitor.
func (l *Leftovers) Init(_ context.Context, h server.Host) error {
	l.log = h.Logger()
	h.Go(func(ctx context.Context) {
		t := time.NewTicker(l.interval)
		defer t.Stop()
		for {
			if n, err := ExpireFiles(ctx, l.deps.Store, l.deps.Files, time.Now()); ctx.Err() != nil {
				return
			} else if err != nil {
				l.log.Warn("deleting expired uploads failed", "err", err)
			} else if n > 0 {
				l.log.Info("deleted expired uploads of the switched-off upload service", "count", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return nil
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
	_ server.Initializer   = (*Leftovers)(nil)
	_ server.UserDataOwner = (*Leftovers)(nil)
)

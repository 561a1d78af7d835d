package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage"
)

// housekeepingEvery is how often serve runs housekeeping, after once at
// start.
const housekeepingEvery = time.Hour

// minUnusedAfter is the shortest accounts.remove_unused_after: removing
// an account deletes everything of it, so a typo must not empty the
// server.
const minUnusedAfter = 30 * 24 * time.Hour

// housekeepingStore is what housekeeping reads and expires directly.
type housekeepingStore interface {
	storage.Accounts
	storage.Offline
	storage.Archive
	storage.ServiceData
}

// housekeeper keeps stored data bounded whatever modules are switched on:
// it expires the offline messages and archives of a switched-off module
// with the configured retention (a running module expires its own), and,
// if configured, removes accounts unused for longer than
// accounts.remove_unused_after.
type housekeeper struct {
	cfg   *config
	srv   *server.Server
	store housekeepingStore
	log   *slog.Logger
}

// run does the housekeeping now and then every housekeepingEvery until
// ctx ends.
func (h *housekeeper) run(ctx context.Context) {
	t := time.NewTicker(housekeepingEvery)
	defer t.Stop()
	for {
		h.once(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// once does the housekeeping as of now, logging what it did and what
// failed.
func (h *housekeeper) once(ctx context.Context, now time.Time) {
	m := h.cfg.Modules
	if !m.Offline {
		n, err := h.store.ExpireOffline(ctx, now.Add(-time.Duration(m.OfflineRetention)))
		h.report("expired offline messages of the switched-off offline module", n, err)
	}
	if !m.Archive {
		n, err := h.store.ExpireArchive(ctx, now.Add(-time.Duration(m.ArchiveRetention)))
		h.report("expired archived messages of the switched-off archive module", n, err)
	}
	// Expired service data: bans of the IP filter, the upload service's
	// day counters. Expired entries are already ignored; this removes
	// them from the file.
	n, err := h.store.ExpireServiceData(ctx, now)
	h.report("removed expired bans and counters", n, err)
	if h.cfg.Accounts.RemoveUnused {
		n, err := h.removeUnused(ctx, now)
		h.report("removed accounts unused for "+formatDuration(time.Duration(h.cfg.Accounts.RemoveUnusedAfter)), n, err)
	}
}

func (h *housekeeper) report(what string, n int, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		h.log.Error("housekeeping failed", "task", what, "err", err)
	}
	if n > 0 {
		h.log.Info("housekeeping", "task", what, "count", n)
	}
}

// removeUnused deletes, with all their data, the accounts whose last
// login (or, if they never logged in, creation) is more than
// accounts.remove_unused_after before now and that have no session.
func (h *housekeeper) removeUnused(ctx context.Context, now time.Time) (int, error) {
	limit := storage.Day(now.Add(-time.Duration(h.cfg.Accounts.RemoveUnusedAfter)))
	users, err := h.srv.Users(ctx, "")
	if err != nil {
		return 0, err
	}
	removed := 0
	var errs []error
	for _, u := range users {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		a, err := h.store.Account(ctx, u)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !lastUsed(a).Before(limit) {
			continue
		}
		j, err := jid.Parse(u)
		if err != nil || h.srv.Online(j) {
			continue
		}
		if err := h.srv.DeleteUser(ctx, j); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}

// lastUsed is the day an account was last used: its last login, or its
// creation if it never logged in.
func lastUsed(a storage.Account) time.Time {
	if a.LastLogin.IsZero() {
		return a.Created
	}
	return a.LastLogin
}

// formatDuration writes whole days as "30d", as the configuration does.
func formatDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

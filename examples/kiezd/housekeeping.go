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

// housekeepingEvery is how often serve removes unused accounts, after
// once at start.
const housekeepingEvery = time.Hour

// minUnusedAfter is the shortest accounts.remove_unused_after: removing
// an account deletes everything of it, so a typo must not empty the
// server.
const minUnusedAfter = 30 * 24 * time.Hour

// Expired data has one path in kiezd: the server's janitor
// (server.Retention), which calls every module implementing
// server.Expirer, in bounded batches, and expires the store's service data
// (bans of the IP filter, the upload service's day counters, invitations),
// logging counts only. The running modules expire their own data; the
// leftover modules below expire what a switched-off module kept, with the
// configured retention, so that switching a module off never keeps its
// data for good (upload.Leftovers does it for files).

// offlineLeftovers expires the offline messages kept from when the offline
// module was on.
type offlineLeftovers struct {
	store     storage.Offline
	retention time.Duration
}

// Name returns "offline-leftovers", the kind the janitor logs.
func (offlineLeftovers) Name() string { return "offline-leftovers" }

// Expire removes at most limit messages older than the retention.
func (l offlineLeftovers) Expire(ctx context.Context, now time.Time, limit int) (int, bool, error) {
	n, err := l.store.ExpireOffline(ctx, now.Add(-l.retention), limit)
	return n, storage.Limited(n, limit), err
}

// archiveLeftovers expires the archives kept from when the archive module
// was on.
type archiveLeftovers struct {
	store     storage.Archive
	retention time.Duration
}

// Name returns "archive-leftovers", the kind the janitor logs.
func (archiveLeftovers) Name() string { return "archive-leftovers" }

// Expire removes at most limit messages older than the retention.
func (l archiveLeftovers) Expire(ctx context.Context, now time.Time, limit int) (int, bool, error) {
	n, err := l.store.ExpireArchive(ctx, now.Add(-l.retention), limit)
	return n, storage.Limited(n, limit), err
}

var (
	_ server.Expirer = offlineLeftovers{}
	_ server.Expirer = archiveLeftovers{}
)

// leftovers returns the modules that expire the data of the switched-off
// offline and archive modules.
func leftovers(cfg *config, store leftoverStore) []server.Module {
	var mods []server.Module
	m := cfg.Modules
	if !m.Offline {
		mods = append(mods, offlineLeftovers{store: store, retention: time.Duration(m.OfflineRetention)})
	}
	if !m.Archive {
		mods = append(mods, archiveLeftovers{store: store, retention: time.Duration(m.ArchiveRetention)})
	}
	return mods
}

// leftoverStore is what the leftover modules expire.
type leftoverStore interface {
	storage.Offline
	storage.Archive
}

// housekeeper removes, if configured, the accounts unused for longer than
// accounts.remove_unused_after. (Expired data is the janitor's, above.)
type housekeeper struct {
	cfg   *config
	srv   *server.Server
	store storage.Accounts
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

// once does the housekeeping as of now, logging what it did (a count)
// and what failed.
func (h *housekeeper) once(ctx context.Context, now time.Time) {
	if !h.cfg.Accounts.RemoveUnused {
		return
	}
	n, err := h.removeUnused(ctx, now)
	what := "removed accounts unused for " + formatDuration(time.Duration(h.cfg.Accounts.RemoveUnusedAfter))
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

package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/storage"
)

// ErrNotRemoved is returned (wrapped) by RestoreUser for an account that
// is not awaiting its purge.
var ErrNotRemoved = errors.New("server: account not removed")

// RemoveUser is the removal of an account by its owner (XEP-0077
// <remove/>). Without Config.RemovalGrace it is DeleteUser. With it, the
// account is locked instead: its sessions end, it cannot log in, it is
// invisible (stanzas to it bounce as for an account that does not exist,
// nothing is stored for it) and its name cannot be registered again,
// while its data stays as it is, so that the administrator can
// RestoreUser it; PurgeRemoved deletes it with all its data once the
// grace period is over. Only the day of the removal is recorded.
func (s *Server) RemoveUser(ctx context.Context, user jid.JID) error {
	user, err := s.userJID(user)
	if err != nil {
		return err
	}
	if s.cfg.RemovalGrace <= 0 {
		return s.DeleteUser(ctx, user)
	}
	if err := s.accounts.SetRemoved(ctx, user.String(), time.Now()); err != nil {
		return fmt.Errorf("server: removing %s: %w", user, err)
	}
	for _, sess := range s.sessions.userSessions(user.String()) {
		sess.close(streamErr(condNotAuthorized, "account deleted"))
	}
	return nil
}

// RestoreUser undoes RemoveUser while the account awaits its purge: the
// account is as it was, and may log in again. It returns an error
// wrapping ErrNotRemoved for an account that was not removed, and one
// wrapping storage.ErrNotFound for one that does not exist (any more).
func (s *Server) RestoreUser(ctx context.Context, user jid.JID) error {
	user, err := s.userJID(user)
	if err != nil {
		return err
	}
	a, err := s.accounts.Account(ctx, user.String())
	if err != nil {
		return fmt.Errorf("server: restoring %s: %w", user, err)
	}
	if a.Removed.IsZero() {
		return fmt.Errorf("server: restoring %s: %w", user, ErrNotRemoved)
	}
	if err := s.accounts.SetRemoved(ctx, user.String(), time.Time{}); err != nil {
		return fmt.Errorf("server: restoring %s: %w", user, err)
	}
	return nil
}

// PurgeDay returns the UTC day from which a removed account is purged,
// and whether the account a awaits a purge at all.
func (s *Server) PurgeDay(a storage.Account) (time.Time, bool) {
	if a.Removed.IsZero() {
		return time.Time{}, false
	}
	grace := s.cfg.RemovalGrace
	days := int((grace + 24*time.Hour - 1) / (24 * time.Hour))
	return storage.Day(a.Removed).AddDate(0, 0, days), true
}

// PurgeRemoved deletes (DeleteUser) at most limit accounts (no bound if
// limit ≤ 0) whose grace period after RemoveUser is over as of now; the
// period counts whole days from the day of the removal. With
// Config.RemovalGrace zero, removed accounts left from a time it was set
// are purged at once. It returns how many it deleted and the errors
// joined; it goes on past a failing account.
func (s *Server) PurgeRemoved(ctx context.Context, now time.Time, limit int) (int, error) {
	users, err := s.accounts.Accounts(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("server: purging removed accounts: %w", err)
	}
	today := storage.Day(now)
	n := 0
	var errs []error
	for _, u := range users {
		if limit > 0 && n >= limit {
			break
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		a, err := s.accounts.Account(ctx, u)
		if err != nil {
			if !errors.Is(err, storage.ErrNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		day, ok := s.PurgeDay(a)
		if !ok || day.After(today) {
			continue
		}
		j, err := jid.Parse(u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := s.DeleteUser(ctx, j); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

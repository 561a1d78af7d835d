package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage"
)

// NSPIE is the XEP-0227 portable import/export namespace.
const NSPIE = "urn:xmpp:pie:0"

// userJID checks that user is a bare JID of a local account.
func (s *Server) userJID(user jid.JID) (jid.JID, error) {
	user = user.Bare()
	if user.Localpart() == "" {
		return user, fmt.Errorf("server: %q is not a user address", user)
	}
	if !s.local[user.Domainpart()] {
		return user, fmt.Errorf("server: %s is not served here", user.Domainpart())
	}
	return user, nil
}

// userKeys checks user and derives SCRAM keys for every hash from password.
func (s *Server) userKeys(user jid.JID, password string) (jid.JID, map[storage.Hash]storage.SCRAMKeys, error) {
	user, err := s.userJID(user)
	if err != nil {
		return user, nil, err
	}
	keys, err := scram.NewAllKeys(password, s.cfg.SCRAMIterations)
	if err != nil {
		return user, nil, fmt.Errorf("server: %w", err)
	}
	return user, keys, nil
}

// CreateUser creates an account with SCRAM keys for every supported hash
// derived from password. It fails with an error wrapping storage.ErrExists
// if the account exists.
func (s *Server) CreateUser(ctx context.Context, user jid.JID, password string) error {
	user, keys, err := s.userKeys(user, password)
	if err != nil {
		return err
	}
	err = s.accounts.CreateAccount(ctx, storage.Account{JID: user.String(), Keys: keys, Created: storage.Day(time.Now())})
	if err != nil {
		return fmt.Errorf("server: creating %s: %w", user, err)
	}
	s.decoys.add(keys, 1)
	for _, l := range s.accountLs {
		l.AccountCreated(ctx, user)
	}
	return nil
}

// SetPassword replaces the SCRAM keys of every hash at once, and revokes
// the account's XEP-0484 FAST tokens.
func (s *Server) SetPassword(ctx context.Context, user jid.JID, password string) error {
	user, keys, err := s.userKeys(user, password)
	if err != nil {
		return err
	}
	old, err := s.accounts.Account(ctx, user.String())
	if err != nil {
		return fmt.Errorf("server: changing password of %s: %w", user, err)
	}
	if err := s.accounts.SetKeys(ctx, user.String(), keys); err != nil {
		return fmt.Errorf("server: changing password of %s: %w", user, err)
	}
	s.decoys.add(old.Keys, -1)
	s.decoys.add(keys, 1)
	// The devices that logged in with the old password keep no access
	// through their FAST tokens.
	if err := s.fast.deleteUser(ctx, user.String()); err != nil {
		return fmt.Errorf("server: password of %s changed, but revoking its FAST tokens failed: %w", user, err)
	}
	return nil
}

// sessionEndWait bounds how long DeleteUser waits for the deleted
// account's sessions to end.
const sessionEndWait = 10 * time.Second

// DeleteUser ends the user's sessions (waiting for them, at most
// sessionEndWait), asks every data owner to delete
// what it holds for the user, then, if Config.Accounts implements
// storage.UserDataDeleter, has the store delete every per-user record it
// holds (also those of modules switched off since they stored them), and
// deletes the account. It goes on past a failing owner and returns all
// errors joined, so one fault cannot keep the rest of the data; the
// account itself is deleted last, so a retry finds it.
func (s *Server) DeleteUser(ctx context.Context, user jid.JID) error {
	user, err := s.userJID(user)
	if err != nil {
		return err
	}
	acct, err := s.accounts.Account(ctx, user.String())
	if err != nil {
		return fmt.Errorf("server: deleting %s: %w", user, err)
	}
	// While it is being deleted, the account counts as gone: messages to
	// it bounce instead of being stored again (by offline storage, for
	// the unacknowledged messages of its closing sessions), and it cannot
	// log in.
	s.deleting.Store(user.String(), struct{}{})
	defer s.deleting.Delete(user.String())
	sessions := s.sessions.userSessions(user.String())
	for _, sess := range sessions {
		sess.close(streamErr(condNotAuthorized, "account deleted"))
	}
	// The data goes once the sessions are gone (their listeners told,
	// what they held redelivered or bounced), so nothing a session does
	// while it ends comes after; a session that takes longer than
	// sessionEndWait is not waited for.
	wait := time.NewTimer(sessionEndWait)
	defer wait.Stop()
waiting:
	for _, sess := range sessions {
		select {
		case <-sess.gone:
		case <-wait.C:
			break waiting
		case <-ctx.Done():
			break waiting
		}
	}
	var errs []error
	for _, o := range s.owners {
		if err := o.owner.DeleteUser(ctx, user); err != nil {
			errs = append(errs, fmt.Errorf("module %s: %w", o.name, err))
		}
	}
	if err := s.fast.deleteUser(ctx, user.String()); err != nil {
		errs = append(errs, fmt.Errorf("FAST tokens: %w", err))
	}
	if d, ok := s.accounts.(storage.UserDataDeleter); ok {
		if err := d.DeleteUserData(ctx, user.String()); err != nil {
			errs = append(errs, fmt.Errorf("store: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("server: deleting %s: %w", user, errors.Join(errs...))
	}
	if err := s.accounts.DeleteAccount(ctx, user.String()); err != nil {
		return fmt.Errorf("server: deleting %s: %w", user, err)
	}
	s.decoys.add(acct.Keys, -1)
	for _, l := range s.accountLs {
		l.AccountDeleted(ctx, user)
	}
	return nil
}

// ExportUser writes the user's data as a XEP-0227 <server-data/>
// document: one <host/> holding one <user/>, whose children are the
// account's SCRAM credentials (XEP-0227 <scram-credentials/>, one per
// hash: salt, iteration count, StoredKey and ServerKey, enough to log in
// with the old password on the importing server and not a password
// equivalent) and what each data owner writes. Passwords are never
// exported: they are not stored. For a copy without the credentials, as
// a user taking their data elsewhere needs it, use ExportUsers with
// ExportOptions.OmitCredentials.
func (s *Server) ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error {
	return s.ExportUsers(ctx, w, ExportOptions{}, user)
}

// Users lists the bare JIDs of the accounts on domain ("" for all).
func (s *Server) Users(ctx context.Context, domain string) ([]string, error) {
	return s.accounts.Accounts(ctx, domain)
}

// userExists answers from the session registry first, then the store.
func (s *Server) userExists(ctx context.Context, bare string) bool {
	if s.beingDeleted(bare) {
		return false
	}
	if s.sessions.hasUser(bare) {
		return true
	}
	a, err := s.accounts.Account(ctx, bare)
	return err == nil && a.Removed.IsZero()
}

// beingDeleted reports whether DeleteUser is deleting the account bare.
func (s *Server) beingDeleted(bare string) bool {
	_, ok := s.deleting.Load(bare)
	return ok
}

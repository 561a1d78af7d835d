package server

import (
	"context"
	"fmt"
	"maps"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage"
)

// addMissingKeys derives SCRAM keys for the hashes an account lacks from
// the password a PLAIN login has just proven (keys holds the account's
// keys, as read for that login), and stores them beside the ones it has,
// which stay as they are. Accounts imported from another server (Prosody
// keeps SCRAM-SHA-1 keys only) thus become usable with every mechanism
// at their first PLAIN login; a SCRAM login cannot do this, since the
// server never sees the password. It returns the hashes it added. Its
// errors do not name the user: they are logged at login.
//
// If the account's keys changed since they were read (a password change
// in between), it adds nothing: the new password has its own keys.
func (s *Server) addMissingKeys(ctx context.Context, user jid.JID, keys map[storage.Hash]storage.SCRAMKeys, password string) ([]storage.Hash, error) {
	var missing []storage.Hash
	for _, h := range scramHashes {
		if _, ok := keys[h.hash]; !ok {
			missing = append(missing, h.hash)
		}
	}
	if len(missing) == 0 || len(keys) == 0 {
		return nil, nil
	}
	all := maps.Clone(keys)
	for _, h := range missing {
		k, err := scram.NewKeys(password, h, s.cfg.SCRAMIterations)
		if err != nil {
			return nil, fmt.Errorf("server: deriving %s keys: %w", h, err)
		}
		all[h] = k
	}
	// No compare-and-set in storage.Accounts: check again just before
	// writing, which leaves a window of one read, not of PBKDF2 runs.
	now, err := s.accounts.Account(ctx, user.String())
	if err != nil {
		return nil, fmt.Errorf("server: adding keys: %w", err)
	}
	if !sameKeys(now.Keys, keys) {
		return nil, nil
	}
	if err := s.accounts.SetKeys(ctx, user.String(), all); err != nil {
		return nil, fmt.Errorf("server: adding keys: %w", err)
	}
	s.decoys.add(keys, -1)
	s.decoys.add(all, 1)
	return missing, nil
}

// sameKeys reports whether a and b hold the same credentials.
func sameKeys(a, b map[storage.Hash]storage.SCRAMKeys) bool {
	if len(a) != len(b) {
		return false
	}
	for h, ka := range a {
		kb, ok := b[h]
		if !ok || ka.Iterations != kb.Iterations || string(ka.Salt) != string(kb.Salt) ||
			string(ka.StoredKey) != string(kb.StoredKey) || string(ka.ServerKey) != string(kb.ServerKey) {
			return false
		}
	}
	return true
}

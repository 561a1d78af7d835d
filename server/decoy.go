package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage"
)

// decoySecretName names the decoy key in a storage.Secrets store.
const decoySecretName = "scram-decoy"

// decoys make the SCRAM credentials shown for names that have no account,
// so that an unknown name cannot be told from a real one by its
// challenge:
//
//   - the salt depends only on the account the name would have (its
//     normalised bare JID), so every spelling of a name gets the same one,
//     as for a real account;
//   - it is keyed by a secret kept in the store (storage.Secrets), so it
//     stays the same across restarts, as a real account's does;
//   - the iteration count is drawn, by a keyed hash of the name, from the
//     counts that the accounts on the server have, in proportion to how
//     many have each; so when scram_iterations is raised, names showing
//     the old count are not thereby real.
//
// What remains: the mix of counts is taken when the first unknown name is
// asked for (not at start, so that building a server, as kiezd's account
// commands do, reads no account) and updated by this server's own account
// changes, so a decoy's count can
// change when that mix does (and a real account's changes only when its
// password does), and an attacker who can create accounts learns the mix.
// Both show only how many accounts have each count, not which names exist.
type decoys struct {
	secret   []byte
	def      int // iterations for new passwords: the count when no account exists
	accounts storage.Accounts

	mu      sync.Mutex
	counted bool        // counts holds every account's count
	counts  map[int]int // accounts per iteration count (of SHA-256 keys)
}

// newDecoys loads or creates the secret; the accounts' iteration counts
// are counted when first needed.
func newDecoys(ctx context.Context, accounts storage.Accounts, iterations int) (*decoys, error) {
	if iterations <= 0 {
		iterations = scram.DefaultIterations
	}
	d := &decoys{def: iterations, accounts: accounts, counts: make(map[int]int)}
	if st, ok := accounts.(storage.Secrets); ok {
		s, err := st.Secret(ctx, decoySecretName, 32)
		if err != nil {
			return nil, fmt.Errorf("server: decoy secret: %w", err)
		}
		d.secret = s
	} else {
		// Without a place to keep it, decoys are stable only while the
		// process runs (documented on Config.Accounts).
		d.secret = make([]byte, 32)
		rand.Read(d.secret)
	}
	return d, nil
}

// countLocked counts every account's iteration count once. A failure
// leaves counts empty, so the configured count is shown, and is tried
// again at the next unknown name. d.mu is held.
func (d *decoys) countLocked(ctx context.Context) {
	if d.counted {
		return
	}
	users, err := d.accounts.Accounts(ctx, "")
	if err != nil {
		return
	}
	counts := make(map[int]int)
	for _, u := range users {
		a, err := d.accounts.Account(ctx, u)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return
		}
		if k, ok := keysForCount(a.Keys); ok {
			counts[k.Iterations]++
		}
	}
	d.counts, d.counted = counts, true
}

// keysForCount picks the keys whose iteration count an account shows:
// SHA-256's, or any.
func keysForCount(keys map[storage.Hash]storage.SCRAMKeys) (storage.SCRAMKeys, bool) {
	if k, ok := keys[storage.SHA256]; ok {
		return k, true
	}
	for _, k := range keys {
		return k, true
	}
	return storage.SCRAMKeys{}, false
}

// add counts keys (an account's credentials) delta times, once the
// accounts have been counted (until then the count will include them).
func (d *decoys) add(keys map[storage.Hash]storage.SCRAMKeys, delta int) {
	k, ok := keysForCount(keys)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.counted {
		return
	}
	d.counts[k.Iterations] += delta
	if d.counts[k.Iterations] <= 0 {
		delete(d.counts, k.Iterations)
	}
}

// iterations picks the count shown for the decoy of user.
func (d *decoys) iterations(ctx context.Context, user string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.countLocked(ctx)
	total := 0
	for _, n := range d.counts {
		total += n
	}
	if total == 0 {
		return d.def
	}
	mac := hmac.New(sha256.New, d.secret)
	mac.Write([]byte("iterations\x00" + user))
	x := int(binary.BigEndian.Uint64(mac.Sum(nil)) % uint64(total))
	for _, it := range slices.Sorted(maps.Keys(d.counts)) {
		if x < d.counts[it] {
			return it
		}
		x -= d.counts[it]
	}
	return d.def // not reached
}

// keys returns the decoy credentials of the SCRAM username (unescaped,
// as the client sent it) on domain.
func (d *decoys) keys(ctx context.Context, username, domain string, h storage.Hash) storage.SCRAMKeys {
	user := username + "@" + domain
	if j, err := jid.New(username, domain, ""); err == nil {
		user = j.String()
	}
	return scram.DecoyKeys(d.secret, user, h, d.iterations(ctx, user))
}

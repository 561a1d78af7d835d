package storage

import (
	"context"
	"errors"
)

// UserDataDeleter is implemented by backends that hold several kinds of
// per-user data (a roster, key-value data, offline messages, an archive).
//
// DeleteUserData removes every record the backend holds for user in any
// of its stores, except the account itself (see Accounts.DeleteAccount),
// whether or not a module that uses a kind is running. Deleting an
// account therefore leaves nothing behind even for features that were
// switched off after they stored data. A user without data is not an
// error. It goes on past a store that fails and returns the errors
// joined.
type UserDataDeleter interface {
	DeleteUserData(ctx context.Context, user string) error
}

// DeleteEveryKind removes user's data from each per-user storage
// interface b implements (Roster, KV, Offline, Archive, PEP, and the
// user's affiliations and registered nicks in MUC rooms), going on past
// a failure and returning the errors joined. Backends implement
// UserDataDeleter with it; a new per-user interface is added here, so
// that every backend deletes it.
func DeleteEveryKind(ctx context.Context, b any, user string) error {
	var errs []error
	if r, ok := b.(Roster); ok {
		errs = append(errs, r.DeleteRoster(ctx, user))
	}
	if kv, ok := b.(KV); ok {
		errs = append(errs, kv.DeleteUser(ctx, user))
	}
	if o, ok := b.(Offline); ok {
		errs = append(errs, o.DeleteOfflineUser(ctx, user))
	}
	if a, ok := b.(Archive); ok {
		errs = append(errs, a.DeleteArchive(ctx, user))
	}
	if p, ok := b.(PEP); ok {
		errs = append(errs, p.DeletePEP(ctx, user))
	}
	if m, ok := b.(MUC); ok {
		_, err := m.DeleteUserAffiliations(ctx, user)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Secrets is implemented by backends that keep server-wide secrets: random
// keys a server needs to be the same across restarts, such as the key of
// the decoy credentials it shows for unknown users.
type Secrets interface {
	// Secret returns the secret named name, of size bytes. The first call
	// for a name creates it from a cryptographic random source and stores
	// it; later calls, also after a restart for a persistent backend,
	// return the same bytes. A stored secret of another size is an error.
	// name must not be empty and size must be positive.
	Secret(ctx context.Context, name string, size int) ([]byte, error)
}

package main

// kiezd migrate-storage: copying the bbolt database into an empty
// PostgreSQL database, with kiezd stopped. Every kind is read through
// its storage interface and written through the same interface of the
// target, so the target's own rules (versions, indexes) hold; archived
// messages keep their IDs (and so their times and the stanza-ids
// clients hold), secrets their values (so upload URLs, FAST tokens and
// occupant ids stay valid).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/postgres"
)

// migrateFlags are the flags of migrate-storage.
type migrateFlags struct {
	to, passwordFile, passwordEnv string
}

// register adds the flags of cmd, if it is migrate-storage, to fs.
func (m *migrateFlags) register(fs *flag.FlagSet, cmd string) {
	if cmd == "migrate-storage" {
		fs.StringVar(&m.to, "to", "", "the PostgreSQL database")
		fs.StringVar(&m.passwordFile, "password-file", "", "a file holding the password")
		fs.StringVar(&m.passwordEnv, "password-env", "", "an environment variable holding the password")
	}
}

// migrationSource is the database copied: *bbolt.Store.
type migrationSource interface {
	kiezStore
	Owners(ctx context.Context) ([]string, error)
	ServiceNamespaces(ctx context.Context) ([]string, error)
	Secrets(ctx context.Context) (map[string][]byte, error)
}

// migrationTarget is the database copied into: *postgres.Store.
type migrationTarget interface {
	kiezStore
	RowCounts(ctx context.Context) (map[string]int64, error)
	Truncate(ctx context.Context) error
	ImportSecret(ctx context.Context, name string, value []byte) error
}

var (
	_ migrationSource = (*bbolt.Store)(nil)
	_ migrationTarget = (*postgres.Store)(nil)
)

// migrateCommand runs kiezd migrate-storage --to DSN: with no kiezd
// running, it copies the bbolt database of the data directory into the
// empty PostgreSQL database DSN and prints what it copied.
func migrateCommand(ctx context.Context, cfg *config, e env, f migrateFlags) error {
	if f.to == "" {
		return usageError{`migrate-storage: --to is required: the PostgreSQL database, such as --to postgres://kiez@localhost/kiez`}
	}
	if dsnHasPassword(f.to) {
		return usageError{"migrate-storage: --to holds a password, which other users could see in the process list: give it with --password-file or --password-env"}
	}
	if f.passwordFile != "" && f.passwordEnv != "" {
		return usageError{"migrate-storage: give the password with one of --password-file and --password-env, not both"}
	}
	if running, err := serverRunning(ctx, cfg); err != nil {
		return err
	} else if running {
		return errors.New("migrate-storage: kiezd is running (its control socket answers): stop it first (systemctl stop kiezd), migrate, then start it again with [storage] backend = \"postgres\"")
	}
	src := *cfg
	src.Storage = storageConfig{Backend: backendBbolt}
	if err := src.databaseExists(); err != nil {
		return fmt.Errorf("migrate-storage: %v", err)
	}
	from, err := openStore(ctx, &src, nil)
	if err != nil {
		return fmt.Errorf("migrate-storage: %v", err)
	}
	defer from.Close()
	dst := *cfg
	dst.Storage = storageConfig{Backend: backendPostgres, DSN: f.to, PasswordFile: f.passwordFile, PasswordEnv: f.passwordEnv}
	to, err := openPostgres(ctx, &dst, nil)
	if err != nil {
		return fmt.Errorf("migrate-storage: %v", err)
	}
	defer to.Close()
	counts, err := to.RowCounts(ctx)
	if err != nil {
		return fmt.Errorf("migrate-storage: %v", err)
	}
	var full []string
	for t, n := range counts {
		if n > 0 {
			full = append(full, fmt.Sprintf("%s (%d rows)", t, n))
		}
	}
	if len(full) > 0 {
		sort.Strings(full)
		return fmt.Errorf("migrate-storage: the %s is not empty: %s; give an empty database, or an empty schema with search_path in --to", dst.databaseName(), strings.Join(full, ", "))
	}
	// SIGINT and SIGTERM stop the copy, which then empties the target.
	if e.signals != nil {
		sigs, stop := e.signals()
		defer stop()
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			for {
				select {
				case sig := <-sigs:
					if sig != syscall.SIGHUP {
						cancel()
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	start := time.Now()
	n, err := copyAll(ctx, from.(migrationSource), to)
	if err != nil {
		return fmt.Errorf("migrate-storage: %v", err)
	}
	fmt.Fprintf(e.stdout, "copied %s into the %s in %s:\n", displayPath(cfg.dbPath()), dst.databaseName(), time.Since(start).Round(time.Millisecond))
	n.write(e.stdout)
	fmt.Fprintf(e.stdout, "uploaded files stay in %s. Now set [storage] backend = \"postgres\" and dsn, and start kiezd; keep %s until you are sure.\n",
		displayPath(cfg.uploadsPath()), displayPath(cfg.dbPath()))
	return nil
}

// migrationCounts are what copyStore copied, by kind.
type migrationCounts struct {
	accounts, rosterItems, kv, offline, archived, archives int
	pepNodes, pepItems, uploads, rooms, affiliations       int
	serviceEntries, secrets                                int
}

func (n migrationCounts) write(w io.Writer) {
	for _, l := range []struct {
		what string
		n    int
	}{
		{"accounts", n.accounts}, {"roster items", n.rosterItems}, {"key-value entries (vCards, private data, settings)", n.kv},
		{"offline messages", n.offline}, {"archived messages", n.archived}, {"archives (of users and rooms)", n.archives},
		{"PEP nodes", n.pepNodes}, {"PEP items", n.pepItems}, {"uploads (records)", n.uploads},
		{"rooms", n.rooms}, {"room affiliations and nicks", n.affiliations},
		{"service entries (bans, invitations, tokens, …)", n.serviceEntries}, {"secrets", n.secrets},
	} {
		fmt.Fprintf(w, "  %8d %s\n", l.n, l.what)
	}
}

// emptyTimeout bounds emptying the target after a failed copy.
const emptyTimeout = time.Minute

// copyAll copies from into the empty to (copyStore); if that fails or
// is interrupted (ctx), it empties to again, so that the half-filled
// database is not taken for a complete one, and says so in the error.
func copyAll(ctx context.Context, from migrationSource, to migrationTarget) (migrationCounts, error) {
	n, err := copyStore(ctx, from, to)
	if err == nil {
		return n, nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("interrupted: %w", err)
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), emptyTimeout)
	defer cancel()
	if terr := to.Truncate(ectx); terr != nil {
		return n, fmt.Errorf("%w; the target is incomplete, and emptying it failed (%v): empty it before trying again", err, unwrapAll(terr))
	}
	return n, fmt.Errorf("%w; the target was emptied again, nothing is copied", err)
}

// archivePage is how many archived messages copyStore reads at once.
const archivePage = 500

// copyStore copies everything from holds into to, which is empty.
func copyStore(ctx context.Context, from migrationSource, to migrationTarget) (migrationCounts, error) {
	var n migrationCounts
	secrets, err := from.Secrets(ctx)
	if err != nil {
		return n, err
	}
	for name, v := range secrets {
		if err := to.ImportSecret(ctx, name, v); err != nil {
			return n, err
		}
		n.secrets++
	}
	namespaces, err := from.ServiceNamespaces(ctx)
	if err != nil {
		return n, err
	}
	for _, ns := range namespaces {
		q := storage.ServiceKeysQuery{Max: 1000}
		for {
			keys, err := from.ServiceKeys(ctx, ns, q)
			if err != nil {
				return n, err
			}
			for _, k := range keys {
				v, exp, err := from.ServiceValue(ctx, ns, k)
				if errors.Is(err, storage.ErrNotFound) {
					continue // expired meanwhile
				}
				if err != nil {
					return n, err
				}
				if err := to.PutServiceValue(ctx, ns, k, v, exp); err != nil {
					return n, err
				}
				n.serviceEntries++
			}
			if len(keys) < q.Max {
				break
			}
			q.After = keys[len(keys)-1]
		}
	}
	owners, err := from.Owners(ctx)
	if err != nil {
		return n, err
	}
	for _, o := range owners {
		if err := copyOwner(ctx, from, to, o, &n); err != nil {
			return n, fmt.Errorf("%s: %w", o, err)
		}
	}
	rooms, err := from.Rooms(ctx, "")
	if err != nil {
		return n, err
	}
	for _, r := range rooms {
		room, err := from.Room(ctx, r)
		if err != nil {
			return n, err
		}
		if err := to.PutRoom(ctx, room); err != nil {
			return n, err
		}
		n.rooms++
		affs, err := from.Affiliations(ctx, r)
		if err != nil {
			return n, err
		}
		for _, a := range affs {
			if err := to.SetAffiliation(ctx, a); err != nil {
				return n, err
			}
			n.affiliations++
		}
	}
	return n, nil
}

// copyOwner copies the data of one user (or room) of every per-user
// kind.
func copyOwner(ctx context.Context, from migrationSource, to migrationTarget, o string, n *migrationCounts) error {
	if a, err := from.Account(ctx, o); err == nil {
		if err := to.CreateAccount(ctx, a); err != nil {
			return err
		}
		if !a.LastLogin.IsZero() {
			if err := to.TouchLogin(ctx, o, a.LastLogin); err != nil {
				return err
			}
		}
		if !a.Removed.IsZero() {
			if err := to.SetRemoved(ctx, o, a.Removed); err != nil {
				return err
			}
		}
		n.accounts++
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	// The target draws a new roster version generation: clients fetch
	// the whole roster once.
	items, _, err := from.Roster(ctx, o)
	if err != nil {
		return err
	}
	for _, it := range items {
		if _, err := to.SetRosterItem(ctx, o, it); err != nil {
			return err
		}
		n.rosterItems++
	}
	keys, err := from.Keys(ctx, o)
	if err != nil {
		return err
	}
	for _, k := range keys {
		v, err := from.Get(ctx, o, k)
		if err != nil {
			return err
		}
		if err := to.Put(ctx, o, k, v); err != nil {
			return err
		}
		n.kv++
	}
	msgs, err := from.OfflineMessages(ctx, o)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := to.PushOffline(ctx, o, m, 0); err != nil {
			return err
		}
		n.offline++
	}
	if err := copyArchive(ctx, from, to, o, n); err != nil {
		return err
	}
	nodes, err := from.PEPNodes(ctx, o)
	if err != nil {
		return err
	}
	for _, node := range nodes {
		if err := to.CreatePEPNode(ctx, o, storage.PEPNode{Name: node.Name, Config: node.Config}, storage.PEPLimits{}); err != nil {
			return err
		}
		n.pepNodes++
		items, err := from.PEPItems(ctx, o, node.Name, nil, 0)
		if err != nil {
			return err
		}
		for _, it := range items { // oldest first, so the order holds
			if _, _, err := to.PublishPEPItem(ctx, o, node.Name, node.Config, it, storage.PEPLimits{}); err != nil {
				return err
			}
			n.pepItems++
		}
	}
	ups, err := from.UserUploads(ctx, o)
	if err != nil {
		return err
	}
	for _, u := range ups {
		state := u.State
		u.State = storage.UploadSlot
		if err := to.CreateUpload(ctx, u, storage.UploadLimits{}); err != nil {
			return err
		}
		if state != storage.UploadSlot {
			if err := to.SetUploadState(ctx, u.ID, storage.UploadSlot, state, time.Time{}); err != nil {
				return err
			}
		}
		n.uploads++
	}
	return nil
}

// copyArchive copies o's archive page by page, each message under the
// ID it had: appended in order at the time its ID encodes, it gets that
// ID back, which copyArchive checks.
func copyArchive(ctx context.Context, from migrationSource, to migrationTarget, o string, n *migrationCounts) error {
	var after uint64
	had := false
	for {
		page, err := from.QueryArchive(ctx, o, storage.ArchiveQuery{After: after, Max: archivePage})
		if err != nil {
			return err
		}
		for _, m := range page.Messages {
			id, err := to.AppendArchive(ctx, o, m.Time(), m.With, m.Data)
			if err != nil {
				return err
			}
			if id != m.ID {
				return fmt.Errorf("archived message %d got ID %d in the target", m.ID, id)
			}
			after = m.ID
			had = true
			n.archived++
		}
		if page.Complete || len(page.Messages) == 0 {
			break
		}
	}
	if had {
		n.archives++
	}
	return nil
}

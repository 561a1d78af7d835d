// Package postgres stores Kiez data in PostgreSQL through
// github.com/jackc/pgx/v5: one table (or a few) per store, every method one
// statement or one short transaction.
//
// Open applies the embedded schema migrations (versioned, forward-only, each
// in a transaction, recorded in the schema_migrations table) before it
// returns, telling Options.Logger; they may run long on a big database
// (the archive's counts, for one, read every archived message), so only
// Open's context bounds them, while Options.ConnectTimeout bounds
// connecting. Point the DSN's search_path at a schema to keep Kiez's tables
// apart from others in the same database.
//
// Archive appends are group-committed: concurrent AppendArchive calls are
// sent as one pgx batch, which runs in one implicit transaction, so they
// share one round trip, one commit and one WAL flush; a lone append is
// one statement, without waiting for company. On the development machine
// (2 shared cores, the test cluster of package pgtest, which runs with
// fsync off), 64 goroutines appending 200-byte messages to 100 archives
// take 30-37 µs per append grouped against 94-143 µs each in its own
// transaction (two runs, 3-4 times as many appends per second):
//
//	go test ./storage/postgres -bench Append -run X -benchtime 3s
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options tune a Store.
type Options struct {
	// MaxConns caps the pool's connections; zero keeps pgxpool's default
	// (the larger of 4 and the number of CPUs).
	MaxConns int32
	// Password, if not empty, is the password to log in with, in place of
	// one the DSN or PostgreSQL's usual sources (PGPASSWORD, a .pgpass
	// file) give, so that it need not be written into the DSN. It is
	// never logged nor put into errors.
	Password string
	// Exclusive makes Open take a lock on the database, or rather on the
	// first schema of the search_path, where the tables are (a session
	// advisory lock on a connection of its own, held until Close; taken
	// before the migrations, which thus never run under another), that
	// no other Exclusive Store may hold at the same time: Open fails
	// with an error wrapping ErrLocked while another holds it. A server
	// that keeps state in memory (sessions, rooms) takes it so that a
	// second one cannot run on the same data. If that connection is
	// lost, so is the lock.
	Exclusive bool
	// ConnectTimeout, if not zero, bounds each connection's dialling
	// and login (as the DSN's connect_timeout), and nothing else: the
	// migrations take as long as they take, bounded only by Open's
	// context, since one may rewrite every row of a big table.
	ConnectTimeout time.Duration
	// Logger, if not nil, hears of the migrations Open applies, at
	// level Info.
	Logger *slog.Logger
}

// ErrLocked is returned, wrapped, by an Exclusive Open while another
// Exclusive Store holds the database.
var ErrLocked = errors.New("postgres: database in use by another process")

// Store is a PostgreSQL-backed implementation of the storage interfaces.
// It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	lock    *pgx.Conn // holds the Exclusive lock, or nil
	appends *committer
}

// Open connects to the database named by dsn (a URL or key=value string
// as libpq takes), applies pending schema migrations and returns the
// store. Close releases the pool.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	return open(ctx, dsn, opts, 0)
}

// open is Open migrating only up to version upTo (0: all).
func open(ctx context.Context, dsn string, opts Options, upTo int) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse dsn: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.Password != "" {
		cfg.ConnConfig.Password = opts.Password
	}
	if opts.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool}
	// The lock first: a second process started by mistake must not
	// migrate the schema under the one that holds it.
	if opts.Exclusive {
		if s.lock, err = lockExclusive(ctx, pool); err != nil {
			pool.Close()
			return nil, err
		}
	}
	if err := migrate(ctx, pool, upTo, opts.Logger); err != nil {
		pool.Close()
		if s.lock != nil {
			s.lock.Close(context.Background())
		}
		return nil, err
	}
	s.appends = newCommitter(s)
	return s, nil
}

// lockExclusive takes the Exclusive lock on a connection taken out of
// the pool, and returns that connection.
func lockExclusive(ctx context.Context, pool *pgxpool.Pool) (*pgx.Conn, error) {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err) // the first connection
	}
	conn := pc.Hijack()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`, int32(migrationLock)).Scan(&ok); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("postgres: lock: %w", err)
	}
	if !ok {
		conn.Close(context.Background())
		return nil, ErrLocked
	}
	return conn, nil
}

// Close waits for the archive appends being committed, fails those that
// come later, closes every connection of the pool and releases the
// Exclusive lock.
func (s *Store) Close() error {
	s.appends.close()
	s.pool.Close()
	if s.lock != nil {
		return s.lock.Close(context.Background()) // again: nothing
	}
	return nil
}

//go:embed migrations/*.sql
var migrationFS embed.FS

// A migration is one embedded SQL file, NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations sorted by version.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("postgres: bad migration name %q", e.Name())
		}
		b, err := migrationFS.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("postgres: migration %s out of sequence", m.name)
		}
	}
	return ms, nil
}

// migrationLock is the advisory lock key that serialises migrations of
// concurrent Opens.
const migrationLock = 0x6b69657a // "kiez"

// migrate applies, in one transaction, every migration above the recorded
// version and up to upTo (0: all of them), telling log (if not nil).
func migrate(ctx context.Context, pool *pgxpool.Pool, upTo int, log *slog.Logger) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer PRIMARY KEY,
			name text NOT NULL,
			applied timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var cur int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
			return err
		}
		if cur > len(ms) {
			return fmt.Errorf("postgres: database schema version %d is newer than this Kiez knows (%d)", cur, len(ms))
		}
		to := len(ms)
		if upTo > 0 {
			to = min(to, upTo)
		}
		if log != nil && to > cur {
			log.Info(fmt.Sprintf("migrating schema to %d", to), "from", cur)
		}
		for _, m := range ms[cur:] {
			if m.version > to {
				break
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

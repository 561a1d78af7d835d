package main

// The [storage] table: where kiezd keeps its data. bbolt (the default)
// is one file, data_dir/kiez.db; postgres is a PostgreSQL database
// (package storage/postgres). Uploaded files' bytes stay under
// data_dir/uploads with either.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/postgres"
)

// The storage backends.
const (
	backendBbolt    = "bbolt"
	backendPostgres = "postgres"
)

// maxPoolConns caps [storage] max_conns: more than PostgreSQL's usual
// max_connections is a mistake.
const maxPoolConns = 1000

// storageConfig is the [storage] table.
type storageConfig struct {
	Backend string `toml:"backend"`
	// DSN names the PostgreSQL database, without a password.
	DSN string `toml:"dsn"`
	// PasswordFile and PasswordEnv give the database password: a file
	// holding it (one line), or an environment variable.
	PasswordFile string `toml:"password_file"`
	PasswordEnv  string `toml:"password_env"`
	// MaxConns caps the connection pool; 0 is pgx's default (the larger
	// of 4 and the number of CPUs).
	MaxConns int `toml:"max_conns"`
}

// postgres reports whether the data is in PostgreSQL.
func (c *config) postgres() bool { return c.Storage.Backend == backendPostgres }

// kiezStore is what kiezd keeps its data in: everything the modules, the
// server, its IP filter and the housekeeping use.
type kiezStore interface {
	moduleStore
	storage.Accounts
	Close() error
}

var (
	_ kiezStore = (*bbolt.Store)(nil)
	_ kiezStore = (*postgres.Store)(nil)
)

// dsnKeyPassword finds a password in a key=value DSN.
var dsnKeyPassword = regexp.MustCompile(`(^|\s)password\s*=`)

// dsnHasPassword reports whether dsn, a URL or key=value string, holds a
// password.
func dsnHasPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return strings.Contains(dsn, "password=") // unparsable: refused anyway
		}
		_, set := u.User.Password()
		return set || u.Query().Has("password")
	}
	return dsnKeyPassword.MatchString(dsn)
}

// storageErrors checks the [storage] table; badAt reports a mistake at
// the first of keys found in the file, or at the key its message starts
// with. No message contains the DSN, which may name hosts and users, nor
// a password.
func (c *config) storageErrors(badAt func(keys []string, format string, args ...any)) {
	bad := func(format string, args ...any) { badAt(nil, format, args...) }
	s := c.Storage
	switch s.Backend {
	case backendBbolt:
		for _, k := range []struct{ key, val string }{{"dsn", s.DSN}, {"password_file", s.PasswordFile}, {"password_env", s.PasswordEnv}} {
			if k.val != "" {
				bad("storage.%s: set, but backend is %q: set backend = %q to use PostgreSQL", k.key, s.Backend, backendPostgres)
			}
		}
		if s.MaxConns != 0 {
			bad("storage.max_conns: set, but backend is %q: set backend = %q to use PostgreSQL", s.Backend, backendPostgres)
		}
		return
	case backendPostgres:
	default:
		bad("storage.backend: %q is neither %q nor %q", s.Backend, backendBbolt, backendPostgres)
		return
	}
	switch {
	case s.DSN == "":
		badAt([]string{"storage.dsn", "storage.backend"}, `storage.dsn: backend "postgres" needs the database, such as "postgres://kiez@localhost/kiez"`)
	case dsnHasPassword(s.DSN):
		bad("storage.dsn: holds a password, which anyone who reads the configuration would see: put it in a file named by password_file, or an environment variable named by password_env")
	default:
		if _, err := pgx.ParseConfig(s.DSN); err != nil {
			bad("storage.dsn: not a PostgreSQL connection string such as \"postgres://kiez@localhost/kiez\" or \"host=/run/postgresql dbname=kiez\"")
		}
	}
	if s.PasswordFile != "" && s.PasswordEnv != "" {
		bad("storage.password_file: give the password in one of password_file and password_env, not both")
	}
	if s.MaxConns < 0 || s.MaxConns > maxPoolConns {
		bad("storage.max_conns: %d is not between 0 (the driver's default) and %d", s.MaxConns, maxPoolConns)
	}
}

// dbPassword reads the database password from [storage] password_file or
// password_env; "" if neither is set. Errors never contain it.
func (c *config) dbPassword() (string, error) {
	s := c.Storage
	switch {
	case s.PasswordFile != "":
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("cannot read storage.password_file %s: %v", displayPath(s.PasswordFile), unwrapAll(err))
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" || strings.ContainsAny(pw, "\r\n") {
			return "", fmt.Errorf("storage.password_file %s must hold the password on one line", displayPath(s.PasswordFile))
		}
		return pw, nil
	case s.PasswordEnv != "":
		pw := os.Getenv(s.PasswordEnv)
		if pw == "" {
			return "", fmt.Errorf("storage.password_env: the environment variable %s is not set or is empty", s.PasswordEnv)
		}
		return pw, nil
	}
	return "", nil
}

// connectTimeout bounds each connection to PostgreSQL: dialling and
// logging in. Migrating the schema at start is not bounded but by ctx
// (SIGINT, SIGTERM): on a big database a migration may take minutes.
const connectTimeout = 30 * time.Second

// openStore opens the configured database, translating the usual
// failures (a bbolt file locked by another process, a PostgreSQL server
// that refuses) into a plain sentence. log, if not nil, hears of schema
// migrations.
func openStore(ctx context.Context, cfg *config, log *slog.Logger) (kiezStore, error) {
	if cfg.postgres() {
		return openPostgres(ctx, cfg, log)
	}
	path := cfg.dbPath()
	st, err := bbolt.Open(path, bbolt.Options{Timeout: time.Second})
	if errors.Is(err, bbolt.ErrLocked) {
		return nil, fmt.Errorf("the database %s is in use by another process (is kiezd running?)", displayPath(path))
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open the database %s: %v", displayPath(path), unwrapAll(err))
	}
	return st, nil
}

// openPostgres opens the PostgreSQL database of cfg's [storage] dsn with
// the configured password and pool size, applying pending schema
// migrations (telling log, if not nil). Like the bbolt file, the database is kiezd's alone
// while it is open: a second kiezd serving it would keep sessions and
// rooms of its own.
func openPostgres(ctx context.Context, cfg *config, log *slog.Logger) (*postgres.Store, error) {
	pw, err := cfg.dbPassword()
	if err != nil {
		return nil, err
	}
	st, err := postgres.Open(ctx, cfg.Storage.DSN, postgres.Options{MaxConns: int32(cfg.Storage.MaxConns), Password: pw, Exclusive: true,
		ConnectTimeout: connectTimeout, Logger: log})
	if errors.Is(err, postgres.ErrLocked) {
		return nil, fmt.Errorf("the %s is in use by another kiezd", cfg.databaseName())
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open the PostgreSQL database (storage.dsn): %s", redact(strings.TrimPrefix(err.Error(), "postgres: "), pw))
	}
	return st, nil
}

// redact removes a password from a message, should a library have put it
// there.
func redact(msg, pw string) string {
	if pw == "" {
		return msg
	}
	return strings.ReplaceAll(msg, pw, "********")
}

// databaseName names the database for messages: the bbolt file, or
// PostgreSQL's host and database (never the DSN, which might hold
// options an admin would rather not print).
func (c *config) databaseName() string {
	if !c.postgres() {
		return displayPath(c.dbPath())
	}
	pc, err := pgx.ParseConfig(c.Storage.DSN)
	if err != nil {
		return "PostgreSQL"
	}
	return fmt.Sprintf("PostgreSQL database %s on %s", pc.Database, pc.Host)
}

// notForPostgres is the error of a command that works on the bbolt file
// only, naming what does its job for PostgreSQL.
func notForPostgres(cmd, instead string) error {
	return fmt.Errorf("%s works on the bbolt file only, and [storage] backend is %q: %s", cmd, backendPostgres, instead)
}

// databaseExists fails if the bbolt file does not exist: the admin
// commands never create a database, which only serve does. A PostgreSQL
// database is the administrator's to create; opening it tells.
func (c *config) databaseExists() error {
	if c.postgres() {
		return nil
	}
	db := c.dbPath()
	if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("there is no database %s (kiezd serve creates it on its first start)", displayPath(db))
	}
	return nil
}

// checkPostgres is kiezd check's look at the PostgreSQL database: that
// it accepts the configured user and password, and how far its schema
// is.
func (c *checker) checkPostgres(ctx context.Context, g *checkGroup) {
	fix := "check storage.dsn and the password (storage.password_file or password_env), and that PostgreSQL accepts this user from this host (pg_hba.conf)"
	pw, err := c.cfg.dbPassword()
	if err != nil {
		g.add(levelError, err.Error(), "")
		return
	}
	pc, err := pgx.ParseConfig(c.cfg.Storage.DSN)
	if err != nil {
		g.add(levelError, "storage.dsn is not a PostgreSQL connection string", fix)
		return
	}
	if pw != "" {
		pc.Password = pw
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		g.add(levelError, "cannot connect to the "+c.cfg.databaseName()+": "+redact(unwrapAll(err).Error(), pw), fix)
		return
	}
	defer conn.Close(context.Background())
	var version, user string
	var tables bool
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_user, to_regclass('schema_migrations') IS NOT NULL`).Scan(&version, &user, &tables)
	var schema int
	if err == nil && tables {
		err = conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&schema)
	}
	if err != nil {
		g.add(levelError, "the "+c.cfg.databaseName()+" answers, but not to a query: "+redact(unwrapAll(err).Error(), pw), fix)
		return
	}
	g.add(levelOK, fmt.Sprintf("connected to the %s (PostgreSQL %s) as %s", c.cfg.databaseName(), version, user), "")
	if !tables {
		g.add(levelNote, "the database has no Kiez tables yet: kiezd serve creates them at its first start",
			"the user needs the right to create tables in the schema of its search_path (GRANT CREATE ON SCHEMA … TO "+user+")")
		return
	}
	g.add(levelOK, fmt.Sprintf("the Kiez schema is at version %d", schema), "")
}

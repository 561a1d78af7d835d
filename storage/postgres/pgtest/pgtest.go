// Package pgtest starts a throwaway PostgreSQL cluster for tests: initdb in
// a temporary directory, a server listening only on a Unix socket in that
// directory, stopped and removed by Stop.
//
// A test binary starts one cluster in TestMain and gives each test its own
// schema (Cluster.DSN), which is much faster than a cluster per test.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir returns the directory of the PostgreSQL server binaries: the
// environment variable KIEZ_PG_BINDIR, or else the newest version Debian
// installed under /usr/lib/postgresql/VERSION/bin.
func BinDir() string {
	if d := os.Getenv("KIEZ_PG_BINDIR"); d != "" {
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	best, bestVer := "/usr/lib/postgresql/15/bin", -1
	for _, d := range dirs {
		bin := filepath.Dir(d)
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
		if err == nil && v > bestVer {
			best, bestVer = bin, v
		}
	}
	return best
}

// ErrMissing is returned (wrapped) by Start when the server binaries are
// not installed.
var ErrMissing = errors.New("pgtest: PostgreSQL server binaries not installed (apt-get install postgresql)")

// Cluster is a running throwaway cluster.
type Cluster struct {
	dir    string   // temporary directory holding data and socket
	data   string   // data directory
	runAs  []string // prefix that runs a command as the cluster's owner
	n      atomic.Int64
	userDB string
	user   string
}

// Start runs initdb in a new temporary directory and starts a server on a
// Unix socket there. When running as root (initdb refuses root), the
// cluster is owned by the "postgres" system user, run through runuser.
func Start() (*Cluster, error) {
	initdb := filepath.Join(BinDir(), "initdb")
	if _, err := os.Stat(initdb); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMissing, err)
	}
	dir, err := os.MkdirTemp("", "kiez-pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, data: filepath.Join(dir, "data")}
	owner := "postgres"
	if os.Geteuid() == 0 {
		u, err := user.Lookup(owner)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		c.runAs = []string{"runuser", "-u", owner, "--"}
	} else {
		u, err := user.Current()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		owner = u.Username
	}
	c.user = owner
	if out, err := c.run(initdb, "-D", c.data, "-U", owner, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %v: %s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", dir)
	if out, err := c.run(filepath.Join(BinDir(), "pg_ctl"), "start", "-w", "-t", "30", "-D", c.data, "-l", filepath.Join(dir, "log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: pg_ctl start: %v: %s%s", err, out, log)
	}
	return c, nil
}

func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	argv := append(append(append([]string{}, c.runAs...), name), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

// BaseDSN returns the DSN of the cluster's "postgres" database.
func (c *Cluster) BaseDSN() string {
	return fmt.Sprintf("host=%s user=%s dbname=postgres", c.dir, c.user)
}

// DSN returns a DSN for the postgres database with search_path set to
// schema. The caller creates the schema (CREATE SCHEMA over BaseDSN); a
// fresh schema per test gives each test an empty store.
func (c *Cluster) DSN(schema string) string {
	return c.BaseDSN() + " search_path=" + schema
}

// NewSchema returns a fresh schema name unique within the cluster.
func (c *Cluster) NewSchema() string {
	return "t" + strconv.FormatInt(c.n.Add(1), 10)
}

// CreateSchema creates a fresh schema (NewSchema) and returns its DSN.
func (c *Cluster) CreateSchema(ctx context.Context) (string, error) {
	schema := c.NewSchema()
	conn, err := pgx.Connect(ctx, c.BaseDSN())
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", fmt.Errorf("pgtest: create schema: %w", err)
	}
	return c.DSN(schema), nil
}

// Stop stops the server (fast shutdown, bounded wait) and removes its
// directory.
func (c *Cluster) Stop() error {
	out, err := c.run(filepath.Join(BinDir(), "pg_ctl"), "stop", "-w", "-t", "30", "-m", "fast", "-D", c.data)
	if err != nil {
		err = fmt.Errorf("pgtest: pg_ctl stop: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if rerr := os.RemoveAll(c.dir); err == nil {
		err = rerr
	}
	return err
}

package main

// Backups: kiezd backup copies the database while serve runs (the
// running server writes a consistent copy into the control socket, see
// controlServer.transfer, and the command writes it to the file), or
// opens it directly when none runs; restore and compact replace the
// database file and so run only while no kiezd does.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiez-im/kiez/storage/bbolt"
)

// backupFlags are the flags of backup.
type backupFlags struct {
	force bool
}

// register adds the flags of cmd, if it is backup, to fs.
func (b *backupFlags) register(fs *flag.FlagSet, cmd string) {
	if cmd == "backup" {
		fs.BoolVar(&b.force, "force", false, "replace an existing file")
	}
}

// backuper is what the database does for backup: *bbolt.Store.
type backuper interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// execBackup writes a consistent copy of t's database to out.
func execBackup(ctx context.Context, t adminTarget, out io.Writer) (string, error) {
	b, ok := t.accounts.(backuper)
	if !ok {
		return "", errors.New("this database cannot be backed up while in use")
	}
	w := bufio.NewWriterSize(out, 1<<20)
	if _, err := b.Backup(ctx, w); err != nil {
		return "", fmt.Errorf("backup: %v", unwrapAll(err))
	}
	return "", w.Flush()
}

// backupCommand runs kiezd backup FILE: a copy of the database, made by
// the running kiezd or from the database directly, written to a
// temporary file beside FILE, synced, checked and renamed to FILE. FILE
// "-" is standard output.
func backupCommand(ctx context.Context, cfg *config, e env, file string, f backupFlags) error {
	if cfg.postgres() {
		return notForPostgres("backup", "back the database up with PostgreSQL's pg_dump (pg_dump -Fc -f kiez.dump DBNAME), also while kiezd runs, and the uploaded files under "+displayPath(cfg.uploadsPath())+" apart")
	}
	req := adminRequest{Op: "backup"}
	if file == "-" {
		_, err := transfer(ctx, cfg, e, req, nil, e.stdout)
		return err
	}
	// Relative to where the command runs, whoever writes it.
	path, err := filepath.Abs(file)
	if err != nil {
		return fmt.Errorf("backup: %v", err)
	}
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("backup: %s is a directory: give a file name, such as %s", displayPath(file), filepath.Join(file, "kiez-"+time.Now().UTC().Format(time.DateOnly)+".db"))
		}
		if !f.force {
			return fmt.Errorf("backup: %s exists: give another name, or --force to replace it", displayPath(file))
		}
	}
	if path == cfg.dbPath() || path == mustAbs(cfg.dbPath()) {
		return fmt.Errorf("backup: %s is the database itself", displayPath(file))
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("backup: cannot write in %s: %v", displayPath(filepath.Dir(file)), unwrapAll(err))
	}
	defer os.Remove(tmp.Name()) // after the rename, there is none
	_, err = transfer(ctx, cfg, e, req, nil, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %v", unwrapAll(err))
	}
	if err := bbolt.Verify(tmp.Name()); err != nil {
		return fmt.Errorf("backup: the copy is damaged, nothing written: %s", strings.TrimPrefix(err.Error(), "bbolt: "))
	}
	fi, err := os.Stat(tmp.Name())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("backup: %v", unwrapAll(err))
	}
	fmt.Fprintf(e.stdout, "wrote %s (%s), a copy of %s\n", displayPath(file), sizeText(fi.Size()), displayPath(cfg.dbPath()))
	return nil
}

// mustAbs returns p as an absolute path, or p.
func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// serverRunning reports whether a kiezd answers on the control socket.
func serverRunning(ctx context.Context, cfg *config) (bool, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", cfg.socketPath())
	if errors.Is(err, fs.ErrPermission) {
		return false, fmt.Errorf("cannot use the control socket %s: %v (run as the user kiezd runs as)", displayPath(cfg.socketPath()), unwrapAll(err))
	}
	if err != nil {
		return false, nil
	}
	conn.Close()
	return true, nil
}

// restoreCommand runs kiezd restore FILE: with no kiezd running, it
// checks that FILE is a Kiez database, keeps the current database as
// kiez.db.before-restore-DATE and puts a copy of FILE in its place.
func restoreCommand(ctx context.Context, cfg *config, e env, file string) error {
	if cfg.postgres() {
		return notForPostgres("restore", "restore a pg_dump backup with pg_restore into an empty database (pg_restore -d DBNAME kiez.dump) while kiezd is stopped")
	}
	if running, err := serverRunning(ctx, cfg); err != nil {
		return err
	} else if running {
		return errors.New("restore: kiezd is running (its control socket answers): stop it first (systemctl stop kiezd), restore, then start it again")
	}
	if err := bbolt.Verify(file); err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("restore: there is no file %s", displayPath(file))
		case errors.Is(err, bbolt.ErrNotDatabase), errors.Is(err, bbolt.ErrCorrupt):
			return fmt.Errorf("restore: %s is not a usable kiezd database: %s; nothing changed", displayPath(file), strings.TrimPrefix(err.Error(), "bbolt: "))
		case errors.Is(err, bbolt.ErrLocked):
			return fmt.Errorf("restore: %s is in use by another process (a kiezd serving it?); nothing changed", displayPath(file))
		}
		return fmt.Errorf("restore: cannot read %s: %v", displayPath(file), unwrapAll(err))
	}
	db := cfg.dbPath()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("restore: %v", unwrapAll(err))
	}
	// Hold the current database, if any, so that no kiezd starts on it
	// meanwhile; opening it also applies an archive log a crash left.
	var cur *bbolt.Store
	kept := ""
	if _, err := os.Stat(db); err == nil {
		cur, err = bbolt.Open(db, bbolt.Options{Timeout: time.Second})
		if errors.Is(err, bbolt.ErrLocked) {
			return fmt.Errorf("restore: the database %s is in use by another process (is kiezd running?)", displayPath(db))
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "kiezd: the current database cannot be opened (%v): keeping it as it is\n", unwrapAll(err))
		}
		kept = db + ".before-restore-" + time.Now().UTC().Format("20060102-150405")
	}
	closeCur := func() error {
		if cur == nil {
			return nil
		}
		err := cur.Close()
		cur = nil
		return err
	}
	defer closeCur()

	tmp, err := copyToTemp(file, cfg.DataDir)
	if err != nil {
		return fmt.Errorf("restore: %v", unwrapAll(err))
	}
	defer os.Remove(tmp)
	if kept != "" {
		if _, err := os.Lstat(kept); err == nil {
			return fmt.Errorf("restore: %s exists already: try again in a second", displayPath(kept))
		}
		if err := os.Rename(db, kept); err != nil {
			return fmt.Errorf("restore: %v", unwrapAll(err))
		}
		// An archive log the current database could not apply stays
		// with it, so that opening the kept file replays it.
		if cur == nil {
			if _, err := os.Stat(db + ".archive-wal"); err == nil {
				if err := os.Rename(db+".archive-wal", kept+".archive-wal"); err != nil {
					return fmt.Errorf("restore: %v", unwrapAll(err))
				}
			}
		}
	}
	if err := os.Rename(tmp, db); err != nil {
		return fmt.Errorf("restore: %v", unwrapAll(err))
	}
	if err := syncDir(cfg.DataDir); err != nil {
		return fmt.Errorf("restore: %v", unwrapAll(err))
	}
	keepOwner(db, cfg.DataDir)
	if err := closeCur(); err != nil {
		fmt.Fprintf(e.stderr, "kiezd: closing the previous database: %v\n", unwrapAll(err))
	}
	fmt.Fprintf(e.stdout, "restored %s from %s\n", displayPath(db), displayPath(file))
	if kept != "" {
		fmt.Fprintf(e.stdout, "the previous database is kept as %s: delete it once the restored server works\n", displayPath(kept))
	}
	fmt.Fprintf(e.stdout, "uploaded files (%s) are not in the database: restore them separately, if you backed them up\n", displayPath(cfg.uploadsPath()))
	return nil
}

// copyToTemp copies the file src into a new file in dir, mode 0600, and
// syncs it; it returns the new file's path.
func copyToTemp(src, dir string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, ".kiez.db.restore-*.tmp")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", err
	}
	return out.Name(), nil
}

// compactCommand runs kiezd compact: with no kiezd running, it rewrites
// the database with only its live data and prints the sizes.
func compactCommand(ctx context.Context, cfg *config, e env) error {
	if cfg.postgres() {
		return notForPostgres("compact", "PostgreSQL's autovacuum reuses the space of deleted rows; VACUUM FULL rewrites the tables without them (it locks them meanwhile)")
	}
	if running, err := serverRunning(ctx, cfg); err != nil {
		return err
	} else if running {
		return errors.New("compact: kiezd is running (its control socket answers): stop it first (systemctl stop kiezd), compact, then start it again")
	}
	db := cfg.dbPath()
	if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("there is no database %s (kiezd serve creates it on its first start)", displayPath(db))
	}
	before, after, err := bbolt.Compact(db, bbolt.Options{Timeout: time.Second})
	if errors.Is(err, bbolt.ErrLocked) {
		return fmt.Errorf("compact: the database %s is in use by another process (is kiezd running?)", displayPath(db))
	}
	if err != nil {
		return fmt.Errorf("compact: %s: %v (the database is unchanged; compacting needs free space for a second copy)", displayPath(db), unwrapAll(err))
	}
	keepOwner(db, cfg.DataDir)
	fmt.Fprintf(e.stdout, "compacted %s: %s before, %s after\n", displayPath(db), sizeText(before), sizeText(after))
	return nil
}

// syncDir makes the names of dir's entries durable, after a rename.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errors.ErrUnsupported) || errors.Is(err, fs.ErrInvalid) {
		return nil // no directory sync here (Windows)
	}
	return err
}

// sizeText writes a file size for people: 1.5 MiB.
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

package bbolt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrNotDatabase is returned, wrapped, by Verify when a file is not a
// Kiez database.
var ErrNotDatabase = errors.New("bbolt: not a Kiez database")

// Backup writes a consistent copy of the whole database file to w while
// the Store stays in use, and returns the number of bytes written. The
// copy is a bbolt file that Open (and Verify) accept as it is.
//
// Every archive append acknowledged before Backup was called is in the
// copy: Backup first has the applier move the archive log's records into
// the file (see the package documentation), then copies the file in one
// read transaction, so writers go on meanwhile and the copy shows the
// database as it was when the transaction began. Offline pushes and all
// other writes are in the file once acknowledged. The copy has no archive
// log of its own and needs none.
//
// The read transaction lasts as long as writing to w does: meanwhile a
// write that needs the file to grow waits for it (bbolt cannot remap the
// file under a reader), so w should be quick, such as a local file or a
// socket read at once, not a slow network.
//
// If ctx ends, Backup stops writing and returns its error.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := s.wal.applyNow(ctx); err != nil {
		return 0, fmt.Errorf("bbolt: backup: %w", err)
	}
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx: ctx, w: w})
		return err
	})
	if err != nil {
		return n, fmt.Errorf("bbolt: backup: %w", err)
	}
	return n, nil
}

// ctxWriter fails writes once ctx has ended.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Verify checks that the file at path is a Kiez database, such as a copy
// made by Backup, without changing it: a bbolt file whose pages are
// consistent (bbolt's own check) and that has the top-level buckets Open
// creates. It opens the file read-only, which other readers may do at the
// same time, and fails with an error wrapping ErrLocked if a process has
// the file open for writing. A file that is no bbolt file, or no Kiez
// database, gives an error wrapping ErrNotDatabase; damaged pages one
// wrapping ErrCorrupt.
func Verify(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("bbolt: verify: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w (not a regular file)", ErrNotDatabase)
	}
	if fi.Size() == 0 {
		return fmt.Errorf("%w (an empty file)", ErrNotDatabase)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: defaultTimeout, ReadOnly: true})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%w: %s", ErrLocked, path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return fmt.Errorf("%w (%w)", ErrNotDatabase, err)
	case err != nil:
		return fmt.Errorf("bbolt: verify %s: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		for _, name := range []string{accountsBucket, offlineBucket, archiveBucket, archiveChunks} {
			if tx.Bucket([]byte(name)) == nil {
				return fmt.Errorf("%w (a bbolt file without the %q bucket)", ErrNotDatabase, name)
			}
		}
		for err := range tx.Check() {
			return fmt.Errorf("%w (bbolt's check: %w)", ErrCorrupt, err)
		}
		return nil
	})
}

// Compact rewrites the database file at path into a new file that holds
// only the live data, and puts it in place of the old one. It returns the
// file's sizes before and after.
//
// Like most databases, bbolt reuses the pages of deleted records rather
// than overwriting them, so a deleted account's bytes may stay in the file
// until the pages are reused; after Compact they are gone from it (though
// perhaps not from the disk's blocks, which the file system reuses in its
// own time).
//
// Compact opens the database as Open does, so it fails with an error
// wrapping ErrLocked (after opts.Timeout) while another process has it
// open, and applies an archive log a crash left behind first. The new file
// is written beside the old one (path + ".compact", mode 0600), synced and
// renamed over it while the database is still locked; if anything fails
// before the rename, the old file is left as it was.
func Compact(path string, opts Options) (before, after int64, err error) {
	s, err := Open(path, opts)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := s.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("bbolt: compact: %w", err)
	}
	before = fi.Size()
	// Nothing else uses s: the archive log holds nothing but what Open
	// replayed, and that is in the file.
	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("bbolt: compact: %w", err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, 0, fmt.Errorf("bbolt: compact: %w", err)
	}
	err = bolt.Compact(dst, s.db, 64<<20)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncFile(tmp)
	}
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Stat(tmp); err == nil {
			after = fi.Size()
		}
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return 0, 0, fmt.Errorf("bbolt: compact: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return 0, 0, fmt.Errorf("bbolt: compact: %w", err)
	}
	return before, after, nil
}

// syncFile flushes the file at path to the disk.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

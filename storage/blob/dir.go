package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// tmpName is the subdirectory of a Dir that holds files being written. It
// is too short to be an ID.
const tmpName = "tmp"

// Dir is a Store that keeps each committed file in one directory, under
// its ID as the file name (mode 0600), and the files being written in its
// subdirectory "tmp", on the same file system. Names are made of valid IDs
// only (ValidID), never of anything a client sent, so no path can lead
// outside the directory.
//
// A Writer writes straight to a temporary file as the bytes come, so a
// file of any size costs no memory. Commit syncs the file, renames it into
// place and syncs the directory: after a crash a file is either there
// whole or not at all. A crash leaves the temporary files of unfinished
// Writers, which NewDir deletes; so only one Dir, in one process, may use
// a directory at a time.
//
// A File that Open returns reads an *os.File, so copying it to a network
// connection (io.Copy, http.ServeContent) can use sendfile.
//
// A Dir is safe for concurrent use.
type Dir struct {
	path, tmp string

	mu      sync.Mutex
	writing map[string]bool // IDs of the Writers not yet ended
}

var _ Store = (*Dir)(nil)

// NewDir returns a Dir keeping files in the directory path. It creates
// the directory and its "tmp" subdirectory (mode 0700) if they do not
// exist, and deletes what is in "tmp": files of Writers that a crash cut
// short.
func NewDir(path string) (*Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("blob: new dir %s: %w", path, err)
	}
	tmp := filepath.Join(abs, tmpName)
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("blob: new dir: %w", err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("blob: new dir: removing unfinished files: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("blob: new dir: %w", err)
	}
	return &Dir{path: abs, tmp: tmp, writing: make(map[string]bool)}, nil
}

// checkID returns an error wrapping ErrInvalidID unless id is valid.
func checkID(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %.40q (%d bytes)", ErrInvalidID, id, len(id))
	}
	return nil
}

// Create implements Store. It creates the temporary file at once, so a
// full or unwritable disk fails here.
func (d *Dir) Create(ctx context.Context, id string) (Writer, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("blob: create: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.writing[id] {
		d.mu.Unlock()
		return nil, fmt.Errorf("blob: create %s: being written: %w", id, storage.ErrExists)
	}
	if _, err := os.Lstat(filepath.Join(d.path, id)); !errors.Is(err, fs.ErrNotExist) {
		d.mu.Unlock()
		if err == nil {
			err = storage.ErrExists
		}
		return nil, fmt.Errorf("blob: create %s: %w", id, err)
	}
	d.writing[id] = true
	d.mu.Unlock()

	f, err := os.CreateTemp(d.tmp, id+".*")
	if err != nil {
		d.release(id)
		return nil, fmt.Errorf("blob: create %s: %w", id, err)
	}
	return &dirWriter{d: d, id: id, f: f}, nil
}

// release ends id's Writer.
func (d *Dir) release(id string) {
	d.mu.Lock()
	delete(d.writing, id)
	d.mu.Unlock()
}

// Open implements Store.
func (d *Dir) Open(ctx context.Context, id string) (File, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("blob: open: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(d.path, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob: open %s: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: open %s: %w", id, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file but %v", fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob: open %s: %w", id, err)
	}
	return &dirFile{File: f, size: fi.Size(), mod: fi.ModTime()}, nil
}

// Delete implements Store. It syncs the directory, so a deleted file
// stays deleted after a crash.
func (d *Dir) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("blob: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(d.path, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = syncDir(d.path)
	}
	if err != nil {
		return fmt.Errorf("blob: delete %s: %w", id, err)
	}
	return nil
}

// syncDir makes the entries of directory path durable.
func syncDir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// dirFile is a committed file of a Dir.
type dirFile struct {
	*os.File
	size int64
	mod  time.Time
}

func (f *dirFile) Size() int64        { return f.size }
func (f *dirFile) ModTime() time.Time { return f.mod }

// errEnded is returned by a Writer used after Commit or Abort.
var errEnded = errors.New("blob: writer already committed or aborted")

// dirWriter writes a new file of a Dir. f is nil once it has ended.
type dirWriter struct {
	d  *Dir
	id string
	f  *os.File
}

func (w *dirWriter) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, errEnded
	}
	return w.f.Write(p)
}

// Commit implements Writer: sync the file, rename it into place, sync the
// directory. Its modification time is set to the time of the commit.
func (w *dirWriter) Commit() error {
	if w.f == nil {
		return errEnded
	}
	f, tmp, final := w.f, w.f.Name(), filepath.Join(w.d.path, w.id)
	w.f = nil
	defer w.d.release(w.id)
	now := time.Now()
	err := os.Chtimes(tmp, now, now)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("blob: commit %s: %w", w.id, err)
	}
	if err := syncDir(w.d.path); err != nil {
		// Not durable: take it back, so that the caller, told it failed,
		// finds nothing.
		os.Remove(final)
		return fmt.Errorf("blob: commit %s: %w", w.id, err)
	}
	return nil
}

// Abort implements Writer.
func (w *dirWriter) Abort() error {
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	defer w.d.release(w.id)
	f.Close()
	if err := os.Remove(f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: abort %s: %w", w.id, err)
	}
	return nil
}

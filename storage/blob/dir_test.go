package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/blob"
)

// IDs as the upload module makes them: 22 characters of base64url.
const (
	idA = "Q2hlZXNlY2FrZS1yZWNpcGU"
	idB = "bW9yZV9jaGVlc2VjYWtlXz8"
)

func newDir(t *testing.T) (*blob.Dir, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "files")
	d, err := blob.NewDir(path)
	if err != nil {
		t.Fatalf("NewDir: %v", err)
	}
	return d, path
}

func mustCreate(t *testing.T, s blob.Store, id string) blob.Writer {
	t.Helper()
	w, err := s.Create(t.Context(), id)
	if err != nil {
		t.Fatalf("Create(%q): %v", id, err)
	}
	return w
}

// put stores data under id and commits it.
func put(t *testing.T, s blob.Store, id string, data []byte) {
	t.Helper()
	w := mustCreate(t, s, id)
	if _, err := w.Write(data); err != nil {
		t.Fatalf("Write(%q): %v", id, err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit(%q): %v", id, err)
	}
}

// contents returns the committed file id, or fails.
func contents(t *testing.T, s blob.Store, id string) []byte {
	t.Helper()
	f, err := s.Open(t.Context(), id)
	if err != nil {
		t.Fatalf("Open(%q): %v", id, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("reading %q: %v", id, err)
	}
	if int64(len(b)) != f.Size() {
		t.Errorf("file %q has %d bytes, Size says %d", id, len(b), f.Size())
	}
	return b
}

func checkNotFound(t *testing.T, s blob.Store, id string) {
	t.Helper()
	f, err := s.Open(t.Context(), id)
	if !errors.Is(err, storage.ErrNotFound) {
		if f != nil {
			f.Close()
		}
		t.Errorf("Open(%q) = %v, want ErrNotFound", id, err)
	}
}

// names returns the names in directory path, sorted.
func names(t *testing.T, path string) []string {
	t.Helper()
	entries, err := os.ReadDir(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestDirCommit(t *testing.T) {
	d, path := newDir(t)
	for _, p := range []string{path, filepath.Join(path, "tmp")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
			t.Errorf("%s: %v, %v; want a directory of mode 0700", p, fi.Mode(), err)
		}
	}
	start := time.Now()
	w := mustCreate(t, d, idA)
	for _, s := range []string{"hello, ", "world"} {
		if n, err := io.WriteString(w, s); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	// Nothing is visible before the commit: not under the ID, nor in the
	// directory.
	checkNotFound(t, d, idA)
	if got := names(t, path); !slices.Equal(got, []string{"tmp"}) {
		t.Errorf("before the commit the directory holds %q", got)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := names(t, path); !slices.Equal(got, []string{idA, "tmp"}) {
		t.Errorf("after the commit the directory holds %q", got)
	}
	if got := names(t, filepath.Join(path, "tmp")); len(got) != 0 {
		t.Errorf("after the commit tmp holds %q", got)
	}
	if fi, err := os.Stat(filepath.Join(path, idA)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the file: %v, %v; want mode 0600", fi.Mode(), err)
	}

	f, err := d.Open(t.Context(), idA)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer f.Close()
	if f.Size() != 12 {
		t.Errorf("Size = %d, want 12", f.Size())
	}
	// File systems keep times to a second or better.
	if m := f.ModTime(); m.Before(start.Add(-time.Second)) || m.After(time.Now().Add(time.Second)) {
		t.Errorf("ModTime = %v, want between %v and now", m, start)
	}
	if _, err := f.Seek(7, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(f); err != nil || string(b) != "world" {
		t.Errorf("reading from offset 7 = %q, %v", b, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(f); err != nil || string(b) != "hello, world" {
		t.Errorf("reading from the start = %q, %v", b, err)
	}

	// A committed Writer is done: Abort does nothing, writing or
	// committing again fails.
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if err := w.Commit(); err == nil {
		t.Error("a second Commit succeeded")
	}
	if got := contents(t, d, idA); string(got) != "hello, world" {
		t.Errorf("after Abort the file holds %q", got)
	}
	// An empty file is a file.
	put(t, d, idB, nil)
	if got := contents(t, d, idB); len(got) != 0 {
		t.Errorf("empty file holds %q", got)
	}
}

func TestDirAbort(t *testing.T) {
	d, path := newDir(t)
	w := mustCreate(t, d, idA)
	if _, err := io.WriteString(w, "discard me"); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	checkNotFound(t, d, idA)
	if got := names(t, path); !slices.Equal(got, []string{"tmp"}) {
		t.Errorf("after Abort the directory holds %q", got)
	}
	if got := names(t, filepath.Join(path, "tmp")); len(got) != 0 {
		t.Errorf("after Abort tmp holds %q", got)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("a second Abort: %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Abort succeeded")
	}
	if err := w.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	checkNotFound(t, d, idA)
	// The ID is free again.
	put(t, d, idA, []byte("kept"))
	if got := contents(t, d, idA); string(got) != "kept" {
		t.Errorf("file holds %q", got)
	}
}

// An ID committed, or being written, cannot be created again; the file
// committed stays as it was.
func TestDirCreateTaken(t *testing.T) {
	ctx := t.Context()
	d, _ := newDir(t)
	put(t, d, idA, []byte("first"))
	if w, err := d.Create(ctx, idA); !errors.Is(err, storage.ErrExists) {
		t.Errorf("Create of a committed ID = %v, %v; want ErrExists", w, err)
	}
	if got := contents(t, d, idA); string(got) != "first" {
		t.Errorf("file holds %q", got)
	}

	w := mustCreate(t, d, idB)
	if w2, err := d.Create(ctx, idB); !errors.Is(err, storage.ErrExists) {
		t.Errorf("Create of an ID being written = %v, %v; want ErrExists", w2, err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	w = mustCreate(t, d, idB)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if w2, err := d.Create(ctx, idB); !errors.Is(err, storage.ErrExists) {
		t.Errorf("Create of an ID committed meanwhile = %v, %v; want ErrExists", w2, err)
	}

	// Of many Writers racing for one ID, one wins.
	const racers = 8
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		won, lost int
	)
	for i := range racers {
		wg.Go(func() {
			w, err := d.Create(ctx, "racing-for-this-id")
			if err == nil {
				_, err = fmt.Fprintf(w, "racer %d", i)
				if err == nil {
					err = w.Commit()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, storage.ErrExists):
				lost++
			default:
				t.Errorf("racer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if won != 1 || lost != racers-1 {
		t.Errorf("%d racers won, %d lost; want 1 and %d", won, lost, racers-1)
	}
	if got := contents(t, d, "racing-for-this-id"); !strings.HasPrefix(string(got), "racer ") {
		t.Errorf("file holds %q", got)
	}
}

func TestDirDelete(t *testing.T) {
	ctx := t.Context()
	d, path := newDir(t)
	put(t, d, idA, []byte("a"))
	put(t, d, idB, []byte("b"))
	if err := d.Delete(ctx, idA); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkNotFound(t, d, idA)
	if got := names(t, path); !slices.Equal(got, []string{idB, "tmp"}) {
		t.Errorf("after Delete the directory holds %q", got)
	}
	if err := d.Delete(ctx, idA); err != nil {
		t.Errorf("Delete of a deleted file: %v", err)
	}
	// A file open when deleted reads on (POSIX).
	f, err := d.Open(ctx, idB)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := d.Delete(ctx, idB); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if b, err := io.ReadAll(f); err != nil || string(b) != "b" {
			t.Errorf("reading a deleted open file = %q, %v", b, err)
		}
	}
	// Deleting a file being written deletes nothing: it is not committed.
	w := mustCreate(t, d, idA)
	if err := d.Delete(ctx, idA); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "new"); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, d, idA); string(got) != "new" {
		t.Errorf("file holds %q", got)
	}
}

// tree returns every path under root with its size, or the target of a
// symbolic link.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %v %d", p, fi.Mode(), fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDirInvalidIDs(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	path := filepath.Join(root, "files")
	d, err := blob.NewDir(path)
	if err != nil {
		t.Fatal(err)
	}
	// Files beside and above the directory that a bad ID might reach.
	if err := os.WriteFile(filepath.Join(root, "victim-file-beside"), []byte("v"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "tmp", "xxxxxxxxxxxxxxxx"), []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := tree(t, root)
	for _, id := range []string{
		"",
		".",
		"..",
		"../x",
		"a/b",
		"tmp",
		"tmp/xxxxxxxxxxxxxxxx",
		"../victim-file-beside",
		"../../../../../../etc/passwd",
		"..%2f..%2fvictim-file-beside",
		"aaaaaaaaaaaaaaaa/",
		"/aaaaaaaaaaaaaaaa",
		`aaaaaaaa\aaaaaaaa`,
		"aaaaaaaaaaaaaaaa.",
		".aaaaaaaaaaaaaaaa",
		"aaaaaaaa\x00aaaaaaaa",
		"aaaaaaaaaaaaaaa\n",
		"aaaaaaaa aaaaaaaa",
		"aaaaaaaa+aaaaaaaa",
		"aaaaaaaa=aaaaaaaa",
		"aaaaaaaa~aaaaaaaa",
		"äöüäöüäöüäöüäöüäöü", // letters, but not ASCII
		"aaaaaaaaaaaaaa\u200baa",
		strings.Repeat("a", 15),
		strings.Repeat("a", 129),
		strings.Repeat("a", 2000),
		strings.Repeat("../", 700),
	} {
		if blob.ValidID(id) {
			t.Errorf("ValidID(%.40q) = true", id)
		}
		invalid := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, blob.ErrInvalidID) || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrExists) {
				t.Errorf("%s(%.40q) = %v, want ErrInvalidID", what, id, err)
			}
		}
		w, err := d.Create(ctx, id)
		invalid("Create", err)
		if w != nil {
			t.Errorf("Create(%.40q) returned a Writer", id)
			w.Abort()
		}
		f, err := d.Open(ctx, id)
		invalid("Open", err)
		if f != nil {
			t.Errorf("Open(%.40q) returned a File", id)
			f.Close()
		}
		invalid("Delete", d.Delete(ctx, id))
	}
	if after := tree(t, root); !slices.Equal(after, before) {
		t.Errorf("invalid IDs changed the file system:\nbefore %q\nafter  %q", before, after)
	}
	// The edges of what is valid.
	for _, id := range []string{
		strings.Repeat("a", 16),
		strings.Repeat("Z", 128),
		"-_-_-_-_-_-_-_-_",
		"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_",
	} {
		if !blob.ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
		put(t, d, id, []byte(id))
		if got := contents(t, d, id); string(got) != id {
			t.Errorf("file %q holds %q", id, got)
		}
	}
}

// A crash leaves a Writer's temporary file; the next NewDir deletes it,
// and keeps the committed files.
func TestDirStaleTemp(t *testing.T) {
	d, path := newDir(t)
	put(t, d, idA, []byte("committed before the crash"))
	w := mustCreate(t, d, idB)
	if _, err := io.WriteString(w, "half a file"); err != nil {
		t.Fatal(err)
	}
	// The crash: the process ends with w neither committed nor aborted,
	// and another file was left by an earlier one.
	if err := os.WriteFile(filepath.Join(path, "tmp", idA+".123456"), []byte("older"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := names(t, filepath.Join(path, "tmp")); len(got) != 2 {
		t.Fatalf("tmp holds %q, want two files", got)
	}

	d2, err := blob.NewDir(path)
	if err != nil {
		t.Fatalf("NewDir after the crash: %v", err)
	}
	if got := names(t, filepath.Join(path, "tmp")); len(got) != 0 {
		t.Errorf("after NewDir tmp holds %q", got)
	}
	if got := names(t, path); !slices.Equal(got, []string{idA, "tmp"}) {
		t.Errorf("after NewDir the directory holds %q", got)
	}
	checkNotFound(t, d2, idB)
	if got := contents(t, d2, idA); string(got) != "committed before the crash" {
		t.Errorf("committed file holds %q", got)
	}
	put(t, d2, idB, []byte("whole"))
	if got := contents(t, d2, idB); string(got) != "whole" {
		t.Errorf("file written after the crash holds %q", got)
	}
}

func TestDirConcurrentWriters(t *testing.T) {
	d, _ := newDir(t)
	const (
		writers = 8
		files   = 4
		chunks  = 50
	)
	content := func(w, f int) []byte {
		return bytes.Repeat(fmt.Appendf(nil, "writer %d file %d;", w, f), chunks)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for f := range files {
				id := fmt.Sprintf("writer-%02d-file-%02d", w, f)
				bw, err := d.Create(t.Context(), id)
				if err != nil {
					t.Error(err)
					return
				}
				data := content(w, f)
				step := len(data) / chunks
				for i := 0; i < len(data); i += step {
					if _, err := bw.Write(data[i : i+step]); err != nil {
						t.Error(err)
						bw.Abort()
						return
					}
					runtime.Gosched()
				}
				if err := bw.Commit(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for w := range writers {
		for f := range files {
			id := fmt.Sprintf("writer-%02d-file-%02d", w, f)
			if got := contents(t, d, id); !bytes.Equal(got, content(w, f)) {
				t.Errorf("file %s holds %d bytes, not its own %d", id, len(got), len(content(w, f)))
			}
		}
	}
}

// patternReader produces n bytes of pattern as they are read, holding
// none of them.
type patternReader struct{ off, n int64 }

func pattern(i int64) byte { return byte(i ^ i>>8 ^ i>>16 ^ i>>24) }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.off)]
	for i := range p {
		p[i] = pattern(r.off + int64(i))
	}
	r.off += int64(len(p))
	return len(p), nil
}

// patternChecker counts the bytes written to it and the first that is
// not the pattern.
type patternChecker struct {
	off int64
	bad int64 // -1 for none
}

func (c *patternChecker) Write(p []byte) (int, error) {
	for i, b := range p {
		if b != pattern(c.off+int64(i)) && c.bad < 0 {
			c.bad = c.off + int64(i)
		}
	}
	c.off += int64(len(p))
	return len(p), nil
}

// A large file streams to disk: writing 64 MiB holds on to no more than a
// few buffers.
func TestDirLargeStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MiB")
	}
	const size = 64 << 20
	d, _ := newDir(t)
	w := mustCreate(t, d, idA)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n, err := io.Copy(w, &patternReader{n: size})
	runtime.ReadMemStats(&after)
	if err != nil || n != size {
		t.Fatalf("io.Copy = %d, %v", n, err)
	}
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown >= 8<<20 {
		t.Errorf("the heap grew by %d bytes while writing %d", grown, size)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated >= 8<<20 {
		t.Errorf("%d bytes were allocated while writing %d", allocated, size)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	f, err := d.Open(t.Context(), idA)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != size {
		t.Errorf("Size = %d, want %d", f.Size(), size)
	}
	c := &patternChecker{bad: -1}
	if _, err := io.Copy(c, f); err != nil || c.off != size || c.bad >= 0 {
		t.Errorf("read back %d bytes, %v; first wrong byte at %d", c.off, err, c.bad)
	}
}

// A done context fails each method before it touches anything.
func TestDirContext(t *testing.T) {
	d, path := newDir(t)
	put(t, d, idA, []byte("a"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := d.Create(ctx, idB); !errors.Is(err, context.Canceled) {
		t.Errorf("Create = %v, want context.Canceled", err)
	}
	if _, err := d.Open(ctx, idA); !errors.Is(err, context.Canceled) {
		t.Errorf("Open = %v, want context.Canceled", err)
	}
	if err := d.Delete(ctx, idA); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete = %v, want context.Canceled", err)
	}
	if got := names(t, path); !slices.Equal(got, []string{idA, "tmp"}) {
		t.Errorf("the directory holds %q", got)
	}
}

func TestNewDirErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := blob.NewDir(file); err == nil {
		t.Error("NewDir on a file succeeded")
	}
	if _, err := blob.NewDir(filepath.Join(file, "below")); err == nil {
		t.Error("NewDir below a file succeeded")
	}
}

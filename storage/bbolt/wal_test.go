package bbolt

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

var walAt = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// openWALStore opens a Store at path whose applier runs only when asked
// (or at applyEntries records), never on its timer, and closes it when
// the test ends unless it was abandoned.
func openWALStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.wal.mu.Lock()
	s.wal.delay = time.Hour
	s.wal.mu.Unlock()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// crash releases s as a kill -9 would: the log is neither applied nor
// deleted.
func crash(t *testing.T, s *Store) {
	t.Helper()
	if err := s.abandon(); err != nil {
		t.Fatalf("abandon: %v", err)
	}
}

func segmentsIn(t *testing.T, path string) []uint64 {
	t.Helper()
	segs, err := listSegments(path + walDirSuffix)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return segs
}

func appendMsg(t *testing.T, s *Store, user string, i int) storage.ArchivedMessage {
	t.Helper()
	with := fmt.Sprintf("peer%d@example.org/r%d", i%3, i%2)
	data := fmt.Appendf(nil, "<message id='%s-%d'/>", user, i)
	id, err := s.AppendArchive(t.Context(), user, walAt.Add(time.Duration(i)*time.Second), with, data)
	if err != nil {
		t.Fatalf("AppendArchive: %v", err)
	}
	return storage.ArchivedMessage{ID: id, With: with, Data: data}
}

// checkArchive checks that user's archive holds exactly want, with the
// right count.
func checkArchive(t *testing.T, s *Store, user string, want []storage.ArchivedMessage) {
	t.Helper()
	p, err := s.QueryArchive(t.Context(), user, storage.ArchiveQuery{Max: len(want) + 10})
	if err != nil {
		t.Fatalf("QueryArchive(%s): %v", user, err)
	}
	if !slices.EqualFunc(p.Messages, want, func(a, b storage.ArchivedMessage) bool {
		return a.ID == b.ID && a.With == b.With && bytes.Equal(a.Data, b.Data)
	}) {
		t.Errorf("%s's archive has %d messages %v, want %d %v", user, len(p.Messages), p.Messages, len(want), want)
	}
	st, err := s.ArchiveStats(t.Context(), user)
	if err != nil || st.Count != len(want) {
		t.Errorf("ArchiveStats(%s) = %+v, %v; want count %d", user, st, err, len(want))
	}
	if len(want) > 0 {
		p, err := s.QueryArchive(t.Context(), user, storage.ArchiveQuery{Max: len(want) + 10, With: want[0].With})
		n := 0
		for _, m := range want {
			if m.With == want[0].With {
				n++
			}
		}
		if err != nil || len(p.Messages) != n {
			t.Errorf("QueryArchive(%s) With %s = %d messages, %v; want %d", user, want[0].With, len(p.Messages), err, n)
		}
	}
}

// TestWALConcurrentReadYourWrites appends from 50 goroutines at once and
// checks that IDs are distinct and increasing and that every message can
// be read as soon as its append returns, although the applier's timer
// never fires.
func TestWALConcurrentReadYourWrites(t *testing.T) {
	ctx := t.Context()
	s := openWALStore(t, filepath.Join(t.TempDir(), "kiez.db"))
	const workers, rounds = 50, 10
	var (
		mu   sync.Mutex
		seen = make(map[uint64]bool) // in the shared archive
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			user := fmt.Sprintf("w%d@example.org", w)
			if w%2 == 0 {
				user = "shared@example.org"
			}
			var last uint64
			for r := range rounds {
				data := fmt.Appendf(nil, "%d/%d", w, r)
				id, err := s.AppendArchive(ctx, user, walAt, "c@example.org", data)
				if err != nil {
					t.Errorf("AppendArchive: %v", err)
					return
				}
				if id <= last {
					t.Errorf("worker %d: ID %d after %d", w, id, last)
				}
				last = id
				if w%2 == 0 {
					mu.Lock()
					if seen[id] {
						t.Errorf("ID %d given twice in the shared archive", id)
					}
					seen[id] = true
					mu.Unlock()
				}
				p, err := s.QueryArchive(ctx, user, storage.ArchiveQuery{IDs: []uint64{id}, Max: 1})
				if err != nil || len(p.Messages) != 1 || string(p.Messages[0].Data) != string(data) {
					t.Errorf("worker %d: query right after the append = %v, %v", w, p.Messages, err)
				}
				if w%2 == 1 {
					st, err := s.ArchiveStats(ctx, user)
					if err != nil || st.Count != r+1 || st.Last.ID != id {
						t.Errorf("worker %d: stats right after the append = %+v, %v; want %d messages, last %d", w, st, err, r+1, id)
					}
				}
			}
		})
	}
	wg.Wait()
	st, err := s.ArchiveStats(ctx, "shared@example.org")
	if err != nil || st.Count != workers/2*rounds {
		t.Errorf("shared archive: %+v, %v; want %d messages", st, err, workers/2*rounds)
	}
	if got := s.wal.statistics(); got.batches >= got.records {
		t.Errorf("%d records took %d writes: no group commit", got.records, got.batches)
	}
}

// TestWALCrashRecovery crashes with some appends applied to the database
// file and some only in the log, and checks that the next Open has each
// exactly once, with the right counts, and goes on from the right IDs.
func TestWALCrashRecovery(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepApplied=%v", keep), func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "kiez.db")
			s := openWALStore(t, path)
			// With keep, applied segments stay on disk as if the crash
			// came between the commit and their deletion: replay must
			// not count them twice.
			s.wal.keep.Store(keep)
			users := []string{"alice@example.org", "bob@example.org", "carol@example.org"}
			want := make(map[string][]storage.ArchivedMessage)
			for i := range 30 {
				u := users[i%len(users)]
				want[u] = append(want[u], appendMsg(t, s, u, i))
				if i == 14 {
					if err := s.wal.applyNow(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if keep {
				// Applied or not, the first half must not come back
				// once expired.
				if err := s.wal.applyNow(ctx); err != nil {
					t.Fatal(err)
				}
				n, err := s.ExpireArchive(ctx, walAt.Add(3*time.Second), 0)
				if err != nil || n != 3 {
					t.Fatalf("ExpireArchive = %d, %v; want 3", n, err)
				}
				for _, u := range users {
					want[u] = want[u][1:]
				}
			}
			if len(segmentsIn(t, path)) == 0 {
				t.Fatal("no log segment left to replay")
			}
			crash(t, s)

			s = openWALStore(t, path)
			if segs := segmentsIn(t, path); len(segs) != 1 {
				t.Errorf("segments after replay: %v, want only the new one", segs)
			}
			for _, u := range users {
				checkArchive(t, s, u, want[u])
			}
			m := appendMsg(t, s, "alice@example.org", 0)
			if last := want["alice@example.org"][len(want["alice@example.org"])-1].ID; m.ID != last+1 {
				t.Errorf("the next ID after replay is %d, want %d", m.ID, last+1)
			}
			mustCloseInternal(t, s)
			if _, err := os.Stat(path + walDirSuffix); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the log directory is left after Close: %v", err)
			}
		})
	}
}

func mustCloseInternal(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestWALDeleteSurvivesCrash deletes an archive whose messages are only
// in the log, crashes, and checks that replay does not bring them back and
// that no segment holds them once DeleteArchive has returned.
func TestWALDeleteSurvivesCrash(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepApplied=%v", keep), func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "kiez.db")
			s := openWALStore(t, path)
			s.wal.keep.Store(keep)
			for i := range 5 {
				appendMsg(t, s, "gone@example.org", i)
			}
			if err := s.wal.applyNow(ctx); err != nil {
				t.Fatal(err)
			}
			var kept []storage.ArchivedMessage
			for i := range 5 {
				if _, err := s.AppendArchive(ctx, "gone@example.org", walAt, "x@example.org", []byte("secretbody")); err != nil {
					t.Fatal(err)
				}
				kept = append(kept, appendMsg(t, s, "kept@example.org", i))
			}
			if err := s.DeleteArchive(ctx, "gone@example.org"); err != nil {
				t.Fatal(err)
			}
			if !keep {
				dir := path + walDirSuffix
				for _, n := range segmentsIn(t, path) {
					data, err := os.ReadFile(filepath.Join(dir, segmentName(n)))
					if err != nil {
						t.Fatal(err)
					}
					if bytes.Contains(data, []byte("secretbody")) || bytes.Contains(data, []byte("gone@")) {
						t.Errorf("segment %d still holds the deleted archive", n)
					}
				}
			}
			// A new archive after the delete starts again.
			again := appendMsg(t, s, "gone@example.org", 0)
			crash(t, s)

			s = openWALStore(t, path)
			checkArchive(t, s, "gone@example.org", []storage.ArchivedMessage{again})
			checkArchive(t, s, "kept@example.org", kept)
		})
	}
}

// TestWALExpirePending expires messages that are only in the log.
func TestWALExpirePending(t *testing.T) {
	ctx := t.Context()
	s := openWALStore(t, filepath.Join(t.TempDir(), "kiez.db"))
	var want []storage.ArchivedMessage
	for i := range 10 {
		want = append(want, appendMsg(t, s, "alice@example.org", i))
	}
	if !s.wal.pendingFor("alice@example.org") {
		t.Fatal("nothing pending: the test tests nothing")
	}
	n, err := s.ExpireArchive(ctx, walAt.Add(4*time.Second), 0)
	if err != nil || n != 4 {
		t.Fatalf("ExpireArchive = %d, %v; want 4", n, err)
	}
	checkArchive(t, s, "alice@example.org", want[4:])
}

// TestWALTornTail crashes, cuts the last record short, and checks that
// Open replays the rest.
func TestWALTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := openWALStore(t, path)
	var want []storage.ArchivedMessage
	for i := range 5 {
		want = append(want, appendMsg(t, s, "alice@example.org", i))
		if i == 1 {
			// A round leaves the next segment created in advance,
			// empty, after the one to tear.
			if err := s.wal.applyNow(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendMsg(t, s, "alice@example.org", 5) // to be torn
	crash(t, s)
	segs := segmentsIn(t, path)
	if len(segs) != 2 {
		t.Fatalf("segments %v, want the current one and the next", segs)
	}
	seg := filepath.Join(path+walDirSuffix, segmentName(segs[0]))
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// The last record's end did not reach the disk.
	end := 0
	for {
		_, n, _, ok, _ := readWALRecord(data[end:])
		if !ok {
			break
		}
		end += n
	}
	clear(data[end-3 : end])
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openWALStore(t, path)
	checkArchive(t, s, "alice@example.org", want)
}

// buildSegment returns a segment of batches of records, one per user
// name, and the offsets of the records.
func buildSegment(batches ...[]string) ([]byte, []int) {
	var seg []byte
	var offs []int
	id := uint64(100)
	for _, users := range batches {
		var b []byte
		for _, u := range users {
			offs = append(offs, len(seg)+len(b))
			id++
			b = appendWALRecord(b, &walEntry{kind: walAppend, user: u, id: id, with: "w@example.org", rec: encodeArchiveMsg("w@example.org", []byte("m"))})
		}
		seg = append(seg, b...)
	}
	return seg, offs
}

// TestReadSegment checks how replay tells a torn last batch from damage.
func TestReadSegment(t *testing.T) {
	seg, offs := buildSegment([]string{"a", "b"}, []string{"c", "d", "e"})
	users := func(es []walEntry) string {
		var s []byte
		for _, e := range es {
			s = append(s, e.user...)
		}
		return string(s)
	}
	damage := func(at int) []byte {
		d := bytes.Clone(seg)
		d[at+walHeader+3] ^= 0xff
		return d
	}
	for _, tt := range []struct {
		name    string
		data    []byte
		last    bool
		want    string
		corrupt bool
	}{
		{"whole", seg, true, "abcde", false},
		{"short tail", seg[:len(seg)-2], true, "abcd", false},
		{"zeros after", append(bytes.Clone(seg), make([]byte, 100)...), true, "abcde", false},
		{"zeros after closed", append(bytes.Clone(seg), make([]byte, 100)...), false, "abcde", false},
		{"torn before zeros", append(bytes.Clone(seg[:len(seg)-2]), make([]byte, 100)...), true, "abcd", false},
		// The last batch reached the disk out of order: its first record
		// is bad, a later one good.
		{"torn last batch", damage(offs[2]), true, "ab", false},
		{"torn middle of last batch", damage(offs[3]), true, "abc", false},
		// A bad record in a batch followed by a later batch was
		// acknowledged.
		{"damaged acknowledged", damage(offs[1]), true, "", true},
		{"torn closed segment", seg[:len(seg)-2], false, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readSegment(tt.data, tt.last)
			if tt.corrupt {
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("readSegment = %q, %v; want ErrCorrupt", users(got), err)
				}
				return
			}
			if err != nil || users(got) != tt.want {
				t.Errorf("readSegment = %q, %v; want %q", users(got), err, tt.want)
			}
		})
	}
}

// TestWALCorruptOpen checks that Open refuses a log with a damaged
// acknowledged record, and that the log's files are private.
func TestWALCorruptOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := openWALStore(t, path)
	dir := path + walDirSuffix
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("log directory: %v, %v; want mode 0700", info.Mode(), err)
	}
	appendMsg(t, s, "alice@example.org", 0)
	appendMsg(t, s, "alice@example.org", 1)
	crash(t, s)
	seg := filepath.Join(dir, segmentName(segmentsIn(t, path)[0]))
	info, err := os.Stat(seg)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("segment: %v, %v; want mode 0600", info.Mode(), err)
	}
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[walHeader+3] ^= 0xff // the first record, written before the second
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			_ = s.Close()
		}
		t.Errorf("Open = %v; want ErrCorrupt", err)
	}
}

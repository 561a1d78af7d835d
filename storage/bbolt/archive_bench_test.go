package bbolt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

// The query benchmarks share one database, built once per process: one
// user with benchHeavy messages of about 200 bytes with benchParties
// parties (plus one rare party with a message every benchRareEvery), and
// benchOthers messages spread over other users in the same file.
const (
	benchUser       = "heavy@example.org"
	benchHeavy      = 1_000_000
	benchOthers     = 100_000
	benchOtherUsers = 1000
	benchParties    = 50
	benchRare       = "rare@example.net"
	benchRareEvery  = 10_000
	benchTxSize     = 50_000
)

var benchFixture struct {
	once sync.Once
	dir  string
	s    *Store
	ids  []uint64      // of benchUser's messages
	took time.Duration // to build
	err  error
}

// TestMain removes the query benchmarks' database.
func TestMain(m *testing.M) {
	code := m.Run()
	if benchFixture.s != nil {
		_ = benchFixture.s.Close()
	}
	if benchFixture.dir != "" {
		_ = os.RemoveAll(benchFixture.dir)
	}
	os.Exit(code)
}

// benchStore returns the shared query database, building it on first use.
func benchStore(b *testing.B) (*Store, []uint64) {
	b.Helper()
	f := &benchFixture
	f.once.Do(func() {
		start := time.Now()
		f.dir, f.err = os.MkdirTemp("", "kiez-bench")
		if f.err != nil {
			return
		}
		f.s, f.err = Open(filepath.Join(f.dir, "kiez.db"), Options{})
		if f.err != nil {
			return
		}
		f.ids, f.err = buildBenchArchive(f.s)
		f.took = time.Since(start)
		if f.err == nil {
			b.Logf("archive of %d messages (and %d of %d other users) built in %v", benchHeavy, benchOthers, benchOtherUsers, f.took.Round(time.Millisecond))
		}
	})
	if f.err != nil {
		b.Fatalf("building the benchmark archive: %v", f.err)
	}
	return f.s, f.ids
}

// buildBenchArchive fills s in large transactions without fsync (the file
// is synced once at the end).
func buildBenchArchive(s *Store) ([]uint64, error) {
	s.db.NoSync = true
	defer func() { s.db.NoSync = false }()
	body := make([]byte, 160)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	// One message a second from a year before now.
	at := uint64(time.Now().Add(-365 * 24 * time.Hour).UnixMicro())
	ids := make([]uint64, 0, benchHeavy)
	for start := 0; start < benchHeavy; start += benchTxSize {
		err := s.db.Update(func(tx *bolt.Tx) error {
			var entries []walEntry
			for i := start; i < min(start+benchTxSize, benchHeavy); i++ {
				with := fmt.Sprintf("contact%d@example.org/res%d", i%benchParties, i%3)
				if i%benchRareEvery == 0 {
					with = benchRare + "/phone"
				}
				data := fmt.Appendf(nil, "<message id='m%d' type='chat'><body>%s</body></message>", i, body)
				// IDs grow, so each is the ID asked for.
				id := at + uint64(i)*1e6
				entries = append(entries, walEntry{kind: walAppend, user: benchUser, id: id, with: with, rec: encodeArchiveMsg(with, data)})
				ids = append(ids, id)
			}
			return applyWAL(tx, entries)
		})
		if err != nil {
			return nil, err
		}
	}
	for start := 0; start < benchOthers; start += benchTxSize {
		err := s.db.Update(func(tx *bolt.Tx) error {
			var entries []walEntry
			for i := start; i < min(start+benchTxSize, benchOthers); i++ {
				user := fmt.Sprintf("user%d@example.org", i%benchOtherUsers)
				with := fmt.Sprintf("contact%d@example.org/res", i%benchParties)
				data := fmt.Appendf(nil, "<message id='o%d' type='chat'><body>%s</body></message>", i, body)
				entries = append(entries, walEntry{kind: walAppend, user: user, id: at + uint64(i)*1e6, with: with, rec: encodeArchiveMsg(with, data)})
			}
			return applyWAL(tx, entries)
		})
		if err != nil {
			return nil, err
		}
	}
	return ids, s.db.Sync()
}

// benchQuery runs q b.N times and reports the 99th percentile latency.
func benchQuery(b *testing.B, q storage.ArchiveQuery, want int) {
	s, _ := benchStore(b)
	ctx := context.Background()
	durs := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		p, err := s.QueryArchive(ctx, benchUser, q)
		durs = append(durs, time.Since(start))
		if err != nil || len(p.Messages) != want {
			b.Fatalf("QueryArchive = %d messages, %v; want %d", len(p.Messages), err, want)
		}
	}
	b.StopTimer()
	reportP99(b, durs)
}

func reportP99(b *testing.B, durs []time.Duration) {
	if len(durs) == 0 {
		return
	}
	slices.Sort(durs)
	b.ReportMetric(float64(durs[(len(durs)*99)/100].Nanoseconds()), "p99-ns")
}

// BenchmarkArchiveQueryLatest50 pages back from the newest message of an
// archive of a million.
func BenchmarkArchiveQueryLatest50(b *testing.B) {
	benchQuery(b, storage.ArchiveQuery{Max: 50, Reverse: true}, 50)
}

// BenchmarkArchiveQueryMiddle pages back from the middle of an archive of
// a million.
func BenchmarkArchiveQueryMiddle(b *testing.B) {
	_, ids := benchStore(b)
	benchQuery(b, storage.ArchiveQuery{Max: 50, Reverse: true, Before: ids[len(ids)/2]}, 50)
}

// BenchmarkArchiveQueryWithRare asks for the messages with a party that
// has one message in every ten thousand.
func BenchmarkArchiveQueryWithRare(b *testing.B) {
	benchQuery(b, storage.ArchiveQuery{Max: 50, Reverse: true, With: benchRare}, 50)
}

// BenchmarkArchiveQueryWithFrequent asks for the 50 latest messages with
// a full JID of a party that has one message in fifty, of the middle.
func BenchmarkArchiveQueryWithFrequent(b *testing.B) {
	_, ids := benchStore(b)
	benchQuery(b, storage.ArchiveQuery{Max: 50, Reverse: true, Before: ids[len(ids)/2], With: "contact7@example.org/res1"}, 50)
}

// BenchmarkAppendArchiveParallel appends from 50 goroutines at once, each
// append durable (fsynced) before it returns, and reports the appends per
// second and per write and fdatasync of the archive's log.
func BenchmarkAppendArchiveParallel(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "kiez.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const goroutines = 50
	b.SetParallelism((goroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	data := make([]byte, 200)
	var worker atomic.Int32
	st0 := s.wal.statistics()
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		user := fmt.Sprintf("user%d@example.org", worker.Add(1))
		ctx := context.Background()
		for pb.Next() {
			if _, err := s.AppendArchive(ctx, user, time.Now(), "contact@example.org/res", data); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	elapsed := time.Since(start)
	st := s.wal.statistics()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	if n := st.batches - st0.batches; n > 0 {
		b.ReportMetric(float64(st.records-st0.records)/float64(n), "appends/sync")
	}
}

// BenchmarkAppendArchiveSerial appends from one goroutine: one write and
// fdatasync per append, the latency a lone writer sees.
func BenchmarkAppendArchiveSerial(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "kiez.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 200)
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.AppendArchive(ctx, "user@example.org", time.Now(), "contact@example.org/res", data); err != nil {
			b.Fatal(err)
		}
	}
}

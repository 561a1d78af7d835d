package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/postgres/pgtest"
	"github.com/kiez-im/kiez/storage/storagetest"
)

// cluster is the test binary's throwaway cluster, or nil with startErr.
var (
	cluster  *pgtest.Cluster
	startErr error
)

func TestMain(m *testing.M) {
	cluster, startErr = pgtest.Start()
	code := m.Run()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// newSchema returns the DSN of a new, empty schema, skipping the test when
// PostgreSQL is not installed (failing if KIEZ_REQUIRE_INTEROP is set).
func newSchema(t *testing.T) string {
	t.Helper()
	if cluster == nil {
		if errors.Is(startErr, pgtest.ErrMissing) && os.Getenv("KIEZ_REQUIRE_INTEROP") == "" {
			t.Skip(startErr)
		}
		t.Fatal(startErr)
	}
	dsn, err := cluster.CreateSchema(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), newSchema(t), Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) any { return newStore(t) })
}

// TestMigrateFromFirst fills a database at schema version 1, then opens it
// with Open so that every later migration runs over the existing data.
func TestMigrateFromFirst(t *testing.T) {
	ctx := t.Context()
	dsn := newSchema(t)
	first, err := open(ctx, dsn, Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	a := storage.Account{JID: "alice@example.org", Created: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
		Keys: map[storage.Hash]storage.SCRAMKeys{storage.SHA256: {Salt: []byte("s"), Iterations: 4096, StoredKey: []byte("k"), ServerKey: []byte("v")}}}
	if err := first.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := first.Put(ctx, "alice@example.org", "vcard", []byte("x")); err == nil {
		t.Fatal("Put at schema version 1 succeeded; want no kv table yet")
	}
	first.Close()

	var logged bytes.Buffer
	s, err := Open(ctx, dsn, Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`msg="migrating schema to %d" from=1`, len(ms)); !strings.Contains(logged.String(), want) {
		t.Errorf("logged %q, want %s", logged.String(), want)
	}
	got, err := s.Account(ctx, a.JID)
	if err != nil || !got.Created.Equal(a.Created) || got.Keys[storage.SHA256].Iterations != 4096 {
		t.Fatalf("after upgrade: Account = %+v, %v", got, err)
	}
	if err := s.Put(ctx, a.JID, "vcard", []byte("x")); err != nil {
		t.Fatalf("after upgrade: Put: %v", err)
	}
	var n, max int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || max != len(ms) {
		t.Errorf("schema_migrations has %d rows up to %d, want %d", n, max, len(ms))
	}
	// Opening again applies nothing, says nothing and keeps the data.
	logged.Reset()
	again, err := Open(ctx, dsn, Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
	if logged.Len() > 0 {
		t.Errorf("opened again, logged %q", logged.String())
	}
}

// An Exclusive Store keeps a second Exclusive Open out of its schema
// until it is closed; other schemas and non-exclusive Opens are not
// affected.
func TestExclusive(t *testing.T) {
	ctx := t.Context()
	dsn, other := newSchema(t), newSchema(t)
	first, err := Open(ctx, dsn, Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, dsn, Options{Exclusive: true}); !errors.Is(err, ErrLocked) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("second exclusive Open: %v, want ErrLocked", err)
	}
	shared, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatalf("non-exclusive Open: %v", err)
	}
	shared.Close()
	elsewhere, err := Open(ctx, other, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("exclusive Open of another schema: %v", err)
	}
	elsewhere.Close()
	first.Close()
	again, err := Open(ctx, dsn, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("exclusive Open after Close: %v", err)
	}
	again.Close()
}

// Concurrent appends, to a few archives at once and sharing batches,
// each get a distinct ID that strictly increases per archive in the
// order of the appends' times, and every message is stored under the ID
// its append returned.
func TestAppendConcurrent(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	const writers, each = 32, 40
	users := []string{"a@example.org", "b@example.org", "c@example.org"}
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC) // the same time for all: IDs are raised
	type got struct {
		user string
		id   uint64
		data string
	}
	results := make(chan got, writers*each)
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				u := users[(w+i)%len(users)]
				data := fmt.Sprintf("w%d-%d", w, i)
				id, err := s.AppendArchive(ctx, u, at, "peer@example.net/r", []byte(data))
				if err != nil {
					errs <- err
					return
				}
				results <- got{u, id, data}
			}
			errs <- nil
		}()
	}
	for w := 0; w < writers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(results)
	want := make(map[string]map[uint64]string)
	for r := range results {
		if want[r.user] == nil {
			want[r.user] = make(map[uint64]string)
		}
		if _, dup := want[r.user][r.id]; dup {
			t.Fatalf("ID %d given twice in %s", r.id, r.user)
		}
		want[r.user][r.id] = r.data
	}
	total := 0
	for _, u := range users {
		page, err := s.QueryArchive(ctx, u, storage.ArchiveQuery{Max: writers * each})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Messages) != len(want[u]) {
			t.Fatalf("%s holds %d messages, %d appends returned", u, len(page.Messages), len(want[u]))
		}
		for i, m := range page.Messages {
			if want[u][m.ID] != string(m.Data) {
				t.Errorf("%s: ID %d holds %q, its append was %q", u, m.ID, m.Data, want[u][m.ID])
			}
			if i == 0 && m.ID != storage.TimeID(at) {
				t.Errorf("%s: first ID %d, want the time's %d", u, m.ID, storage.TimeID(at))
			}
			if i > 0 && m.ID != page.Messages[i-1].ID+1 {
				t.Errorf("%s: ID %d after %d", u, m.ID, page.Messages[i-1].ID)
			}
		}
		total += len(page.Messages)
	}
	if total != writers*each {
		t.Errorf("%d messages stored, want %d", total, writers*each)
	}
	// After Close, appends fail instead of hanging.
	s.Close()
	if _, err := s.AppendArchive(ctx, users[0], at, "x@example.net", nil); err == nil {
		t.Error("an append after Close succeeded")
	}
}

// testAppend is an append for committer.commit: data to user's archive
// at the time at, with p@example.net.
func testAppend(ctx context.Context, user string, at time.Time, data string) *appendReq {
	return &appendReq{ctx: ctx, user: user, want: int64(storage.TimeID(at)), with: "p@example.net", data: []byte(data), done: make(chan appendRes, 1)}
}

// A bad append in a batch (an archive row already holding its ID, made
// behind the store's back) fails alone; the others of its batch commit.
func TestAppendBatchOneBad(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	if _, err := s.pool.Exec(ctx, `INSERT INTO archive (jid, id, with_jid, with_bare, data) VALUES ('bad@example.org', $1, 'x', 'x', '')`, int64(storage.TimeID(at))); err != nil {
		t.Fatal(err)
	}
	reqs := []*appendReq{testAppend(ctx, "good@example.org", at, "1"), testAppend(ctx, "bad@example.org", at, "2"), testAppend(ctx, "good@example.org", at, "3")}
	s.appends.commit(reqs)
	for i, r := range reqs {
		res := <-r.done
		if (res.err != nil) != (i == 1) {
			t.Errorf("append %d: %v", i, res.err)
		}
	}
	st, err := s.ArchiveStats(ctx, "good@example.org")
	if err != nil || st.Count != 2 {
		t.Errorf("good archive: %+v, %v; want both appends", st, err)
	}
}

// BenchmarkAppend: durable appends from 64 goroutines over 100 archives,
// through the group commit (grouped) and each as its own statement and
// transaction (direct, what AppendArchive did before).
func BenchmarkAppend(b *testing.B) {
	for _, grouped := range []bool{true, false} {
		name := "direct"
		if grouped {
			name = "grouped"
		}
		b.Run(name, func(b *testing.B) {
			if cluster == nil {
				b.Skip(startErr)
			}
			dsn, err := cluster.CreateSchema(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			s, err := Open(b.Context(), dsn, Options{MaxConns: 16})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := make([]byte, 200)
			var n atomic.Int64
			b.SetParallelism(32) // 64 goroutines on 2 CPUs
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					user := "u" + strconv.FormatInt(i%100, 10) + "@example.org"
					var err error
					if grouped {
						_, err = s.AppendArchive(b.Context(), user, time.Now(), "peer@example.net", data)
					} else {
						_, err = s.appendOne(b.Context(), user, int64(storage.TimeID(time.Now())), "peer@example.net", data)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// Migration 11 counts the messages of the archives that exist, so that
// ArchiveStats, which reads the count, is right after the upgrade.
func TestMigrateArchiveCount(t *testing.T) {
	ctx := t.Context()
	dsn := newSchema(t)
	old, err := open(ctx, dsn, Options{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	for i := range 3 {
		if _, err := old.appendOne(ctx, "a@example.org", int64(storage.TimeID(at.Add(time.Duration(i)*time.Second))), "b@example.org", []byte("x")); err == nil {
			t.Fatal("an append with the count at schema version 10 succeeded; want no column n yet")
		}
	}
	for i := range 3 {
		if _, err := old.pool.Exec(ctx, `WITH l AS (INSERT INTO archive_last (jid, last) VALUES ('a@example.org', $1)
			ON CONFLICT (jid) DO UPDATE SET last = EXCLUDED.last RETURNING last)
			INSERT INTO archive (jid, id, with_jid, with_bare, data) SELECT 'a@example.org', last, 'b@example.org', 'b@example.org', 'x' FROM l`,
			int64(storage.TimeID(at.Add(time.Duration(i)*time.Second)))); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	s, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st, err := s.ArchiveStats(ctx, "a@example.org"); err != nil || st.Count != 3 {
		t.Fatalf("after the upgrade: %+v, %v; want a count of 3", st, err)
	}
	if _, err := s.AppendArchive(ctx, "a@example.org", at, "b@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if st, err := s.ArchiveStats(ctx, "a@example.org"); err != nil || st.Count != 4 {
		t.Fatalf("after an append: %+v, %v; want 4", st, err)
	}
}

// waitLocked waits until a statement starting with prefix waits for a
// lock in the cluster.
func waitLocked(t *testing.T, s *Store, prefix string) {
	t.Helper()
	for i := 0; ; i++ {
		var n int
		if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`, prefix+"%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if i == 1000 {
			t.Fatalf("no statement %q waits for a lock", prefix)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// DeleteArchive while an append to the archive is in flight (its
// transaction open on another connection) removes the appended message
// with the rest, so that the archive is empty and counted so.
func TestDeleteArchiveDuringAppend(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	const user = "a@example.org"
	at := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	if _, err := s.AppendArchive(ctx, user, at, "b@example.org", []byte("1")); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, appendSQL, user, int64(storage.TimeID(at.Add(time.Second))), "b@example.org", "b@example.org", []byte("2")); err != nil {
		t.Fatal(err)
	}
	deleted := make(chan error, 1)
	go func() { deleted <- s.DeleteArchive(ctx, user) }()
	waitLocked(t, s, "DELETE FROM archive")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	var rows, counted int64
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM archive WHERE jid = $1), coalesce((SELECT n FROM archive_last WHERE jid = $1), 0)`, user).Scan(&rows, &counted); err != nil {
		t.Fatal(err)
	}
	if rows != 0 || counted != 0 {
		t.Errorf("after the deletion: %d messages, counted %d; want none", rows, counted)
	}
}

// An Exclusive Open of a schema another Exclusive Store holds fails
// without migrating it: the schema stays at the holder's older version.
func TestExclusiveNoMigration(t *testing.T) {
	ctx := t.Context()
	dsn := newSchema(t)
	old, err := open(ctx, dsn, Options{Exclusive: true}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if s, err := Open(ctx, dsn, Options{Exclusive: true}); !errors.Is(err, ErrLocked) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("second exclusive Open: %v, want ErrLocked", err)
	}
	var v int
	if err := old.pool.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != 10 {
		t.Errorf("schema at version %d after the refused Open, want 10 still", v)
	}
}

// A batch that fails other than by a statement the server rejected (here
// a timeout while another transaction holds its archive's counter) fails
// all its appends with the error, without retrying them one by one: the
// commit might have happened unseen. Retried, the appends would be
// stored once the other transaction ends.
func TestAppendBatchTimeoutNoRetry(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	if _, err := s.AppendArchive(ctx, "a@example.org", at, "p@example.net", nil); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Rolled back once, by the goroutine below or, if the test ends
	// first, by the deferred call (sync.Once makes the second wait).
	var once sync.Once
	rollback := func() { once.Do(func() { tx.Rollback(context.Background()) }) }
	defer rollback()
	if _, err := tx.Exec(ctx, `UPDATE archive_last SET n = n WHERE jid = 'a@example.org'`); err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { appendTimeout = d }(appendTimeout)
	appendTimeout = 500 * time.Millisecond
	reqs := []*appendReq{testAppend(ctx, "a@example.org", at, "1"), testAppend(ctx, "a@example.org", at, "2")}
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(700 * time.Millisecond) // after the batch's timeout
		rollback()
	}()
	s.appends.commit(reqs)
	<-released
	for i, r := range reqs {
		if res := <-r.done; res.err == nil {
			t.Errorf("append %d succeeded after its batch timed out", i)
		}
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM archive WHERE jid = 'a@example.org'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("the archive holds %d messages, want the first alone", n)
	}
}

// lockCounters begins a transaction on another connection that locks the
// archive counters of users, in that order; a deadlock aborts it rather
// than the store's statements.
func lockCounters(t *testing.T, s *Store, users ...string) pgx.Tx {
	t.Helper()
	tx, err := s.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	// This transaction looks for a deadlock first, and is the one
	// aborted if there is one.
	if _, err := tx.Exec(t.Context(), `SET LOCAL deadlock_timeout = '10ms'`); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if _, err := tx.Exec(t.Context(), `UPDATE archive_last SET n = n WHERE jid = $1`, u); err != nil {
			t.Fatalf("lock the counter of %s: %v", u, err)
		}
	}
	return tx
}

// A batch of appends locks the archives' counters in the order of their
// JIDs, whatever the order of the appends, as another transaction that
// locks them in that order does: neither is aborted as a deadlock.
func TestAppendBatchLockOrder(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, u := range []string{"a@example.org", "b@example.org"} {
		if _, err := s.AppendArchive(ctx, u, at, "p@example.net", nil); err != nil {
			t.Fatal(err)
		}
	}
	tx := lockCounters(t, s, "a@example.org")
	reqs := []*appendReq{testAppend(ctx, "b@example.org", at, "b1"), testAppend(ctx, "a@example.org", at, "a1"), testAppend(ctx, "b@example.org", at, "b2")}
	done := make(chan struct{})
	go func() { s.appends.commit(reqs); close(done) }()
	waitLocked(t, s, "WITH l AS")
	if _, err := tx.Exec(ctx, `UPDATE archive_last SET n = n WHERE jid = 'b@example.org'`); err != nil {
		t.Fatalf("the other transaction: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	var ids []uint64
	for i, r := range reqs {
		res := <-r.done
		if res.err != nil {
			t.Errorf("append %d: %v", i, res.err)
		}
		ids = append(ids, uint64(res.id))
	}
	if ids[0] >= ids[2] {
		t.Errorf("b's appends got IDs %d and %d, want them in order", ids[0], ids[2])
	}
}

// The expiry locks the counters of the archives it expires in the order
// of their JIDs, before deleting: waiting for the first, it holds none
// that another transaction locking them in that order needs.
func TestExpireLockOrder(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, u := range []string{"b@example.org", "a@example.org", "c@example.org"} {
		if _, err := s.AppendArchive(ctx, u, at, "p@example.net", nil); err != nil {
			t.Fatal(err)
		}
	}
	tx := lockCounters(t, s, "a@example.org")
	expired := make(chan error, 1)
	go func() {
		n, err := s.ExpireArchive(ctx, at.Add(time.Hour), 0)
		if err == nil && n != 3 {
			err = fmt.Errorf("expired %d, want 3", n)
		}
		expired <- err
	}()
	waitLocked(t, s, "")
	for _, u := range []string{"b@example.org", "c@example.org"} {
		if _, err := tx.Exec(ctx, `UPDATE archive_last SET n = n WHERE jid = $1`, u); err != nil {
			t.Fatalf("the other transaction: %v", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-expired; err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"a@example.org", "b@example.org", "c@example.org"} {
		if st, err := s.ArchiveStats(ctx, u); err != nil || st.Count != 0 {
			t.Errorf("%s: %+v, %v; want nothing left", u, st, err)
		}
	}
}

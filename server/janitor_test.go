package server_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/memory"
)

// janitorStore is a store with service data, as kiezd's is.
type janitorStore interface {
	storage.Accounts
	storage.ServiceData
	storage.Offline
}

// janitorStores are the real backends the janitor tests run on.
func janitorStores(t *testing.T) map[string]janitorStore {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "kiez.db"), bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return map[string]janitorStore{"memory": memory.New(), "bbolt": db}
}

// janitorNow is the time the tests run the janitor at.
var janitorNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// offlineExpirer is a module expiring offline messages older than an hour
// from a real store, recording the limits it is called with.
type offlineExpirer struct {
	store  storage.Offline
	mu     sync.Mutex
	limits []int
	// after, if set, runs after each call.
	after func()
}

func (*offlineExpirer) Name() string { return "offline" }

func (x *offlineExpirer) Expire(ctx context.Context, now time.Time, limit int) (int, bool, error) {
	x.mu.Lock()
	x.limits = append(x.limits, limit)
	x.mu.Unlock()
	n, err := x.store.ExpireOffline(ctx, now.Add(-time.Hour), limit)
	if x.after != nil {
		x.after()
	}
	return n, storage.Limited(n, limit), err
}

func (x *offlineExpirer) calls() []int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]int(nil), x.limits...)
}

var _ server.Expirer = (*offlineExpirer)(nil)

// fillJanitor stores n expired bans and n offline messages older than an
// hour, over a few users, and one of each that is not due.
func fillJanitor(t *testing.T, s janitorStore, n int) {
	t.Helper()
	ctx := t.Context()
	for i := range n {
		if err := s.PutServiceValue(ctx, "ipfilter", fmt.Sprintf("ban-%05d", i), []byte("198.51.100.7"), janitorNow.Add(-time.Duration(i+1)*time.Second)); err != nil {
			t.Fatal(err)
		}
		msg := storage.OfflineMessage{Stored: janitorNow.Add(-2 * time.Hour), Data: []byte("<message><body>secret body</body></message>")}
		if err := s.PushOffline(ctx, fmt.Sprintf("user%d@example.org", i%7), msg, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutServiceValue(ctx, "ipfilter", "kept", []byte("v"), janitorNow.AddDate(100, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.PushOffline(ctx, "user0@example.org", storage.OfflineMessage{Stored: janitorNow, Data: []byte("<message/>")}, 0); err != nil {
		t.Fatal(err)
	}
}

func newJanitorServer(t *testing.T, store janitorStore, r server.Retention, log *slog.Logger, mods ...server.Module) *server.Server {
	t.Helper()
	r.Interval = -1 // the tests run it
	srv, err := server.New(t.Context(), server.Config{
		Domains: []string{"example.org"}, Accounts: store, Modules: mods, Retention: r, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestJanitorBatches checks that a backlog larger than a batch is removed
// in batches of at most Batch, within one run, and that what is not due
// stays; the log has the counts by kind and nothing else.
func TestJanitorBatches(t *testing.T) {
	for name, store := range janitorStores(t) {
		t.Run(name, func(t *testing.T) {
			fillJanitor(t, store, 250)
			var buf syncBuffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			mod := &offlineExpirer{store: store}
			srv := newJanitorServer(t, store, server.Retention{Batch: 40}, log, mod)
			rep := srv.RunJanitor(t.Context(), janitorNow)
			if rep.Err != nil || rep.Backlog {
				t.Fatalf("RunJanitor: backlog %v, %v", rep.Backlog, rep.Err)
			}
			if rep.Removed["offline"] != 250 || rep.Removed[server.KindServiceData] != 250 || rep.Total() != 500 {
				t.Errorf("RunJanitor removed %v, want 250 of each", rep.Removed)
			}
			calls := mod.calls()
			if len(calls) < 7 {
				t.Errorf("the module was called %d times for 250 items in batches of 40", len(calls))
			}
			for _, l := range calls {
				if l < 1 || l > 40 {
					t.Errorf("the module was called with limit %d, not within [1, 40]", l)
				}
			}
			if n, err := store.CountOffline(t.Context(), "user0@example.org"); err != nil || n != 1 {
				t.Errorf("user0 has %d offline messages, %v; want the one not due", n, err)
			}
			if keys, err := store.ServiceKeys(t.Context(), "ipfilter", storage.ServiceKeysQuery{Max: 10}); err != nil || len(keys) != 1 {
				t.Errorf("ipfilter keys = %q, %v; want the one not due", keys, err)
			}
			out := buf.String()
			if strings.Count(out, "\n") != 1 || !strings.Contains(out, "level=INFO") ||
				!strings.Contains(out, "removed.offline=250") || !strings.Contains(out, "removed.servicedata=250") || !strings.Contains(out, "total=500") {
				t.Errorf("log = %q, want one info line with the counts", out)
			}
			for _, bad := range []string{"@", "198.51.100", "secret", "ban-", "ipfilter"} {
				if strings.Contains(out, bad) {
					t.Errorf("log holds %q: %s", bad, out)
				}
			}
			// Nothing left: the next run logs nothing.
			buf = syncBuffer{}
			log2 := srv.RunJanitor(t.Context(), janitorNow)
			if log2.Total() != 0 || log2.Backlog || buf.String() != "" {
				t.Errorf("second run = %+v, log %q", log2, buf.String())
			}
		})
	}
}

// TestJanitorBudget checks that a run stops at its budget, reports the
// backlog, and that further runs finish the job.
func TestJanitorBudget(t *testing.T) {
	for name, store := range janitorStores(t) {
		t.Run(name, func(t *testing.T) {
			fillJanitor(t, store, 300)
			srv := newJanitorServer(t, store, server.Retention{Batch: 50, Budget: 220}, nil, &offlineExpirer{store: store})
			total := 0
			for run := 1; ; run++ {
				rep := srv.RunJanitor(t.Context(), janitorNow)
				if rep.Err != nil {
					t.Fatal(rep.Err)
				}
				if rep.Total() > 220 {
					t.Fatalf("run %d removed %d, over the budget", run, rep.Total())
				}
				// Kinds take turns: neither waits for the other's backlog.
				if run == 1 && (rep.Removed["offline"] == 0 || rep.Removed[server.KindServiceData] == 0) {
					t.Errorf("first run removed %v, want some of each kind", rep.Removed)
				}
				total += rep.Total()
				if !rep.Backlog {
					if run < 3 {
						t.Errorf("600 items under a budget of 220 took %d runs", run)
					}
					break
				}
				if run > 5 {
					t.Fatal("the backlog never ends")
				}
			}
			if total != 600 {
				t.Errorf("runs removed %d, want 600", total)
			}
		})
	}
}

// TestJanitorCancel checks that the end of the context stops a run
// between batches, and that the backlog is reported and taken up later.
func TestJanitorCancel(t *testing.T) {
	store := memory.New()
	fillJanitor(t, store, 100)
	ctx, cancel := context.WithCancel(t.Context())
	mod := &offlineExpirer{store: store, after: cancel}
	srv := newJanitorServer(t, store, server.Retention{Batch: 10}, nil, mod)
	rep := srv.RunJanitor(ctx, janitorNow)
	if len(mod.calls()) != 1 || rep.Removed["offline"] != 10 || rep.Removed[server.KindServiceData] != 0 || !rep.Backlog {
		t.Errorf("cancelled run: %d calls, %+v; want one batch and a backlog", len(mod.calls()), rep)
	}
	mod.after = nil
	if rep := srv.RunJanitor(t.Context(), janitorNow); rep.Total() != 190 || rep.Backlog {
		t.Errorf("next run = %+v, want the other 190", rep)
	}
}

// failingExpirer fails with an error naming a user.
type failingExpirer struct{}

func (failingExpirer) Name() string { return "broken" }

func (failingExpirer) Expire(context.Context, time.Time, int) (int, bool, error) {
	return 0, true, errors.New("cannot expire alice@example.org")
}

// TestJanitorError checks that a failing kind is logged at error level
// without the user it names, and the others still run.
func TestJanitorError(t *testing.T) {
	store := memory.New()
	fillJanitor(t, store, 5)
	var buf syncBuffer
	srv := newJanitorServer(t, store, server.Retention{}, slog.New(slog.NewTextHandler(&buf, nil)), failingExpirer{})
	rep := srv.RunJanitor(t.Context(), janitorNow)
	if rep.Err == nil || !strings.Contains(rep.Err.Error(), "broken") || rep.Removed[server.KindServiceData] != 5 || rep.Backlog {
		t.Errorf("RunJanitor = %+v", rep)
	}
	out := buf.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "kind=broken") || strings.Contains(out, "alice") {
		t.Errorf("log = %q", out)
	}
}

// TestJanitorConfig checks the configuration's bounds.
func TestJanitorConfig(t *testing.T) {
	for _, r := range []server.Retention{{Batch: -1}, {Budget: -1}} {
		_, err := server.New(t.Context(), server.Config{Domains: []string{"example.org"}, Accounts: memory.New(), Retention: r})
		if err == nil {
			t.Errorf("New with %+v: no error", r)
		}
	}
}

// startExpirer signals its first call.
type startExpirer struct {
	once sync.Once
	ran  chan time.Time
}

func (*startExpirer) Name() string { return "start" }

func (x *startExpirer) Expire(_ context.Context, now time.Time, _ int) (int, bool, error) {
	x.once.Do(func() { x.ran <- now })
	return 0, false, nil
}

// TestJanitorRunsAtStart checks that the server runs the janitor when it
// starts, and stops it at shutdown.
func TestJanitorRunsAtStart(t *testing.T) {
	x := &startExpirer{ran: make(chan time.Time, 1)}
	srv, err := server.New(t.Context(), server.Config{Domains: []string{"example.org"}, Accounts: memory.New(), Modules: []server.Module{x}})
	if err != nil {
		t.Fatal(err)
	}
	<-x.ran
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Notes keeps notes for a day: a module with a retention implements
// server.Expirer, and the server's janitor removes what is due in bounded
// batches.
type Notes struct {
	store storage.ServiceData
}

func (Notes) Name() string { return "notes" }

func (n Notes) Expire(ctx context.Context, now time.Time, limit int) (int, bool, error) {
	removed, err := n.store.ExpireServiceData(ctx, now, limit)
	return removed, storage.Limited(removed, limit), err
}

func ExampleServer_RunJanitor() {
	ctx := context.Background()
	notes := memory.New()
	then := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		notes.PutServiceValue(ctx, "notes", fmt.Sprint(i), []byte("a note"), then.Add(24*time.Hour))
	}
	srv, err := server.New(ctx, server.Config{
		Domains:  []string{"example.org"},
		Accounts: memory.New(),
		Modules:  []server.Module{Notes{store: notes}},
		// Two at a time, at most four a run; the tests run it.
		Retention: server.Retention{Interval: -1, Batch: 2, Budget: 4},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	rep := srv.RunJanitor(ctx, then.Add(48*time.Hour))
	fmt.Println(rep.Removed["notes"], rep.Backlog)
	rep = srv.RunJanitor(ctx, then.Add(48*time.Hour))
	fmt.Println(rep.Removed["notes"], rep.Backlog)
	// Output:
	// 4 true
	// 1 false
}

// pagingExpirer visits pages of an index that hold nothing due before it
// finds an item.
type pagingExpirer struct{ pages, calls int }

func (*pagingExpirer) Name() string { return "paging" }

func (x *pagingExpirer) Expire(context.Context, time.Time, int) (int, bool, error) {
	x.calls++
	if x.pages > 0 {
		x.pages--
		return 0, true, nil
	}
	return 1, false, nil
}

// TestJanitorEmptyPages checks that calls removing nothing but reporting
// more go on within the run, and that they count against the budget.
func TestJanitorEmptyPages(t *testing.T) {
	x := &pagingExpirer{pages: 3}
	srv := newJanitorServer(t, memory.New(), server.Retention{}, nil, x)
	if rep := srv.RunJanitor(t.Context(), janitorNow); rep.Removed["paging"] != 1 || rep.Backlog || x.calls != 4 {
		t.Errorf("RunJanitor = %+v after %d calls; want 1 removed after 4", rep, x.calls)
	}
	x = &pagingExpirer{pages: 1000}
	srv = newJanitorServer(t, memory.New(), server.Retention{Budget: 10}, nil, x)
	if rep := srv.RunJanitor(t.Context(), janitorNow); !rep.Backlog || x.calls != 10 {
		t.Errorf("RunJanitor = %+v after %d calls; want a backlog after 10", rep, x.calls)
	}
}

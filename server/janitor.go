package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// Expirer is implemented by modules that keep data with an expiry or a
// retention (archived and offline messages, uploads, invitations). The
// server's one janitor calls Expire when the server starts and then every
// Retention.Interval; modules run no ticker of their own.
type Expirer interface {
	// Expire removes at most limit items that are due at now (limit is at
	// least 1) and returns how many it removed, and whether more may be
	// due: the janitor calls again, in the same run or a later one,
	// while more is true. An error ends this run's calls to the module;
	// the janitor logs it (through the privacy handler) and retries at
	// the next run. Expire should return soon after ctx ends.
	Expire(ctx context.Context, now time.Time, limit int) (removed int, more bool, err error)
}

// KindServiceData is the kind under which the janitor reports the expired
// entries of the server's own service data (bans, counters): see
// Config.Accounts.
const KindServiceData = "servicedata"

// KindRemovedAccounts is the kind under which the janitor reports the
// accounts it purged once their removal's grace period was over (see
// Config.RemovalGrace and Server.RemoveUser).
const KindRemovedAccounts = "removed-accounts"

// Defaults of Retention.
const (
	DefaultRetentionInterval = time.Hour
	DefaultRetentionBatch    = 1000
	DefaultRetentionBudget   = 100_000
)

// backlogDelay is the longest the janitor waits before its next run when
// a run stopped at its budget with data still due.
const backlogDelay = time.Minute

// Retention configures the janitor that removes expired data. Zero fields
// take the defaults.
type Retention struct {
	// Interval is the time between runs of the janitor (default one
	// hour); it also runs when the server starts. After a run that left a
	// backlog the next comes sooner: after a minute, or Interval if that
	// is shorter. A negative Interval turns the periodic runs off
	// (Server.RunJanitor still runs one).
	Interval time.Duration
	// Batch is the most items one call to an Expirer removes (default
	// 1000): what one storage call deletes, so that a call, and each of
	// the store's write transactions, stays short. Negative is an error.
	Batch int
	// Budget is the most items one run removes, over all kinds (default
	// 100 000; a call that removes nothing but has more to do counts as
	// one); what is left
	// waits for the next run. Negative is an error.
	Budget int
}

func (r Retention) withDefaults() (Retention, error) {
	if r.Batch < 0 || r.Budget < 0 {
		return r, fmt.Errorf("server: retention batch %d and budget %d must not be negative", r.Batch, r.Budget)
	}
	if r.Interval == 0 {
		r.Interval = DefaultRetentionInterval
	}
	if r.Batch == 0 {
		r.Batch = DefaultRetentionBatch
	}
	if r.Budget == 0 {
		r.Budget = DefaultRetentionBudget
	}
	return r, nil
}

// JanitorReport is what one run of the janitor did.
type JanitorReport struct {
	// Removed counts the items removed by kind: a module's name, or
	// KindServiceData. Kinds that removed nothing are absent.
	Removed map[string]int
	// Backlog reports that the run stopped at its budget, or at the end
	// of its context, with items still due.
	Backlog bool
	// Err joins the errors of the run, each naming its kind.
	Err error
}

// Total returns the number of items removed, over all kinds.
func (r JanitorReport) Total() int {
	n := 0
	for _, c := range r.Removed {
		n += c
	}
	return n
}

// namedExpirer is an Expirer and the kind it is reported under.
type namedExpirer struct {
	kind string
	e    Expirer
}

// serviceExpirer expires the server's own service data.
type serviceExpirer struct{ sd storage.ServiceData }

func (x serviceExpirer) Expire(ctx context.Context, now time.Time, limit int) (int, bool, error) {
	n, err := x.sd.ExpireServiceData(ctx, now, limit)
	return n, storage.Limited(n, limit), err
}

// buildJanitor collects the expirers: the modules that implement Expirer,
// in Config.Modules order, then the service data of Config.Accounts if it
// has any, then the purge of removed accounts.
func (s *Server) buildJanitor() error {
	r, err := s.cfg.Retention.withDefaults()
	if err != nil {
		return err
	}
	s.retention = r
	for _, m := range s.cfg.Modules {
		if e, ok := m.(Expirer); ok {
			s.expirers = append(s.expirers, namedExpirer{kind: m.Name(), e: e})
		}
	}
	if sd, ok := s.cfg.Accounts.(storage.ServiceData); ok {
		s.expirers = append(s.expirers, namedExpirer{kind: KindServiceData, e: serviceExpirer{sd}})
	}
	s.expirers = append(s.expirers, namedExpirer{kind: KindRemovedAccounts, e: removedExpirer{s}})
	return nil
}

// removedExpirer purges the accounts whose removal's grace period is
// over. It runs whatever Config.RemovalGrace says now, so that accounts
// removed while a grace period was configured are purged after it is
// switched off.
type removedExpirer struct{ s *Server }

func (x removedExpirer) Expire(ctx context.Context, now time.Time, limit int) (int, bool, error) {
	n, err := x.s.PurgeRemoved(ctx, now, limit)
	return n, storage.Limited(n, limit), err
}

// janitor runs the janitor now and then every Retention.Interval, sooner
// after a run that left a backlog, until ctx ends.
func (s *Server) janitor(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := s.retention.Interval
		if rep := s.RunJanitor(ctx, time.Now()); rep.Backlog {
			next = min(next, backlogDelay)
		}
		t.Reset(next)
	}
}

// RunJanitor runs the janitor once, as of now, and returns what it did;
// the server also runs it at start and every Retention.Interval. It calls
// each Expirer in turn for at most Retention.Batch items, and again, in
// turn, those that have more due, until none has or Retention.Budget items
// are removed, yielding to other goroutines between calls and stopping
// when ctx ends. It logs one line with the counts by kind when it removed
// something, and one line per kind that failed; never what it removed.
// Runs do not overlap: a call waits for a run in progress.
func (s *Server) RunJanitor(ctx context.Context, now time.Time) JanitorReport {
	s.janitorMu.Lock()
	defer s.janitorMu.Unlock()
	rep := JanitorReport{Removed: make(map[string]int)}
	budget := s.retention.Budget
	pending := slices.Clone(s.expirers)
	var errs []error
	failed := make(map[string]error)
	for len(pending) > 0 && budget > 0 {
		var again []namedExpirer
		for i, x := range pending {
			if ctx.Err() != nil || budget <= 0 {
				again = append(again, pending[i:]...)
				break
			}
			n, more, err := x.e.Expire(ctx, now, min(s.retention.Batch, budget))
			n = max(n, 0)
			if n > 0 {
				rep.Removed[x.kind] += n
				s.metrics.removed[x.kind].Add(uint64(n))
			}
			budget -= n
			if n == 0 && more {
				// A call that removed nothing (it visited a page of an
				// index) but has more to do costs one item, so that it
				// cannot make a run endless.
				budget--
			}
			switch {
			case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
				again = append(again, x) // cut short: still due
			case err != nil:
				failed[x.kind] = err
				errs = append(errs, fmt.Errorf("server: expiring %s: %w", x.kind, err))
			case more:
				again = append(again, x)
			}
			runtime.Gosched()
		}
		pending = again
		if ctx.Err() != nil {
			break
		}
	}
	rep.Backlog = len(pending) > 0
	rep.Err = errors.Join(errs...)
	s.logJanitor(rep, failed)
	return rep
}

// logJanitor logs a run: counts by kind, and each failure.
func (s *Server) logJanitor(rep JanitorReport, failed map[string]error) {
	for _, x := range s.expirers {
		if err, ok := failed[x.kind]; ok {
			s.log.Error("expiring failed", "kind", x.kind, "err", err)
			delete(failed, x.kind) // a kind listed twice is logged once
		}
	}
	if len(rep.Removed) == 0 && !rep.Backlog {
		return
	}
	attrs := make([]any, 0, len(rep.Removed)+2)
	seen := make(map[string]bool)
	for _, x := range s.expirers {
		if n := rep.Removed[x.kind]; n > 0 && !seen[x.kind] {
			seen[x.kind] = true
			attrs = append(attrs, slog.Int(x.kind, n))
		}
	}
	level := slog.LevelInfo
	if len(rep.Removed) == 0 {
		level = slog.LevelDebug // a backlog cut short before removing anything
	}
	s.log.Log(context.Background(), level, "expired", slog.Int("total", rep.Total()), slog.Group("removed", attrs...), slog.Bool("backlog", rep.Backlog))
}

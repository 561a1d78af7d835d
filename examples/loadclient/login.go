package main

import (
	"context"
	"flag"
	"sync"
	"sync/atomic"
	"time"
)

// LoginResult is the result line of the login scenario.
type LoginResult struct {
	Common
	Concurrency int  `json:"concurrency"`
	Presence    bool `json:"presence"`
	// Logins completed inside the measured window, and in the whole run.
	Logins      int64 `json:"logins"`
	LoginsTotal int64 `json:"logins_total"`
	// Rates over the window: per wall second and per server CPU second.
	PerSec       float64  `json:"logins_per_sec"`
	PerServerCPU *float64 `json:"logins_per_server_cpu_s,omitempty"`
	// Latency is connect to bound resource, within the window.
	Latency
	CPU
	Errors
}

// runLogin has -c workers each repeatedly connect, negotiate STARTTLS,
// authenticate, bind (optionally send presence) and close, for -warmup and
// then the measured -d. Worker w logs in as account w.
func runLogin(ctx context.Context, e env, args []string) error {
	var c config
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	c.register(fs)
	conc := fs.Int("c", 16, "concurrent workers (1-4096)")
	d := fs.Duration("d", 20*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured warm-up before the window")
	presence := fs.Bool("presence", false, "send initial presence after bind")
	maxLogins := fs.Int64("max", 10_000_000, "stop after this many logins in all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkRange("-c", *conc, 1, 4096); err != nil {
		return err
	}
	ctx, cancel, err := c.start(ctx, e, *warmup+*d+time.Minute)
	if err != nil {
		return err
	}
	defer cancel()

	var (
		lat           histogram
		errs          tally
		inWindow, all atomic.Int64
		workers       sync.WaitGroup
		closers       sync.WaitGroup
	)
	// A stream's close finishes in the background (bounded), so that a
	// server that delays its own </stream:stream> does not throttle the
	// workers.
	closing := make(chan struct{}, 4096)
	w := startWindow(ctx, c.pid, *warmup, *d)
	for i := range *conc {
		user := c.user(i)
		workers.Go(func() {
			for ctx.Err() == nil && !closed(w.over) && all.Load() < *maxLogins {
				t0 := time.Now()
				cn, err := dial(ctx, &c.target)
				if err != nil {
					errs.add("dial", err)
					sleep(ctx, 50*time.Millisecond)
					continue
				}
				if err := cn.login(user, c.pass); err != nil {
					errs.add("login", err)
					cn.abort()
					sleep(ctx, 50*time.Millisecond)
					continue
				}
				if *presence {
					cn.send("<presence/>")
				}
				took := time.Since(t0)
				all.Add(1)
				if w.measuring.Load() {
					lat.add(took)
					inWindow.Add(1)
				}
				closing <- struct{}{}
				closers.Go(func() {
					cn.close(2 * time.Second)
					<-closing
				})
			}
		})
	}
	done := make(chan struct{})
	go progress(done, func() { e.log.Info("login", "logins", all.Load(), "errors", errs.total()) })
	workers.Wait()
	close(done)
	cpu, err := w.result()
	if err != nil {
		return err
	}
	waitTimeout(&closers, 5*time.Second)

	r := LoginResult{
		Common:      c.common("login"),
		Concurrency: *conc,
		Presence:    *presence,
		Logins:      inWindow.Load(),
		LoginsTotal: all.Load(),
		Latency:     lat.latency(),
		CPU:         cpu,
		Errors:      errs.result(),
	}
	r.PerSec = cpu.perSecond(float64(r.Logins))
	r.PerServerCPU = cpu.perServerCPU(float64(r.Logins))
	return e.emit(r)
}

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

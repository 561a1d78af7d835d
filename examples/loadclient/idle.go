package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// IdleResult is the result line of the idle scenario.
type IdleResult struct {
	Common
	Concurrency int `json:"concurrency"`
	// Steps holds one sample per level of -k.
	Steps []IdleStep `json:"steps"`
	// Sessions is the number open at the last level.
	Sessions int `json:"sessions"`
	// KiBPerSession is (RSS at the last level − RSS before the first
	// session) / sessions, as ../shared/bench reports it;
	// KiBPerSessionBetween is (RSS at the last level − RSS at the first) /
	// (sessions added in between), which leaves out the server's fixed
	// costs that the first sessions bring in (buffers, pools, runtime).
	KiBPerSession        float64  `json:"kb_per_session"`
	KiBPerSessionBetween *float64 `json:"kb_per_session_between,omitempty"`
	RSSBefore            int64    `json:"rss_before_kb"`
	RSSHeld              int64    `json:"rss_held_kb"`
	RSSAfterClose        int64    `json:"rss_after_close_kb"`
	// Dropped counts sessions the server closed while they were idle.
	Dropped int64 `json:"dropped"`
	// SetupSeconds is the time to open every session.
	SetupSeconds float64 `json:"setup_s"`
	// LoginLatency is connect to bound resource and presence handled.
	LoginLatency Latency `json:"login_latency"`
	CPU
	Errors
}

// IdleStep is the sample taken at one level of -k.
type IdleStep struct {
	Target int   `json:"target"`
	Open   int   `json:"open"`
	RSS    int64 `json:"rss_kb"`
	// Delta is RSS minus the RSS before the first session.
	Delta         int64   `json:"rss_delta_kb"`
	KiBPerSession float64 `json:"kb_per_session"`
	OpenPerSec    float64 `json:"open_per_sec"`
}

// runIdle opens authenticated sessions (bound, with initial presence) up
// to each level of -k in turn, waits -settle after each and samples the
// server's resident memory. The sessions stay silent but answer the
// server's keepalive pings.
func runIdle(ctx context.Context, e env, args []string) error {
	var c config
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	c.register(fs)
	levels := fs.String("k", "2000,10000", "increasing session counts to sample at, comma-separated (at most 100000)")
	conc := fs.Int("c", 32, "parallel logins (1-1024)")
	settle := fs.Duration("settle", 5*time.Second, "wait after each level before sampling")
	if err := fs.Parse(args); err != nil {
		return err
	}
	steps, err := parseLevels(*levels)
	if err != nil {
		return err
	}
	if err := checkRange("-c", *conc, 1, 1024); err != nil {
		return err
	}
	ctx, cancel, err := c.start(ctx, e, time.Duration(len(steps)+1)**settle+15*time.Minute)
	if err != nil {
		return err
	}
	defer cancel()
	if c.pid == 0 {
		return errors.New("idle needs -pid or -pidfile: it reads the server's memory")
	}
	rss0, err := procRSS(c.pid)
	if err != nil {
		return err
	}
	e.log.Info("idle: server memory before", "rss_kb", rss0)

	var (
		errs    tally
		lat     histogram
		conns   []*conn
		readers sync.WaitGroup
		dropped atomic.Int64
		closing atomic.Bool
	)
	defer func() {
		closing.Store(true)
		endStreams(conns, &readers, 5*time.Second)
	}()
	r := IdleResult{Common: c.common("idle"), Concurrency: *conc, RSSBefore: rss0}
	cw := startCPU(c.pid)
	t0 := time.Now()
	for _, k := range steps {
		names := make([]string, 0, k-len(conns))
		for i := len(conns); i < k; i++ {
			names = append(names, c.user(i))
		}
		e.log.Info("idle: opening sessions", "from", len(conns), "to", k)
		ts := time.Now()
		for _, cn := range openSessions(ctx, &c, e.log, names, *conc, &errs, &lat) {
			conns = append(conns, cn)
			if cn == nil {
				continue
			}
			cn.setReadTimeout(0)
			readers.Go(func() {
				idleRead(cn)
				if !closing.Load() {
					dropped.Add(1)
				}
			})
		}
		opened := time.Since(ts).Seconds()
		if !sleep(ctx, *settle) {
			return ctx.Err()
		}
		rss, err := procRSS(c.pid)
		if err != nil {
			return fmt.Errorf("server gone: %w", err)
		}
		open := 0
		for _, cn := range conns {
			if cn != nil {
				open++
			}
		}
		open -= int(dropped.Load())
		st := IdleStep{Target: k, Open: open, RSS: rss, Delta: rss - rss0, OpenPerSec: round1(float64(len(names)) / opened)}
		if open > 0 {
			st.KiBPerSession = round1(float64(st.Delta) / float64(open))
		}
		e.log.Info("idle: level", "open", open, "rss_kb", rss, "kb_per_session", st.KiBPerSession)
		r.Steps = append(r.Steps, st)
	}
	r.RSSHeld, _ = procRSS(c.pid)
	cpu, err := cw.stop()
	if err != nil {
		return err
	}
	r.SetupSeconds = round1(time.Since(t0).Seconds())
	first, last := r.Steps[0], r.Steps[len(r.Steps)-1]
	r.Sessions, r.KiBPerSession = last.Open, last.KiBPerSession
	if len(r.Steps) > 1 && last.Open > first.Open {
		v := round1(float64(last.RSS-first.RSS) / float64(last.Open-first.Open))
		r.KiBPerSessionBetween = &v
	}

	e.log.Info("idle: closing sessions", "sessions", len(conns))
	closing.Store(true)
	endStreams(conns, &readers, 5*time.Second)
	conns = nil
	sleep(ctx, *settle)
	r.RSSAfterClose, _ = procRSS(c.pid)
	r.Dropped = dropped.Load()
	r.LoginLatency = lat.latency()
	r.CPU = cpu
	r.Errors = errs.result()
	return e.emit(r)
}

// idleRead answers the server's pings on an idle session until its stream
// ends.
func idleRead(cn *conn) {
	for {
		el, err := cn.next()
		if err != nil {
			return
		}
		if name(el) == "iq" {
			cn.answerIQ(el)
		}
	}
}

// parseLevels parses -k: increasing positive session counts.
func parseLevels(s string) ([]int, error) {
	var steps []int
	for f := range strings.SplitSeq(s, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k <= 0 || k > 100_000 || (len(steps) > 0 && k <= steps[len(steps)-1]) {
			return nil, fmt.Errorf("-k %q: want increasing session counts between 1 and 100000", s)
		}
		steps = append(steps, k)
	}
	return steps, nil
}

package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// openSessions logs in the given accounts, conc at a time, sends initial
// presence on each and returns the connections in the same order (nil where
// three attempts failed). Login latencies go to lat when it is not nil.
func openSessions(ctx context.Context, c *config, log *slog.Logger, names []string, conc int, errs *tally, lat *histogram) []*conn {
	conns := make([]*conn, len(names))
	var next, open atomic.Int64
	next.Store(-1)
	done := make(chan struct{})
	defer close(done)
	go progress(done, func() { log.Info("opening sessions", "open", open.Load(), "of", len(names), "errors", errs.total()) })

	var wg sync.WaitGroup
	for range max(conc, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1))
				if i >= len(names) {
					return
				}
				for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
					t0 := time.Now()
					cn, err := openSession(ctx, &c.target, names[i], c.pass, errs)
					if err != nil {
						sleep(ctx, 200*time.Millisecond)
						continue
					}
					if lat != nil {
						lat.add(time.Since(t0))
					}
					conns[i] = cn
					open.Add(1)
					break
				}
			}
		})
	}
	wg.Wait()
	return conns
}

// openSession dials, logs in, sends initial presence and waits for the
// answer to a ping, so that the server has handled the presence (a stream
// is handled in order) before anyone sends to the session. A failure is
// counted in errs.
func openSession(ctx context.Context, t *target, user, pass string, errs *tally) (*conn, error) {
	cn, err := dial(ctx, t)
	if err != nil {
		errs.add("dial", err)
		return nil, err
	}
	if err := cn.login(user, pass); err != nil {
		errs.add("login", err)
		cn.abort()
		return nil, err
	}
	id := cn.id("sync")
	err = cn.send("<presence/><iq type='get' id='" + id + "' to='" + escape(t.domain) + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	if err == nil {
		// Any answer will do: a server without XEP-0199 sends an error.
		if _, err = cn.waitIQ(id); errors.As(err, new(*iqError)) {
			err = nil
		}
	}
	if err != nil {
		errs.add("presence", err)
		cn.abort()
		return nil, err
	}
	return cn, nil
}

// endStreams ends every open stream whose reader goroutine is counted in
// readers, waits up to wait for the readers to see the server's end of
// stream, then closes the connections.
func endStreams(conns []*conn, readers *sync.WaitGroup, wait time.Duration) {
	for _, cn := range conns {
		if cn != nil {
			cn.send("</stream:stream>")
		}
	}
	waitTimeout(readers, wait)
	for _, cn := range conns {
		if cn != nil {
			cn.abort()
		}
	}
}

// progress calls f every five seconds until done is closed.
func progress(done <-chan struct{}, f func()) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			f()
		case <-done:
			return
		}
	}
}

// sleep waits for d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// waitTimeout waits for wg at most d and reports whether it finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

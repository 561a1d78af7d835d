package main

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// errNoWindow reports a run stopped (by -maxtime or a signal) before its
// measured window began.
var errNoWindow = errors.New("stopped before the measured window began")

// window times an unmeasured warm-up followed by the measured window, and
// the server's CPU use over the latter. Load generators check measuring to
// decide whether a sample counts, and stop when over is closed.
type window struct {
	measuring atomic.Bool
	over      chan struct{} // closed when the window ends, or the run does
	done      chan struct{} // closed once cpu and err are set
	cancel    context.CancelFunc
	cpu       CPU
	err       error
}

func startWindow(ctx context.Context, pid int, warmup, d time.Duration) *window {
	ctx, cancel := context.WithCancel(ctx)
	w := &window{over: make(chan struct{}), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(w.done)
		defer close(w.over)
		if !sleep(ctx, warmup) {
			w.err = errNoWindow
			return
		}
		cw := startCPU(pid)
		w.measuring.Store(true)
		sleep(ctx, d) // cut short by ctx: the shorter window is reported
		w.measuring.Store(false)
		w.cpu, w.err = cw.stop()
	}()
	return w
}

// result ends the window if it is still running (the load stopped early,
// at its -max count) and returns its CPU figures.
func (w *window) result() (CPU, error) {
	w.cancel()
	<-w.done
	return w.cpu, w.err
}

package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MsgResult is the result line of the msg scenario.
type MsgResult struct {
	Common
	Pairs     int  `json:"pairs"`
	Window    int  `json:"window"`
	BodyBytes int  `json:"body_bytes"`
	NoStore   bool `json:"nostore_hint"`
	// ServerArchives says whether the server advertises the message
	// archive (urn:xmpp:mam:2) on the first sender's account: true for the
	// archived-message figures, false for plain routing unless -nostore.
	ServerArchives bool `json:"server_archives"`
	// Sent and Received count the whole run, warm-up and drain included;
	// Lost is their difference after the drain, Bounced the error replies
	// among the lost.
	Sent     int64 `json:"sent"`
	Received int64 `json:"received"`
	Lost     int64 `json:"lost"`
	Bounced  int64 `json:"bounced"`
	// Delivered counts messages received inside the measured window; the
	// rates and latencies are theirs.
	Delivered    int64    `json:"delivered_in_window"`
	PerSec       float64  `json:"msgs_per_sec"`
	PerServerCPU *float64 `json:"msgs_per_server_cpu_s,omitempty"`
	// Latency is from send to receipt, end to end.
	Latency
	CPU
	Errors
}

// msgRun is the shared state of one msg run.
type msgRun struct {
	base    time.Time // message timestamps count from here
	window  *window
	lat     histogram
	errs    tally
	sent    atomic.Int64
	recvd   atomic.Int64
	inWin   atomic.Int64
	bounced atomic.Int64
}

// runMsg connects -p pairs of accounts: 2i sends to 2i+1's bare JID,
// keeping at most -w messages in flight (a message leaves flight when its
// receiver reads it) and sending as fast as that allows. It reports the
// messages delivered per second and per server CPU second in the measured
// window, their latency, and the messages lost.
func runMsg(ctx context.Context, e env, args []string) error {
	var c config
	fs := flag.NewFlagSet("msg", flag.ContinueOnError)
	c.register(fs)
	pairs := fs.Int("p", 50, "sender/receiver pairs (1-5000)")
	inFlight := fs.Int("w", 8, "messages in flight per pair (1-1000)")
	d := fs.Duration("d", 20*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 3*time.Second, "unmeasured warm-up before the window")
	conc := fs.Int("c", 16, "parallel logins while connecting")
	size := fs.Int("size", 64, "body length in bytes (at least 24 are used for the timestamp)")
	noStore := fs.Bool("nostore", false, "add a XEP-0334 <no-store/> hint, which keeps messages out of the archive")
	maxMsgs := fs.Int64("max", 50_000_000, "stop sending after this many messages in all")
	drain := fs.Duration("drain", 10*time.Second, "how long to wait for messages in flight after the window")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, r := range []struct {
		flag    string
		v, l, h int
	}{{"-p", *pairs, 1, 5000}, {"-w", *inFlight, 1, 1000}, {"-c", *conc, 1, 1024}, {"-size", *size, 0, 64 << 10}} {
		if err := checkRange(r.flag, r.v, r.l, r.h); err != nil {
			return err
		}
	}
	ctx, cancel, err := c.start(ctx, e, *warmup+*d+*drain+5*time.Minute)
	if err != nil {
		return err
	}
	defer cancel()

	m := &msgRun{}
	names := make([]string, 2**pairs)
	for i := range names {
		names[i] = c.user(i)
	}
	e.log.Info("msg: opening sessions", "sessions", len(names))
	conns := openSessions(ctx, &c, e.log, names, *conc, &m.errs, nil)
	defer func() {
		for _, cn := range conns {
			if cn != nil {
				cn.abort()
			}
		}
	}()
	for i, cn := range conns {
		if cn == nil {
			return fmt.Errorf("msg: session %s did not open: %v", names[i], m.errs.result().Samples)
		}
	}
	archives, err := advertises(conns[0], conns[0].bare(), nsMAM)
	if err != nil {
		return fmt.Errorf("msg: disco#info: %w", err)
	}

	hint := ""
	if *noStore {
		hint = "<no-store xmlns='urn:xmpp:hints'/>"
	}
	padding := ""
	if *size > 24 {
		padding = " " + strings.Repeat("x", *size-24)
	}
	var readers, senders sync.WaitGroup
	sems := make([]chan struct{}, *pairs)
	for p := range sems {
		sems[p] = make(chan struct{}, *inFlight)
	}
	m.base = time.Now()
	for i, cn := range conns {
		cn.setReadTimeout(0)
		sem, isReceiver := sems[i/2], i%2 == 1
		readers.Go(func() { m.read(cn, sem, isReceiver) })
	}
	e.log.Info("msg: sending", "pairs", *pairs, "window", *inFlight, "warmup", *warmup, "measure", *d)
	m.window = startWindow(ctx, c.pid, *warmup, *d)
	for p := range *pairs {
		s, to := conns[2*p], escape(conns[2*p+1].bare())
		senders.Go(func() {
			var buf []byte
			for seq := 0; ; seq++ {
				select {
				case sems[p] <- struct{}{}:
				case <-m.window.over:
					return
				}
				if m.sent.Add(1) > *maxMsgs {
					m.sent.Add(-1)
					return
				}
				buf = fmt.Appendf(buf[:0], "<message to='%s' type='chat' id='m%d'><body>%d%s</body>%s</message>",
					to, seq, time.Since(m.base), padding, hint)
				if err := s.sendBytes(buf); err != nil {
					m.errs.add("send", err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go progress(done, func() { e.log.Info("msg", "sent", m.sent.Load(), "received", m.recvd.Load()) })
	senders.Wait()
	close(done)
	cpu, err := m.window.result()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*drain)
	for m.recvd.Load()+m.bounced.Load() < m.sent.Load() && time.Now().Before(deadline) && sleep(ctx, 20*time.Millisecond) {
	}
	sent, recvd := m.sent.Load(), m.recvd.Load()
	endStreams(conns, &readers, 5*time.Second)

	r := MsgResult{
		Common:         c.common("msg"),
		Pairs:          *pairs,
		Window:         *inFlight,
		BodyBytes:      *size,
		NoStore:        *noStore,
		ServerArchives: archives,
		Sent:           sent,
		Received:       recvd,
		Lost:           sent - recvd,
		Bounced:        m.bounced.Load(),
		Delivered:      m.inWin.Load(),
		Latency:        m.lat.latency(),
		CPU:            cpu,
		Errors:         m.errs.result(),
	}
	r.PerSec = cpu.perSecond(float64(r.Delivered))
	r.PerServerCPU = cpu.perServerCPU(float64(r.Delivered))
	return e.emit(r)
}

// read consumes one session's stream until it ends. On a receiver, each
// chat message frees a slot of its pair's window and, inside the measured
// window, adds its latency; on a sender, an error reply (a bounce) frees
// one too, so that a lost message cannot stall the pair.
func (m *msgRun) read(cn *conn, sem chan struct{}, isReceiver bool) {
	release := func() {
		select {
		case <-sem:
		default:
		}
	}
	for {
		el, err := cn.next()
		if err != nil {
			return
		}
		switch name(el) {
		case "message":
			if attr(el, "type") == "error" {
				m.bounced.Add(1)
				release()
				continue
			}
			if !isReceiver {
				continue
			}
			sentAt, ok := bodyTimestamp(el)
			if !ok {
				continue
			}
			now := time.Since(m.base)
			m.recvd.Add(1)
			if m.window.measuring.Load() {
				m.inWin.Add(1)
				m.lat.add(now - sentAt)
			}
			release()
		case "iq":
			cn.answerIQ(el)
		}
	}
}

// bodyTimestamp reads the send time at the start of a message's body.
func bodyTimestamp(el []byte) (time.Duration, bool) {
	i := bytes.Index(el, []byte("<body"))
	if i < 0 {
		return 0, false
	}
	j := bytes.IndexByte(el[i:], '>')
	if j < 0 {
		return 0, false
	}
	rest := el[i+j+1:]
	k := bytes.IndexAny(rest, " <")
	if k < 0 {
		return 0, false
	}
	ns, err := strconv.ParseInt(string(rest[:k]), 10, 64)
	return time.Duration(ns), err == nil
}

package main

import (
	"bytes"
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

// Namespaces the client checks for or queries.
const (
	nsMAM       = "urn:xmpp:mam:2"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsRSM       = "http://jabber.org/protocol/rsm"
)

// MAMResult is the result line of the mam scenario.
type MAMResult struct {
	Common
	User    string `json:"user"`
	Contact string `json:"contact"`
	// Skipped says why nothing was measured (the server does not
	// advertise the archive); the other fields are then empty.
	Skipped string `json:"skipped,omitempty"`
	// ArchiveBefore is the archive's size before any fill, Filled the
	// messages sent to reach -m and FillPerSec their rate.
	ArchiveBefore int     `json:"archive_before"`
	Filled        int     `json:"filled"`
	FillPerSec    float64 `json:"fill_msgs_per_sec,omitempty"`
	// ArchiveCount is the size the server reported in the last query.
	ArchiveCount int `json:"archive_count"`
	Page         int `json:"page"`
	Queries      int `json:"queries"`
	// ShortPages counts answers with fewer than -page messages.
	ShortPages int     `json:"short_pages"`
	PerSec     float64 `json:"queries_per_sec"`
	// ServerCPUPerQuery is the server's CPU time per query in
	// milliseconds.
	ServerCPUPerQuery *float64 `json:"server_cpu_ms_per_query,omitempty"`
	// Latency is from sending the query to its final iq result, the whole
	// page received.
	Latency
	CPU
	Errors
}

// runMAM times -q sequential XEP-0313 queries for the newest page of -page
// messages (RSM <before/>) in -user's archive. With -m, it first tops the
// archive up to -m messages, sent to -contact. The loadserver's -fill fills
// u0's archive with u1's messages much faster.
func runMAM(ctx context.Context, e env, args []string) error {
	var c config
	fs := flag.NewFlagSet("mam", flag.ContinueOnError)
	c.register(fs)
	user := fs.String("user", "u0", "archive owner")
	contact := fs.String("contact", "u1", "contact the fill messages go to")
	fill := fs.Int("m", 0, "messages the owner's archive should hold; sends what is missing (at most 10000000)")
	inFlight := fs.Int("w", 32, "fill messages in flight (1-1000)")
	queries := fs.Int("q", 200, "queries to time (1-100000)")
	page := fs.Int("page", 50, "messages per page (RSM max, 1-1000)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, r := range []struct {
		flag    string
		v, l, h int
	}{{"-m", *fill, 0, 10_000_000}, {"-w", *inFlight, 1, 1000}, {"-q", *queries, 1, 100_000}, {"-page", *page, 1, 1000}} {
		if err := checkRange(r.flag, r.v, r.l, r.h); err != nil {
			return err
		}
	}
	ctx, cancel, err := c.start(ctx, e, 20*time.Minute)
	if err != nil {
		return err
	}
	defer cancel()
	r := MAMResult{Common: c.common("mam"), User: *user, Contact: *contact, Page: *page}

	var errs tally
	owner, err := openSession(ctx, &c.target, *user, c.pass, &errs)
	if err != nil {
		return fmt.Errorf("mam: login %s: %w", *user, err)
	}
	defer owner.close(time.Second)
	ok, err := advertises(owner, owner.bare(), nsMAM)
	if err != nil {
		return fmt.Errorf("mam: disco#info: %w", err)
	}
	if !ok {
		r.Skipped = "the server does not advertise " + nsMAM + " on the account (loadserver: -archive)"
		return e.emit(r)
	}
	q, err := queryNewest(owner, 1)
	if err != nil {
		return fmt.Errorf("mam: counting the archive: %w", err)
	}
	r.ArchiveBefore = q.count
	e.log.Info("mam: archive size", "messages", q.count)
	if need := *fill - q.count; need > 0 {
		rate, err := fillArchive(ctx, &c, e, owner, *contact, need, *inFlight)
		if err != nil {
			return fmt.Errorf("mam: fill: %w", err)
		}
		r.Filled, r.FillPerSec = need, round1(rate)
	}

	var lat histogram
	cw := startCPU(c.pid)
	for range *queries {
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		q, err := queryNewest(owner, *page)
		if err != nil {
			errs.add("query", err)
			if !errors.As(err, new(*iqError)) {
				break // the stream is gone
			}
			continue
		}
		lat.add(time.Since(t0))
		r.ArchiveCount = q.count
		if q.got < *page {
			r.ShortPages++
		}
	}
	cpu, err := cw.stop()
	if err != nil {
		return err
	}
	r.Queries = int(lat.count())
	r.PerSec = cpu.perSecond(float64(r.Queries))
	if cpu.ServerCPU != nil && r.Queries > 0 {
		v := round3(*cpu.ServerCPU * 1000 / float64(r.Queries))
		r.ServerCPUPerQuery = &v
	}
	r.Latency, r.CPU, r.Errors = lat.latency(), cpu, errs.result()
	return e.emit(r)
}

// mamPage is what one archive query returned.
type mamPage struct {
	got   int // result messages received
	count int // archive size from RSM <count/>, or -1
}

// queryNewest asks for the newest n messages of the archive and reads the
// whole answer.
func queryNewest(cn *conn, n int) (mamPage, error) {
	id := cn.id("q")
	err := cn.send("<iq type='set' id='" + id + "'><query xmlns='" + nsMAM + "' queryid='" + id +
		"'><set xmlns='" + nsRSM + "'><max>" + strconv.Itoa(n) + "</max><before/></set></query></iq>")
	if err != nil {
		return mamPage{}, err
	}
	p := mamPage{count: -1}
	marker := []byte("queryid='" + id + "'")
	marker2 := []byte(`queryid="` + id + `"`)
	for {
		el, err := cn.next()
		if err != nil {
			return mamPage{}, err
		}
		switch name(el) {
		case "message":
			if bytes.Contains(el, marker) || bytes.Contains(el, marker2) {
				p.got++
			}
		case "iq":
			if attr(el, "id") != id {
				cn.answerIQ(el)
				continue
			}
			if attr(el, "type") != "result" {
				return mamPage{}, &iqError{errorCondition(el)}
			}
			nd, err := parseNode(el)
			if err != nil {
				return mamPage{}, err
			}
			if c := nd.find("count"); c != nil {
				p.count, _ = strconv.Atoi(strings.TrimSpace(c.Text))
			}
			return p, nil
		}
	}
}

// advertises reports whether disco#info on jid lists feature var.
func advertises(cn *conn, jid, feature string) (bool, error) {
	id := cn.id("disco")
	if err := cn.send("<iq type='get' id='" + id + "' to='" + escape(jid) + "'><query xmlns='" + nsDiscoInfo + "'/></iq>"); err != nil {
		return false, err
	}
	el, err := cn.waitIQ(id)
	if err != nil {
		return false, err
	}
	nd, err := parseNode(el)
	if err != nil {
		return false, err
	}
	q := nd.find("query")
	if q == nil {
		return false, nil
	}
	for _, f := range q.Children {
		if f.XMLName.Local != "feature" {
			continue
		}
		for _, a := range f.Attrs {
			if a.Name.Local == "var" && a.Value == feature {
				return true, nil
			}
		}
	}
	return false, nil
}

// fillArchive sends n chat messages from owner to contact, at most w
// waiting for delivery to the contact's session, and returns the rate.
func fillArchive(ctx context.Context, c *config, e env, owner *conn, contact string, n, w int) (float64, error) {
	var errs tally
	rcpt, err := openSession(ctx, &c.target, contact, c.pass, &errs)
	if err != nil {
		return 0, fmt.Errorf("login %s: %w", contact, err)
	}
	rcpt.setReadTimeout(0)
	sem := make(chan struct{}, w)
	var delivered atomic.Int64
	var reader sync.WaitGroup
	reader.Go(func() {
		for {
			el, err := rcpt.next()
			if err != nil {
				return
			}
			switch name(el) {
			case "message":
				delivered.Add(1)
				select {
				case <-sem:
				default:
				}
			case "iq":
				rcpt.answerIQ(el)
			}
		}
	})
	defer endStreams([]*conn{rcpt}, &reader, 3*time.Second)

	to := escape(contact + "@" + c.domain)
	e.log.Info("mam: filling the archive", "messages", n)
	t0 := time.Now()
	stall := time.NewTimer(c.timeout)
	defer stall.Stop()
	for i := range n {
		select {
		case sem <- struct{}{}:
			stall.Reset(c.timeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-stall.C:
			return 0, errors.New("no delivery within -timeout")
		}
		if err := owner.send("<message to='" + to + "' type='chat' id='f" + strconv.Itoa(i) + "'><body>archive filler " + strconv.Itoa(i) + "</body></message>"); err != nil {
			return 0, err
		}
		if i > 0 && i%10_000 == 0 {
			e.log.Info("mam: fill", "sent", i, "delivered", delivered.Load())
		}
	}
	for delivered.Load() < int64(n) {
		if time.Since(t0) > c.timeout+time.Duration(n)*time.Millisecond || !sleep(ctx, 10*time.Millisecond) {
			return 0, fmt.Errorf("%d of %d fill messages delivered", delivered.Load(), n)
		}
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

package server

import (
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
)

// Session is a bound client session. Its methods are safe for concurrent
// use; modules receive sessions in SessionStarter and SessionEnder calls and
// in the Delivery of Send routes.
//
// With stream management (XEP-0198) a session can outlive its connection:
// it then stays bound and available, queueing what is sent to it, until the
// client resumes it on a new connection or the resumption timeout ends it.
type Session struct {
	srv  *Server
	jid  jid.JID
	bare string

	// The outbound queue. A writer goroutine runs only while there is
	// something to write, so an idle session costs no goroutine and no
	// write buffer; at most one writer runs at a time.
	qmu   sync.Mutex
	conn  *conn // the current connection; nil while detached (hibernating or being resumed)
	last  *conn // the latest connection, whose reader a resumption waits for
	items []outItem
	spare []outItem
	max   int
	sm    *smState      // stream management, from <enable/> on; nil before
	csi   *csiState     // client state, from the first <inactive/> on; nil before
	final *StreamError  // written before </stream:stream>; nil for none
	done  chan struct{} // closed when the stream's end has been written
	gone  chan struct{} // closed when endSession has run: listeners told, values dropped

	held       bool // the bind result is not written yet: no writer may start
	writing    bool // a writer goroutine is running
	closed     bool // no more items; the writer ends the stream
	broken     bool // a write failed on a resumable session: wait for the reader to detach it
	resuming   bool // a new connection is taking the session over
	ended      bool // endSession ran
	doneClosed bool

	available atomic.Bool
	priority  atomic.Int32
	presence  atomic.Pointer[stanza.Stanza]

	values sessionValues // modules' SessionValues; see sessionvalue.go

	lastActive atomic.Int64 // unix nanoseconds of the last element read
	pingSent   atomic.Int64 // unix nanoseconds of an unanswered keepalive, or 0
}

// outItem is a stanza, or serialised bytes of a stream-level element (a
// nonza such as <a/>), which stream management does not count.
type outItem struct {
	st  *stanza.Stanza
	raw []byte
}

func newSession(c *conn, full jid.JID, max int) *Session {
	s := &Session{srv: c.srv, conn: c, last: c, jid: full, bare: full.Bare().String(), max: max, done: make(chan struct{}), gone: make(chan struct{}), held: true}
	s.lastActive.Store(time.Now().UnixNano())
	return s
}

// JID returns the session's full JID.
func (s *Session) JID() jid.JID { return s.jid }

// Available reports whether the session has sent available presence.
func (s *Session) Available() bool { return s.available.Load() }

// Priority returns the priority of the session's latest presence.
func (s *Session) Priority() int { return int(s.priority.Load()) }

// Presence returns the session's latest available presence, or nil.
func (s *Session) Presence() *stanza.Stanza { return s.presence.Load() }

// Send queues st for the client without blocking. If the client is too
// slow to keep its queue from filling up, the session is closed and Send
// reports false; it also reports false for a closing session. st must not
// be changed after Send.
//
// A session whose connection was lost but which its client may resume
// (XEP-0198) keeps queueing: Send reports true, and what the client never
// acknowledges is redelivered when the session ends.
func (s *Session) Send(st *stanza.Stanza) bool {
	return s.enqueue(outItem{st: st})
}

func (s *Session) enqueue(it outItem) bool {
	s.qmu.Lock()
	if s.closed {
		s.qmu.Unlock()
		return false
	}
	if it.st != nil && s.csi != nil && s.csi.inactive {
		if !isImportant(it.st) {
			if s.csi.hold(it) {
				s.qmu.Unlock()
				return true
			}
			it = outItem{} // held; the buffer is full: flush it
		}
		s.items = append(s.items, s.csi.take()...)
	}
	pending := len(s.items)
	if s.sm != nil {
		pending += len(s.sm.unacked)
	}
	if pending >= s.max {
		s.qmu.Unlock()
		// No JID: with the log's timestamp it would tell when the user
		// was online.
		s.srv.log.Warn("closing a session whose client does not keep up")
		s.srv.metrics.queueOverflows.Inc()
		s.close(streamErr(condPolicyViolation, "too many stanzas waiting for this client"))
		return false
	}
	if it.st != nil || it.raw != nil {
		s.items = append(s.items, it)
	}
	s.startWriterLocked()
	s.qmu.Unlock()
	return true
}

// startWriterLocked starts a writer if there is a connection to write to
// and none runs. qmu is held.
func (s *Session) startWriterLocked() {
	if s.held || s.writing || s.conn == nil || s.broken || (len(s.items) == 0 && !s.closed) {
		return
	}
	s.writing = true
	go s.writeLoop()
}

// release lets the session's writer run once the bind result is on the
// wire: what was queued before (by listeners, or routed to the new
// resource) follows the result instead of overtaking it.
func (s *Session) release() {
	s.qmu.Lock()
	s.held = false
	s.startWriterLocked()
	s.qmu.Unlock()
}

// close makes the writer write what is queued, then final (if any) and the
// closing stream tag, and close the connection for writing. A detached
// session ends at once.
func (s *Session) close(final *StreamError) {
	s.qmu.Lock()
	if s.closed {
		s.qmu.Unlock()
		return
	}
	s.closeLocked(final)
	detached := s.conn == nil && !s.resuming
	s.qmu.Unlock()
	if detached {
		// A resumption in progress sees closed and ends the session
		// itself; otherwise nobody reads for it, so end it here.
		go s.srv.endDetached(s)
	}
}

// closeFrom closes the session for its reader on c, unless c no longer
// owns it (it was resumed elsewhere), which it reports.
//
// The reader is done reading, so when no writer runs it writes the end of
// the stream itself instead of starting one.
func (s *Session) closeFrom(c *conn, final *StreamError) bool {
	s.qmu.Lock()
	if s.conn != c {
		s.qmu.Unlock()
		return false
	}
	inline := false
	if !s.closed {
		if !s.broken && !s.held && !s.writing {
			s.closed, s.final = true, final
			s.writing, inline = true, true
		} else {
			s.closeLocked(final)
		}
	}
	s.qmu.Unlock()
	if inline {
		s.writeLoop()
	}
	return true
}

func (s *Session) closeLocked(final *StreamError) {
	s.closed = true
	s.final = final
	if s.broken {
		s.markDoneLocked() // the connection is gone: nothing more to write
		return
	}
	s.startWriterLocked()
}

// markDoneLocked closes done once. qmu is held.
func (s *Session) markDoneLocked() {
	if !s.doneClosed {
		s.doneClosed = true
		close(s.done)
	}
}

// writeLoop writes batches until the queue is empty, borrowing a write
// buffer for each batch and flushing once per batch. After close, it
// writes the end of the stream and closes done.
func (s *Session) writeLoop() {
	for {
		s.qmu.Lock()
		c := s.conn
		items := s.items
		closing := s.closed
		if c == nil || s.broken || (len(items) == 0 && !closing) {
			s.writing = false
			s.qmu.Unlock()
			return
		}
		s.items = s.spare[:0]
		s.spare = nil
		var ack []byte
		if s.sm != nil {
			ack = s.sm.sent(items)
		}
		s.qmu.Unlock()

		c.nc.SetWriteDeadline(time.Now().Add(s.srv.limits.WriteTimeout))
		bw := getWriter(c.nc)
		var sent [stanza.IQKind + 1]uint64 // by kind, counted once per batch
		for i, it := range items {
			if it.st != nil {
				c.t.writeStanza(bw, it.st)
				sent[it.st.Kind]++
			} else {
				c.t.writeNonza(bw, it.raw)
			}
			items[i] = outItem{}
		}
		if ack != nil {
			c.t.writeNonza(bw, ack)
		}
		if closing {
			c.t.writeClose(bw, s.final)
		}
		err := bw.Flush()
		putWriter(bw)
		if err == nil {
			s.srv.metrics.sent(&sent)
		}
		s.qmu.Lock()
		if cap(items) <= 64 && s.spare == nil {
			s.spare = items[:0] // reuse a small slice; let a big one go
		}
		if err != nil && !closing && s.conn == c {
			if s.sm != nil && s.sm.id != "" {
				// What was written stays unacknowledged: the reader
				// detaches the session when it sees the connection go.
				s.broken = true
				s.writing = false
				s.qmu.Unlock()
				c.raw.Close()
				return
			}
			s.closed = true
			closing = true
			s.srv.metrics.writeFailed(err, s.sm == nil, len(s.items))
			if s.sm == nil {
				s.items = nil // as before stream management: lost with the connection
			}
			c.raw.Close()
		}
		if closing {
			s.writing = false
			if err == nil {
				c.closeWrite()
			}
			s.markDoneLocked()
			s.qmu.Unlock()
			return
		}
		s.qmu.Unlock()
	}
}

// takePendingLocked removes and returns the stanzas the client has not
// acknowledged or not been sent: written but unacknowledged first, then
// queued, then held back by client state indication. qmu is held.
//
// Without stream management there is nothing to tell written from
// received, and nothing is returned: a session whose writes failed
// dropped its queue, as a TCP connection drops what it buffered.
func (s *Session) takePendingLocked() []*stanza.Stanza {
	if s.sm == nil {
		return nil
	}
	var out []*stanza.Stanza
	add := func(items []outItem) {
		for _, it := range items {
			if it.st != nil {
				out = append(out, it.st)
			}
		}
	}
	if s.sm != nil {
		add(s.sm.unacked)
		s.sm.unacked = nil
	}
	add(s.items)
	s.items = nil
	if s.csi != nil {
		add(s.csi.take())
	}
	return out
}

package server

import (
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
)

// Session is a bound client session. Its methods are safe for concurrent
// use; modules receive sessions in SessionListener and Interceptor calls.
type Session struct {
	conn *conn
	jid  jid.JID
	bare string

	// The outbound queue. A writer goroutine runs only while there is
	// something to write, so an idle session costs no goroutine and no
	// write buffer; at most one writer runs at a time.
	qmu     sync.Mutex
	items   []outItem
	spare   []outItem
	max     int
	writing bool          // a writer goroutine is running
	closed  bool          // no more items; the writer ends the stream
	final   *StreamError  // written before </stream:stream>; nil for none
	done    chan struct{} // closed when the stream's end has been written

	available atomic.Bool
	priority  atomic.Int32
	presence  atomic.Pointer[stanza.Stanza]

	lastActive atomic.Int64 // unix nanoseconds of the last element read
	pingSent   atomic.Int64 // unix nanoseconds of an unanswered keepalive, or 0
}

type outItem struct {
	st  *stanza.Stanza
	raw []byte
}

func newSession(c *conn, full jid.JID, max int) *Session {
	s := &Session{conn: c, jid: full, bare: full.Bare().String(), max: max, done: make(chan struct{})}
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
func (s *Session) Send(st *stanza.Stanza) bool {
	return s.enqueue(outItem{st: st})
}

func (s *Session) enqueue(it outItem) bool {
	s.qmu.Lock()
	if s.closed {
		s.qmu.Unlock()
		return false
	}
	if len(s.items) >= s.max {
		s.qmu.Unlock()
		// No JID: with the log's timestamp it would tell when the user
		// was online.
		s.conn.srv.log.Warn("closing a session whose client does not keep up")
		s.close(streamErr(condPolicyViolation, "too many stanzas waiting for this client"))
		return false
	}
	s.items = append(s.items, it)
	start := !s.writing
	s.writing = true
	s.qmu.Unlock()
	if start {
		go s.writeLoop()
	}
	return true
}

// close makes the writer write what is queued, then final (if any) and the
// closing stream tag, and close the connection for writing.
func (s *Session) close(final *StreamError) {
	s.qmu.Lock()
	if s.closed {
		s.qmu.Unlock()
		return
	}
	s.closed = true
	s.final = final
	start := !s.writing
	s.writing = true
	s.qmu.Unlock()
	if start {
		go s.writeLoop()
	}
}

// writeLoop writes batches until the queue is empty, borrowing a write
// buffer for each batch and flushing once per batch. After close, it
// writes the end of the stream and closes done.
func (s *Session) writeLoop() {
	c := s.conn
	for {
		s.qmu.Lock()
		items := s.items
		s.items = s.spare[:0]
		s.spare = nil
		closing := s.closed
		if len(items) == 0 && !closing {
			s.writing = false
			s.spare = items
			s.qmu.Unlock()
			return
		}
		s.qmu.Unlock()

		c.nc.SetWriteDeadline(time.Now().Add(c.srv.limits.WriteTimeout))
		bw := getWriter(c.nc)
		for i, it := range items {
			if it.st != nil {
				it.st.WriteTo(bw)
			} else {
				bw.Write(it.raw)
			}
			items[i] = outItem{}
		}
		if closing {
			if s.final != nil {
				bw.Write(s.final.bytes())
			}
			bw.WriteString("</stream:stream>")
		}
		err := bw.Flush()
		putWriter(bw)
		s.qmu.Lock()
		if cap(items) <= 64 && s.spare == nil {
			s.spare = items[:0] // reuse a small slice; let a big one go
		}
		if err != nil && !closing {
			s.closed = true
			closing = true
			s.items = nil
			c.raw.Close()
		}
		s.qmu.Unlock()
		if closing {
			if err == nil {
				c.closeWrite()
			}
			close(s.done)
			return
		}
	}
}

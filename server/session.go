package server

import (
	"bufio"
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

	out  chan outItem
	quit chan struct{} // closed to make the writer finish
	done chan struct{} // closed when the writer has finished

	closeOnce sync.Once
	final     *StreamError // written before </stream:stream>; nil for none
	closing   atomic.Bool

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
	if s.closing.Load() {
		return false
	}
	select {
	case s.out <- it:
		return true
	default:
		s.conn.srv.log.Warn("closing a session whose client does not keep up", "jid", s.jid.String())
		s.close(streamErr(condPolicyViolation, "too many stanzas waiting for this client"))
		return false
	}
}

// close makes the writer write what is queued, then final (if any) and the
// closing stream tag, and close the connection.
func (s *Session) close(final *StreamError) {
	s.closeOnce.Do(func() {
		s.final = final
		s.closing.Store(true)
		close(s.quit)
	})
}

// writeLoop is the session's only writer.
func (s *Session) writeLoop(bw *bufio.Writer) {
	c := s.conn
	defer close(s.done)
	writeItem := func(it outItem) {
		if it.st != nil {
			it.st.WriteTo(bw)
		} else {
			bw.Write(it.raw)
		}
	}
	for {
		select {
		case it := <-s.out:
			c.nc.SetWriteDeadline(time.Now().Add(c.srv.limits.WriteTimeout))
			writeItem(it)
			for n := len(s.out); n > 0; n-- {
				writeItem(<-s.out)
			}
			if err := bw.Flush(); err != nil {
				s.close(nil)
				c.raw.Close()
				<-s.quit
				return
			}
		case <-s.quit:
			c.nc.SetWriteDeadline(time.Now().Add(c.srv.limits.WriteTimeout))
			for n := len(s.out); n > 0; n-- {
				writeItem(<-s.out)
			}
			if s.final != nil {
				bw.Write(s.final.bytes())
			}
			bw.WriteString("</stream:stream>")
			bw.Flush()
			c.closeWrite()
			return
		}
	}
}

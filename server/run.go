package server

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/kiez-im/kiez/stanza"
)

// run is the session's reader: it reads stanzas until the stream ends and
// hands each to the router, then tears the session down, or, when the
// connection was lost under stream management with resumption, leaves it
// waiting for its client.
func (c *conn) run(sess *Session) {
	defer c.runWG.Done()
	s := c.srv
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	var endErr error
	for {
		c.t.wait()
		start, err := c.t.next()
		if err != nil {
			endErr = err
			break
		}
		now := time.Now().UnixNano()
		sess.lastActive.Store(now)
		sess.pingSent.Store(0)
		if start.Name.Space == nsSM || start.Name.Space == nsCSI {
			if _, err := c.t.readElement(); err != nil {
				endErr = err
				break
			}
			if start.Name.Space == nsSM {
				err = c.smElement(sess, start)
			} else {
				err = sess.csiElement(start)
			}
			if err != nil {
				endErr = err
				break
			}
			continue
		}
		if stanza.KindOf(start.Name) == 0 || start.Name.Space != nsClient {
			endErr = streamErr(condUnsupportedStanza, "")
			break
		}
		st, err := c.t.readStanza(start)
		if err != nil {
			var ae *stanza.AddressError
			if errors.As(err, &ae) {
				if !st.IsError() {
					st.From = sess.jid
					reply := st.ErrorReply(ae.StanzaError())
					reply.From = sess.jid.Domain()
					sess.Send(reply)
				}
				c.handled(sess)
				continue
			}
			endErr = err
			break
		}
		if lateSession(st, sess) {
			st.From = sess.jid
			reply := st.ResultReply(nil)
			reply.From = sess.jid.Domain()
			sess.Send(reply)
			c.handled(sess)
			continue
		}
		s.router.inbound(ctx, sess, st)
		c.handled(sess)
	}
	var se *StreamError
	if errors.Is(endErr, io.EOF) {
		s.log.Debug("session ended by the client")
	} else {
		s.log.Debug("session ended", "cause", errKind(endErr))
	}
	if !errors.As(endErr, &se) && !errors.Is(endErr, io.EOF) {
		// The connection was lost without the stream being closed.
		c.raw.Close()
		if s.detach(sess, c) {
			return
		}
	}
	var owner bool
	switch {
	case errors.As(endErr, &se):
		owner = sess.closeFrom(c, se)
	default:
		owner = sess.closeFrom(c, nil) // the client closed its stream: close ours
	}
	if !owner {
		return // resumed on another connection
	}
	<-sess.done
	c.raw.Close()
	ectx, ecancel := endContext(ctx)
	defer ecancel()
	s.endSession(ectx, sess)
}

// handled counts a stanza from the client as handled for XEP-0198.
func (c *conn) handled(sess *Session) {
	if sm := sess.sm; sm != nil {
		sm.inH.Add(1)
	}
}

// endSession removes a finished session, redelivers what its client did
// not get, and tells everyone who cares. It runs once per session.
func (s *Server) endSession(ctx context.Context, sess *Session) {
	sess.qmu.Lock()
	if sess.ended {
		sess.qmu.Unlock()
		return
	}
	sess.ended = true
	pending := sess.takePendingLocked()
	sess.qmu.Unlock()
	s.forgetSM(sess)
	s.sessions.remove(sess)
	if len(pending) > 0 {
		s.router.redeliverUnacked(ctx, sess, pending)
	}
	if sess.available.Swap(false) {
		sess.presence.Store(nil)
		s.router.fromSession(ctx, sess, &stanza.Stanza{Kind: stanza.Presence, Type: "unavailable"})
	}
	for _, l := range s.enders {
		l.SessionEnded(ctx, sess)
	}
	sess.values.drop()
	close(sess.gone)
}

package server

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/kiez-im/kiez/stanza"
)

// run is the session's reader: it reads stanzas until the stream ends and
// hands each to the router, then tears the session down.
func (c *conn) run(sess *Session) {
	s := c.srv
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	var endErr error
	for {
		if c.br.Buffered() == 0 {
			// Wait for input here rather than deep inside the XML decoder:
			// an idle session then blocks on a shallow stack, which the
			// garbage collector can shrink. A read error recurs below.
			c.br.Peek(1)
		}
		start, err := c.in.next()
		if err != nil {
			endErr = err
			break
		}
		now := time.Now().UnixNano()
		sess.lastActive.Store(now)
		sess.pingSent.Store(0)
		if stanza.KindOf(start.Name) == 0 || start.Name.Space != nsClient {
			endErr = streamErr(condUnsupportedStanza, "")
			break
		}
		st, err := c.in.readStanza(start)
		if err != nil {
			var ae *stanza.AddressError
			if errors.As(err, &ae) {
				if !st.IsError() {
					st.From = sess.jid
					reply := st.ErrorReply(ae.StanzaError())
					reply.From = sess.jid.Domain()
					sess.Send(reply)
				}
				continue
			}
			endErr = err
			break
		}
		s.router.inbound(ctx, sess, st)
	}
	var se *StreamError
	if errors.Is(endErr, io.EOF) {
		s.log.Debug("session ended by the client")
	} else {
		s.log.Debug("session ended", "cause", errKind(endErr))
	}
	switch {
	case errors.As(endErr, &se):
		sess.close(se)
	case errors.Is(endErr, io.EOF):
		sess.close(nil) // the client closed its stream: close ours
	default:
		sess.close(nil)
		c.raw.Close()
	}
	<-sess.done
	c.raw.Close()
	c.end(ctx, sess)
}

// end removes a finished session and tells everyone who cares.
func (c *conn) end(ctx context.Context, sess *Session) {
	s := c.srv
	s.sessions.remove(sess)
	if sess.available.Swap(false) {
		sess.presence.Store(nil)
		s.router.inbound(ctx, sess, &stanza.Stanza{Kind: stanza.Presence, Type: "unavailable"})
	}
	for _, l := range s.sessionLs {
		l.SessionEnded(ctx, sess)
	}
}

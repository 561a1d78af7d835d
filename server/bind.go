package server

import (
	"encoding/xml"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
)

// bind binds a resource (RFC 6120 §7) and starts the session.
func (c *conn) bind(st *stanza.Stanza) (stepResult, error) {
	res := ""
	if _, r, ok := st.Child(xml.Name{Space: nsBind, Local: "bind"}); ok {
		res = resourceOf(r)
	}
	if res == "" {
		res = newID()[:12]
	}
	full, err := c.user.WithResource(res)
	if err != nil {
		return stepResult{}, c.reply(st.ErrorReply(mstanza.Error{Type: mstanza.Modify, Condition: mstanza.BadRequest}))
	}
	return c.startSession(full, func(*Session) error {
		result := st.ResultReply(bindResult(full))
		result.From = jid.JID{}
		return c.reply(result)
	})
}

// startSession starts a session of full on the connection: it registers
// it, tells the session listeners, and has answer tell the client (the
// bind result, or SASL2's success with Bind 2's bound) while the session
// is held, so nothing routed to it is written before.
func (c *conn) startSession(full jid.JID, answer func(*Session) error) (stepResult, error) {
	sess := newSession(c, full, c.srv.limits.QueueSize)
	c.mu.Lock()
	pending := c.pending
	if pending == nil {
		c.sess = sess
	}
	c.mu.Unlock()
	if pending != nil {
		return stepResult{}, pending
	}
	// The pre-authentication deadline ends here, before the session can be
	// closed (and get its closing deadline) by anyone else.
	c.raw.SetDeadline(time.Time{})
	// Register before answering, so that once the client knows its JID
	// the server routes to it. Stanzas routed meanwhile wait in the queue
	// (the session is held) and are written after the result.
	if old := c.srv.sessions.bind(sess); old != nil {
		old.close(streamErr(condConflict, "replaced by a new session with the same resource"))
	}
	// Listeners learn of the session before the client does, so that
	// nothing the client or anyone else does next can overtake them.
	ctx := c.ctx
	for _, l := range c.srv.starters {
		l.SessionStarted(ctx, sess)
	}
	if err := answer(sess); err != nil {
		c.srv.sessions.remove(sess)
		for _, l := range c.srv.enders {
			l.SessionEnded(ctx, sess)
		}
		sess.values.drop()
		return stepResult{}, err
	}
	c.negotiated()
	sess.release()
	return stepResult{state: stateBound, sess: sess}, nil
}

// negotiated drops what only negotiation needed, once a session runs on
// the connection.
func (c *conn) negotiated() {
	c.t.setLimit(c.srv.limits.MaxStanzaSize)
	c.bw = nil // the session's writer borrows buffers from now on
	c.tlsState, c.cbTypes = nil, nil
}

// legacySession answers RFC 3921 session establishment: a no-op kept for
// old clients.
func (c *conn) legacySession(st *stanza.Stanza) (stepResult, error) {
	return stepResult{}, c.reply(st.ResultReply(nil))
}

// lateSession reports whether st is an RFC 3921 session request sent
// after binding, where RFC 3921 §3 puts it and clients built on Strophe.js
// (Converse.js) send it even when it is optional: answered with a result,
// as the step is before binding.
func lateSession(st *stanza.Stanza, sess *Session) bool {
	if st.Kind != stanza.IQKind || st.Type != stanza.Set || !(st.To.String() == "" || st.To.Equal(sess.jid.Domain())) {
		return false
	}
	payload, _, ok := st.Payload()
	return ok && payload.Name == xml.Name{Space: nsSession, Local: "session"}
}

// resourceOf returns the text of <resource/> inside <bind/>.
func resourceOf(r xml.TokenReader) string {
	depth := 0
	in := false
	var b []byte
	for {
		t, err := r.Token()
		if err != nil {
			return string(b)
		}
		switch tt := t.(type) {
		case xml.StartElement:
			depth++
			in = depth == 2 && tt.Name.Local == "resource"
		case xml.EndElement:
			depth--
			in = false
		case xml.CharData:
			if in {
				b = append(b, tt...)
			}
		}
	}
}

func bindResult(full jid.JID) xml.TokenReader {
	return stanza.Elem(xml.Name{Space: nsBind, Local: "bind"}, nil,
		stanza.TextElem(xml.Name{Local: "jid"}, full.String()))
}

package server

import (
	"context"
	"encoding/xml"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
)

// bind handles an iq on an authenticated stream before a resource is bound.
// It returns the new session after a successful bind, nil to keep
// negotiating (the iq was answered), or an error that ends the stream.
func (c *conn) bind(start xml.StartElement, user jid.JID) (*Session, error) {
	st, err := c.in.readStanza(start)
	if err != nil {
		return nil, err
	}
	reply := func(r *stanza.Stanza) error {
		if err := r.WriteTo(c.bw); err != nil {
			return err
		}
		return c.bw.Flush()
	}
	payload, _, ok := st.Payload()
	switch {
	case ok && st.Type == stanza.Set && payload.Name == xml.Name{Space: nsSession, Local: "session"}:
		// RFC 3921 session establishment: a no-op kept for old clients.
		return nil, reply(st.ResultReply(nil))
	case !ok || st.Type != stanza.Set || payload.Name != (xml.Name{Space: nsBind, Local: "bind"}):
		// RFC 6120 §7.1: nothing but binding before a resource is bound.
		return nil, streamErr(condNotAuthorized, "bind a resource first")
	}
	res := ""
	if _, r, ok := st.Child(xml.Name{Space: nsBind, Local: "bind"}); ok {
		res = resourceOf(r)
	}
	if res == "" {
		res = newID()[:12]
	}
	full, err := user.WithResource(res)
	if err != nil {
		return nil, reply(st.ErrorReply(mstanza.Error{Type: mstanza.Modify, Condition: mstanza.BadRequest}))
	}
	sess := newSession(c, full, c.srv.limits.QueueSize)
	c.mu.Lock()
	pending := c.pending
	if pending == nil {
		c.sess = sess
	}
	c.mu.Unlock()
	if pending != nil {
		return nil, pending
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
	ctx := context.Background()
	for _, l := range c.srv.starters {
		l.SessionStarted(ctx, sess)
	}
	result := st.ResultReply(bindResult(full))
	result.From = jid.JID{}
	if err := reply(result); err != nil {
		c.srv.sessions.remove(sess)
		for _, l := range c.srv.enders {
			l.SessionEnded(ctx, sess)
		}
		sess.values.drop()
		return nil, err
	}
	c.in.setLimit(c.srv.limits.MaxStanzaSize)
	c.bw = nil // the session's writer borrows buffers from now on
	c.tlsState, c.cbTypes = nil, nil
	sess.release()
	return sess, nil
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

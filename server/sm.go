package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/kiez-im/kiez/stanza"
)

// XEP-0198 stream management.
const (
	nsSM = "urn:xmpp:sm:3"

	// smRequestEvery is how many stanzas the server writes before it asks
	// for an acknowledgement again while an earlier request is unanswered.
	smRequestEvery = 5
)

var smRequest = []byte(`<r xmlns='urn:xmpp:sm:3'/>`)

// smState is a session's stream management state, allocated by <enable/>.
// Fields other than inH are guarded by the session's qmu.
type smState struct {
	id      string        // resumption id; "" when the session cannot be resumed
	timeout time.Duration // how long a detached session waits for its client
	timer   *time.Timer   // ends a detached session

	inH atomic.Uint32 // stanzas from the client the server has handled

	enabled  []byte    // the queued <enabled/>, until it is written
	counting bool      // <enabled/> was written: stanzas written from now on count
	outH     uint32    // stanzas written to the client since <enabled/>
	acked    uint32    // the latest h the client acknowledged
	unacked  []outItem // written stanzas not yet acknowledged, oldest first
	sinceR   int       // stanzas written since the latest <r/>
	rPending bool      // an <r/> awaits its <a/>
}

// sent records a batch about to be written: its stanzas become
// unacknowledged. It returns an <r/> to write after the batch, or nil.
func (sm *smState) sent(items []outItem) []byte {
	for _, it := range items {
		if it.st == nil {
			// Count what follows <enabled/>, nothing queued before it.
			if !sm.counting && len(it.raw) > 0 && len(sm.enabled) > 0 && &it.raw[0] == &sm.enabled[0] {
				sm.counting = true
				sm.enabled = nil
			}
			continue
		}
		if sm.counting {
			sm.unacked = append(sm.unacked, it)
			sm.outH++
			sm.sinceR++
		}
	}
	if sm.sinceR > 0 && (!sm.rPending || sm.sinceR >= smRequestEvery) {
		sm.sinceR = 0
		sm.rPending = true
		return smRequest
	}
	return nil
}

// ack drops the stanzas the client acknowledges with h. It reports false
// when h acknowledges more than was sent.
func (sm *smState) ack(h uint32) bool {
	n := h - sm.acked // modulo 2^32, as the XEP wants
	if uint64(n) > uint64(len(sm.unacked)) {
		return false
	}
	m := copy(sm.unacked, sm.unacked[n:])
	clear(sm.unacked[m:])
	sm.unacked = sm.unacked[:m]
	if m == 0 && cap(sm.unacked) > 8 {
		sm.unacked = nil // an idle session keeps no big array
	}
	sm.acked = h
	sm.rPending = false
	return true
}

func smFailed(cond string) []byte {
	return []byte(`<failed xmlns='urn:xmpp:sm:3'><` + cond + ` xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>`)
}

// smTooHigh is the stream error for an h above what was sent (XEP-0198 §6).
func smTooHigh(h, sent uint32) *StreamError {
	se := streamErr(condUndefined, "acknowledged more stanzas than were sent")
	se.app = `<handled-count-too-high xmlns='urn:xmpp:sm:3' h='` + strconv.FormatUint(uint64(h), 10) +
		`' send-count='` + strconv.FormatUint(uint64(sent), 10) + `'/>`
	return se
}

func parseH(start xml.StartElement) (uint32, bool) {
	v, ok := stanza.LookupAttr(start.Attr, "h")
	if !ok {
		return 0, false
	}
	h, err := strconv.ParseUint(v, 10, 32)
	return uint32(h), err == nil
}

// smElement handles a stream management element on a bound session. An
// error ends the stream.
func (c *conn) smElement(sess *Session, start xml.StartElement) error {
	switch start.Name.Local {
	case "enable":
		c.smEnable(sess, start)
	case "r":
		if sess.sm == nil {
			sess.enqueue(outItem{raw: smFailed("unexpected-request")})
			return nil
		}
		sess.enqueue(outItem{raw: []byte(`<a xmlns='urn:xmpp:sm:3' h='` + strconv.FormatUint(uint64(sess.sm.inH.Load()), 10) + `'/>`)})
	case "a":
		if sess.sm == nil {
			return nil
		}
		h, ok := parseH(start)
		if !ok {
			return streamErr(condBadFormat, "<a/> needs a numeric h")
		}
		sess.qmu.Lock()
		ok = sess.sm.ack(h)
		sent := sess.sm.outH
		sess.qmu.Unlock()
		if !ok {
			return smTooHigh(h, sent)
		}
	case "resume":
		sess.enqueue(outItem{raw: smFailed("unexpected-request")}) // bound already
	default:
		return streamErr(condUnsupportedStanza, "")
	}
	return nil
}

// smEnable answers <enable/> on a bound session.
func (c *conn) smEnable(sess *Session, start xml.StartElement) {
	s := c.srv
	if sess.sm != nil {
		sess.enqueue(outItem{raw: smFailed("unexpected-request")})
		return
	}
	sm := &smState{timeout: s.limits.ResumeTimeout}
	reply := `<enabled xmlns='urn:xmpp:sm:3'/>`
	if v, _ := stanza.LookupAttr(start.Attr, "resume"); v == "true" || v == "1" {
		if v, ok := stanza.LookupAttr(start.Attr, "max"); ok {
			if n, err := strconv.ParseUint(v, 10, 32); err == nil && n > 0 && time.Duration(n)*time.Second < sm.timeout {
				sm.timeout = time.Duration(n) * time.Second
			}
		}
		sm.id = newSMID()
		secs := int64((sm.timeout + time.Second - 1) / time.Second)
		reply = `<enabled xmlns='urn:xmpp:sm:3' id='` + sm.id + `' resume='true' max='` + strconv.FormatInt(secs, 10) + `'/>`
	}
	enabled := []byte(reply)
	sm.enabled = enabled
	sess.qmu.Lock()
	sess.sm = sm
	sess.qmu.Unlock()
	if sm.id != "" {
		s.smMu.Lock()
		if s.smIDs == nil {
			s.smIDs = make(map[string]*Session)
		}
		s.smIDs[sm.id] = sess
		s.smMu.Unlock()
	}
	// The inbound count starts now: this element is no stanza, and the
	// reader handles nothing else meanwhile.
	sess.enqueue(outItem{raw: enabled})
}

// newSMID returns a resumption id of 192 random bits.
func newSMID() string {
	var b [24]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// forgetSM drops the session's resumption id.
func (s *Server) forgetSM(sess *Session) {
	sess.qmu.Lock()
	sm := sess.sm
	sess.qmu.Unlock()
	if sm == nil || sm.id == "" {
		return
	}
	s.smMu.Lock()
	if s.smIDs[sm.id] == sess {
		delete(s.smIDs, sm.id)
	}
	s.smMu.Unlock()
}

// detach parks a resumable session whose connection c was lost: it stays
// bound and available, queueing, until it is resumed or its timeout ends
// it. It reports false when c no longer owns the session or the session
// cannot be kept.
func (s *Server) detach(sess *Session, c *conn) bool {
	sess.qmu.Lock()
	if sess.conn != c || sess.closed || sess.sm == nil || sess.sm.id == "" {
		sess.qmu.Unlock()
		return false
	}
	s.mu.Lock()
	closing := s.closed
	s.mu.Unlock()
	if closing {
		sess.qmu.Unlock()
		return false
	}
	sess.conn = nil
	sess.broken = false
	sm := sess.sm
	if sm.timer != nil {
		sm.timer.Stop()
	}
	sm.timer = time.AfterFunc(sm.timeout, func() { s.expire(sess) })
	sess.qmu.Unlock()
	s.log.Debug("session detached, waiting for resumption")
	return true
}

// expire ends a detached session whose client did not come back.
func (s *Server) expire(sess *Session) {
	sess.qmu.Lock()
	if sess.conn != nil || sess.resuming || sess.closed {
		sess.qmu.Unlock()
		return
	}
	sess.closed = true
	sess.qmu.Unlock()
	s.log.Debug("detached session timed out")
	s.endDetached(sess)
}

// endDetached ends a closed session that has no connection.
func (s *Server) endDetached(sess *Session) {
	sess.qmu.Lock()
	if sess.sm != nil && sess.sm.timer != nil {
		sess.sm.timer.Stop()
	}
	sess.markDoneLocked()
	sess.qmu.Unlock()
	ctx, cancel := endContext(s.ctx)
	defer cancel()
	s.endSession(ctx, sess)
}

// endContext is the context of a session's teardown: it outlives the
// server's shutdown signal, so that what the session leaves behind still
// reaches storage, but not forever.
func endContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(parent), 30*time.Second)
}

// resume handles <resume/> on an authenticated stream not yet bound. The
// result carries the resumed session; without one, the resumption failed
// (the client was told) and the client may bind.
func (c *conn) resume(start xml.StartElement) (stepResult, error) {
	if _, err := c.t.readElement(); err != nil {
		return stepResult{}, err
	}
	return c.resumeWith(start, func(answer []byte, _ *Session) error {
		c.t.writeNonza(c.bw, answer)
		return c.bw.Flush()
	})
}

// resumeWith resumes the session a <resume/> element (start) names, and
// has write tell the client: a <failed/> (the session is nil) or
// <resumed/>, alone or inside SASL2's success.
func (c *conn) resumeWith(start xml.StartElement, write func(answer []byte, sess *Session) error) (stepResult, error) {
	s := c.srv
	failed := func(cond string) (stepResult, error) {
		return stepResult{}, write(smFailed(cond), nil)
	}
	fail := func() (stepResult, error) { return failed("item-not-found") }
	previd, _ := stanza.LookupAttr(start.Attr, "previd")
	h, ok := parseH(start)
	if previd == "" || !ok {
		return failed("bad-request")
	}
	s.smMu.Lock()
	sess := s.smIDs[previd]
	s.smMu.Unlock()
	if sess == nil || sess.bare != c.user.String() {
		return fail()
	}
	sess.qmu.Lock()
	if sess.closed || sess.resuming || sess.ended {
		sess.qmu.Unlock()
		return fail()
	}
	sess.resuming = true
	old := sess.last
	sess.conn = nil
	sess.qmu.Unlock()

	// Take the session from its previous connection, which may still look
	// alive: unblock its writer (a dead peer may have stopped reading),
	// tell it why it ends (XEP-0198 §5), and wait until its reader has
	// finished with the session, so that the inbound count is final.
	if old != nil && old != c {
		old.nc.SetWriteDeadline(time.Now())
		sess.waitWriter()
		old.nc.SetWriteDeadline(time.Now().Add(time.Second))
		bw := getWriter(old.nc)
		old.t.writeClose(bw, streamErr(condConflict, "the session was resumed on another connection"))
		bw.Flush()
		putWriter(bw)
		old.raw.Close()
		old.runWG.Wait()
	}
	sess.waitWriter()
	sess.qmu.Lock()
	sm := sess.sm
	if sess.closed {
		sess.resuming = false
		sess.qmu.Unlock()
		s.endDetached(sess)
		return fail()
	}
	if sm.timer != nil {
		sm.timer.Stop()
		sm.timer = nil
	}
	if !sm.ack(h) {
		sent := sm.outH
		sess.resuming = false
		sm.timer = time.AfterFunc(sm.timeout, func() { s.expire(sess) })
		sess.qmu.Unlock()
		return stepResult{}, smTooHigh(h, sent)
	}
	c.mu.Lock()
	pending := c.pending
	if pending == nil {
		c.sess = sess
	}
	c.mu.Unlock()
	if pending != nil {
		// The server is shutting down: the session ends with it.
		sess.resuming = false
		sess.closed = true
		sess.qmu.Unlock()
		s.endDetached(sess)
		return stepResult{}, pending
	}
	// Re-send what the client has not acknowledged, before what waits;
	// client state indication starts over as active (XEP-0352 §5.2).
	resend := append(sm.unacked, sess.items...)
	if sess.csi != nil {
		sess.csi.inactive = false
		resend = append(resend, sess.csi.take()...)
	}
	sess.items = resend
	sm.unacked = nil
	sm.outH = sm.acked
	sm.sinceR = 0
	sm.rPending = false
	inH := sm.inH.Load()
	sess.qmu.Unlock()

	c.raw.SetDeadline(time.Time{})
	err := write([]byte(`<resumed xmlns='urn:xmpp:sm:3' previd='`+escapeString(previd)+`' h='`+strconv.FormatUint(uint64(inH), 10)+`'/>`), sess)

	sess.qmu.Lock()
	sess.resuming = false
	sess.broken = false
	if err != nil {
		// Lost again: stay detached.
		sm.timer = time.AfterFunc(sm.timeout, func() { s.expire(sess) })
		closed := sess.closed
		sess.qmu.Unlock()
		if closed {
			s.endDetached(sess)
		}
		return stepResult{}, err
	}
	sess.conn = c
	sess.last = c
	sess.lastActive.Store(time.Now().UnixNano())
	sess.pingSent.Store(0)
	sess.startWriterLocked()
	sess.qmu.Unlock()
	c.negotiated()
	s.log.Debug("session resumed")
	for _, l := range s.resumers {
		l.SessionResumed(c.ctx, sess)
	}
	return stepResult{state: stateBound, sess: sess}, nil
}

// waitWriter waits until no writer runs. The session is detached, so
// none starts again.
func (s *Session) waitWriter() {
	for {
		s.qmu.Lock()
		w := s.writing
		s.qmu.Unlock()
		if !w {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// connLost closes the session's connection without a stream error, as a
// dead network would: a resumable session then waits for its client.
func (s *Session) connLost() {
	s.qmu.Lock()
	c := s.conn
	s.qmu.Unlock()
	if c != nil {
		c.raw.Close()
	}
}

// resumable reports whether the session has stream management with
// resumption.
func (s *Session) resumable() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.sm != nil && s.sm.id != ""
}

// detached reports whether the session currently has no connection.
func (s *Session) detached() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.conn == nil
}

package server

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
)

// streamState is what negotiation has established on a stream.
type streamState uint8

const (
	stateSecure streamState = 1 << iota // TLS is in place
	stateAuthn                          // the client authenticated
	stateBound                          // a session runs: a resource was bound or a session resumed

	nStates = 1 << 3
)

// A step is one part of stream negotiation (RFC 6120 §4.3), as a
// StreamFeature is in mellium.im/xmpp: it is offered while the stream's
// state has all of necessary and none of prohibited, advertised in the
// stream features then, and run when the client sends what it takes: a
// stream-level element (name; an empty Local takes every element of the
// namespace) or an iq (iqType, and iq, the payload's name).
//
// The server's steps, in the order of the features: STARTTLS, SASL, the
// modules' features offered before authentication, resource binding, the
// RFC 3921 session, stream management's resumption, client state
// indication, entity capabilities, the modules' features offered after
// authentication. A stanza that no offered step takes ends the stream
// with not-authorized (RFC 6120 §4.9.3.12).
type step struct {
	name       xml.Name
	iqType     string
	iq         xml.Name
	necessary  streamState
	prohibited streamState
	// required means the client must negotiate this step before any
	// other while it is offered (STARTTLS, RFC 6120 §5.3.1).
	required bool
	// feature is the element advertised; advertise, if set, appends one
	// that depends on the connection instead.
	feature   []byte
	advertise func(c *conn, b []byte) []byte
	// run takes the step's element, whose start was read; runIQ the
	// step's iq, read whole.
	run   func(c *conn, start xml.StartElement) (stepResult, error)
	runIQ func(c *conn, iq *stanza.Stanza) (stepResult, error)
	// module is the module that added the step; "" for the server's own.
	module string
}

// stepResult is what a step changed.
type stepResult struct {
	state   streamState // added to the stream's state
	restart bool        // the client opens a new stream next
	sess    *Session    // negotiation is over: the session runs
}

func (st *step) offered(s streamState) bool {
	return s&st.necessary == st.necessary && s&st.prohibited == 0
}

func (st *step) takes(name xml.Name) bool {
	return st.run != nil && st.name.Space == name.Space && (st.name.Local == "" || st.name.Local == name.Local)
}

// Stream features that never change.
const (
	featureStartTLS = `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>`
	featureBind     = `<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>`
	featureSession  = `<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>`
	featureSM       = `<sm xmlns='urn:xmpp:sm:3'/>`
	featureCSI      = `<csi xmlns='urn:xmpp:csi:0'/>`
)

// buildSteps assembles the negotiation steps with the modules' stream
// features, and the features element of each state where it does not
// depend on the connection. Two steps taking the same iq in the same
// state are an error naming both.
func (s *Server) buildSteps() error {
	authed := stateSecure | stateAuthn
	s.buildBind2()
	steps := []step{{
		name:       xml.Name{Space: nsTLS, Local: "starttls"},
		prohibited: stateSecure,
		required:   true,
		feature:    []byte(featureStartTLS),
		run:        (*conn).startTLSStep,
	}, saslStep(), s.sasl2Step()}
	steps = append(steps, s.moduleSteps(true)...)
	steps = append(steps,
		step{iqType: stanza.Set, iq: xml.Name{Space: nsBind, Local: "bind"}, necessary: authed, prohibited: stateBound,
			feature: []byte(featureBind), runIQ: (*conn).bind},
		step{iqType: stanza.Set, iq: xml.Name{Space: nsSession, Local: "session"}, necessary: authed, prohibited: stateBound,
			feature: []byte(featureSession), runIQ: (*conn).legacySession},
		step{name: xml.Name{Space: nsSM, Local: "resume"}, necessary: authed, prohibited: stateBound,
			feature: []byte(featureSM), run: (*conn).resume},
		// <enable/> and the rest come after binding (XEP-0198 §3).
		step{name: xml.Name{Space: nsSM}, necessary: authed, prohibited: stateBound, run: (*conn).smTooEarly},
		step{necessary: authed, prohibited: stateBound, feature: []byte(featureCSI)},
		step{necessary: authed, prohibited: stateBound, feature: []byte(s.capsFeature())},
	)
	steps = append(steps, s.moduleSteps(false)...)
	s.steps = steps
	for i := range steps {
		for j := range i {
			a, b := &steps[i], &steps[j]
			if a.runIQ == nil || b.runIQ == nil || a.iqType != b.iqType || a.iq != b.iq {
				continue
			}
			for st := range streamState(nStates) {
				if a.offered(st) && b.offered(st) {
					return fmt.Errorf("server: %s and %s both take iq %s {%s}%s during stream negotiation",
						stepOwner(b), stepOwner(a), a.iqType, a.iq.Space, a.iq.Local)
				}
			}
		}
	}
	for st := range streamState(nStates) {
		static := true
		var b []byte
		for i := range steps {
			if !steps[i].offered(st) {
				continue
			}
			if steps[i].advertise != nil {
				static = false
			}
			if steps[i].runIQ != nil {
				s.iqSteps[st] = true
			}
			b = append(b, steps[i].feature...)
		}
		if static {
			s.featureCache[st] = b
		}
	}
	return nil
}

func stepOwner(st *step) string {
	if st.module == "" {
		return "the server"
	}
	return "module " + st.module
}

// moduleSteps turns the modules' stream features offered before (or
// after) authentication into steps.
func (s *Server) moduleSteps(beforeAuth bool) []step {
	var out []step
	for _, f := range s.streamFeats {
		if f.BeforeAuth != beforeAuth {
			continue
		}
		st := step{necessary: stateSecure | stateAuthn, prohibited: stateBound, module: f.module}
		if beforeAuth {
			st.necessary, st.prohibited = stateSecure, stateAuthn
		}
		if f.Element != nil {
			var b bytes.Buffer
			stanza.WriteTokens(&b, stanza.Resolve(f.Element(), nsClient), nsClient)
			st.feature = b.Bytes()
		}
		out = append(out, st)
		for _, r := range f.IQRoutes {
			out = append(out, step{
				iqType: string(r.Type), iq: r.Payload,
				necessary: st.necessary, prohibited: st.prohibited, module: f.module,
				runIQ: func(c *conn, iq *stanza.Stanza) (stepResult, error) {
					return stepResult{}, c.streamIQ(f.module, r.Handler, iq)
				},
			})
		}
	}
	return out
}

// features returns the feature elements offered on the stream now.
func (c *conn) features() []byte {
	s := c.srv
	if b := s.featureCache[c.state]; b != nil {
		return b
	}
	var b []byte
	for i := range s.steps {
		st := &s.steps[i]
		if !st.offered(c.state) {
			continue
		}
		if st.advertise != nil {
			b = st.advertise(c, b)
		} else {
			b = append(b, st.feature...)
		}
	}
	return b
}

// open writes the server's opening of a stream, with a new id unless one
// was set since the last opening.
func (c *conn) open(from string) {
	if c.id == "" {
		c.id = newID()
	}
	c.t.writeOpen(c.bw, c.id, from)
}

// negotiate runs the stream from its first header to a bound (or resumed)
// session.
func (c *conn) negotiate() (*Session, error) {
	s := c.srv
	for {
		limit := s.limits.MaxPreAuthSize
		if c.state&stateAuthn != 0 {
			limit = s.limits.MaxStanzaSize
		}
		if c.t == nil {
			c.t = newTCPStream(c.br, nsClient, limit, s.limits.MaxDepth)
		} else {
			c.t.restart(limit)
		}
		h, err := c.t.readOpen()
		if err != nil {
			return nil, c.negErr(err)
		}
		c.id = "" // a new stream gets a new id
		if !s.local[h.to] {
			c.open("")
			return nil, streamErr(condHostUnknown, "")
		}
		if c.dom != "" && h.to != c.dom {
			c.open(c.dom)
			return nil, streamErr(condHostUnknown, "the domain changed during negotiation")
		}
		if major, _, _ := strings.Cut(h.version, "."); major != "1" {
			c.open(h.to)
			return nil, streamErr(condUnsupportedVersion, "")
		}
		c.dom, c.lng = h.to, h.lang
		c.open(c.dom)
		c.t.writeFeatures(c.bw, c.features())
		if err := c.bw.Flush(); err != nil {
			return nil, err
		}
		for {
			start, err := c.t.next()
			if err != nil {
				return nil, c.negErr(err)
			}
			res, err := c.step(start)
			if err != nil {
				return nil, c.negErr(err)
			}
			c.state |= res.state
			if res.sess != nil {
				return res.sess, nil
			}
			if res.restart {
				break
			}
		}
	}
}

// step runs the offered step that takes the element start.
func (c *conn) step(start xml.StartElement) (stepResult, error) {
	s := c.srv
	if kind := stanza.KindOf(start.Name); kind != 0 {
		// RFC 6120 §4.9.3.12: no stanzas before authentication and
		// binding, but for the iqs of offered steps.
		if kind != stanza.IQKind || !s.iqSteps[c.state] {
			return stepResult{}, streamErr(condNotAuthorized, "")
		}
		iq, err := c.t.readStanza(start)
		if err != nil {
			return stepResult{}, err
		}
		if payload, _, ok := iq.Payload(); ok {
			for i := range s.steps {
				st := &s.steps[i]
				if st.runIQ != nil && st.offered(c.state) && iq.Type == st.iqType && payload.Name == st.iq {
					return st.runIQ(c, iq)
				}
			}
		}
		return stepResult{}, c.notYet()
	}
	for i := range s.steps {
		st := &s.steps[i]
		if st.offered(c.state) && st.takes(start.Name) {
			return st.run(c, start)
		}
	}
	for i := range s.steps {
		if st := &s.steps[i]; st.required && st.offered(c.state) {
			return stepResult{}, streamErr(condPolicyViolation, requiredText(st))
		}
	}
	return stepResult{}, c.notYet()
}

// notYet is the stream error for an element the stream's state does not
// allow.
func (c *conn) notYet() error {
	if c.state&stateAuthn == 0 {
		return streamErr(condNotAuthorized, "authenticate first")
	}
	// RFC 6120 §7.1: nothing but binding before a resource is bound.
	return streamErr(condNotAuthorized, "bind a resource first")
}

func requiredText(st *step) string {
	if st.name.Space == nsTLS {
		return "STARTTLS is required"
	}
	return "<" + st.name.Local + "/> is required"
}

// negErr maps a timed-out read to connection-timeout.
func (c *conn) negErr(err error) error {
	c.mu.Lock()
	pending := c.pending
	c.mu.Unlock()
	if pending != nil {
		return pending
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return streamErr(condConnectionTimeout, "")
	}
	return err
}

// startTLSStep answers <starttls/> and runs the TLS handshake.
func (c *conn) startTLSStep(xml.StartElement) (stepResult, error) {
	if _, err := c.t.readElement(); err != nil {
		return stepResult{}, err
	}
	c.t.writeNonza(c.bw, []byte(`<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`))
	if err := c.bw.Flush(); err != nil {
		return stepResult{}, err
	}
	if err := c.startTLS(); err != nil {
		return stepResult{}, err
	}
	return stepResult{restart: true}, nil
}

// smTooEarly answers a stream management element other than <resume/>
// before a resource is bound.
func (c *conn) smTooEarly(xml.StartElement) (stepResult, error) {
	if _, err := c.t.readElement(); err != nil {
		return stepResult{}, err
	}
	c.t.writeNonza(c.bw, smFailed("unexpected-request"))
	return stepResult{}, c.bw.Flush()
}

// reply writes an answer to an iq during negotiation.
func (c *conn) reply(r *stanza.Stanza) error {
	if err := c.t.writeStanza(c.bw, r); err != nil {
		return err
	}
	return c.bw.Flush()
}

// streamIQ has a module's handler answer an iq sent during negotiation,
// exactly once and before it returns; its context carries the client's
// address (ClientAddr) and the stream's values (StreamValue). The iq has no from (the client is
// not authenticated, or has no resource yet) and, if the client gave
// none, the stream's domain as to.
func (c *conn) streamIQ(module string, h IQHandler, iq *stanza.Stanza) error {
	if iq.To.String() == "" {
		iq.To, _ = c.userJID("")
	}
	iq.From = c.user
	w := &streamResponse{c: c, iq: iq}
	ctx := context.WithValue(c.ctx, streamValuesKey{}, &c.values)
	if c.addr.IsValid() {
		ctx = context.WithValue(ctx, clientAddrKey{}, c.addr)
	}
	err := h.HandleIQ(ctx, stanza.IQ{Stanza: iq}, w)
	switch {
	case w.answered:
		if err != nil {
			c.srv.log.Warn("iq handler failed after answering", "module", module, "err", redact(err, iq))
		}
	case err != nil:
		if f, ok := refusal(err); ok {
			w.answered = true
			w.err = c.reply(iq.FailureReply(f))
			break
		}
		c.srv.log.Warn("iq handler failed", "module", module, "err", redact(err, iq))
		w.Error(mstanza.Error{Type: mstanza.Wait, Condition: mstanza.InternalServerError})
	default:
		w.Error(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
	}
	return w.err
}

// streamResponse answers an iq on the negotiating stream.
type streamResponse struct {
	c        *conn
	iq       *stanza.Stanza
	answered bool
	err      error // of the write
}

func (w *streamResponse) Result(payload xml.TokenReader) error {
	return w.send(w.iq.ResultReply(payload))
}

func (w *streamResponse) Error(e mstanza.Error) error {
	return w.send(w.iq.ErrorReply(e))
}

func (w *streamResponse) send(r *stanza.Stanza) error {
	if w.answered {
		return ErrAlreadyAnswered
	}
	w.answered = true
	w.err = w.c.reply(r)
	return w.err
}

var _ ResponseWriter = (*streamResponse)(nil)

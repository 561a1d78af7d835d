package server

import (
	"context"
	"encoding/xml"
	"errors"
	"strings"
	"sync/atomic"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/stanza"
)

// iq dispatches an iq get or set to the route for target, answering
// service-unavailable when none exists (RFC 6120 §8.4).
func (r *router) iq(ctx context.Context, st *stanza.Stanza, target Target) {
	if st.Type != stanza.Get && st.Type != stanza.Set {
		return // results and errors to the server are answers to its pings
	}
	payload, _, ok := st.Payload()
	if !ok {
		r.bounce(ctx, st, mstanza.Error{Type: mstanza.Modify, Condition: mstanza.BadRequest})
		return
	}
	k := routeKey{typ: mstanza.IQType(st.Type), payload: xmlName{payload.Name.Space, payload.Name.Local}, to: target}
	e, found := r.srv.iqRoutes[k]
	if !found && target == TargetSelf {
		k.to = TargetBare
		e, found = r.srv.iqRoutes[k]
	}
	if !found {
		r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
		return
	}
	r.runIQ(ctx, st, e)
}

// runIQ has the route's handler answer st, exactly once.
func (r *router) runIQ(ctx context.Context, st *stanza.Stanza, e routeEntry) {
	w := &responseWriter{ctx: ctx, r: r, iq: st}
	err := e.handler.HandleIQ(ctx, stanza.IQ{Stanza: st}, w)
	if w.answered.Load() {
		if err != nil {
			r.srv.log.Warn("iq handler failed after answering", "module", e.module, "err", redact(err, st))
		}
		return
	}
	if f, ok := refusal(err); ok {
		w.answered.Store(true)
		r.deliver(w.ctx, filter.Module, st.FailureReply(f))
		return
	}
	if err != nil {
		r.srv.log.Warn("iq handler failed", "module", e.module, "err", redact(err, st))
		w.Error(mstanza.Error{Type: mstanza.Wait, Condition: mstanza.InternalServerError})
		return
	}
	w.Error(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
}

// refusal reports whether an iq handler's error is a stanza error to
// answer with: a stanza.Failure (with an application-specific
// condition) or a mellium stanza.Error.
func refusal(err error) (stanza.Failure, bool) {
	var f stanza.Failure
	var se mstanza.Error
	switch {
	case err == nil:
		return f, false
	case errors.As(err, &f):
		return f, true
	case errors.As(err, &se):
		return stanza.Failure{Err: se}, true
	}
	return f, false
}

// responseWriter guarantees exactly one answer per iq.
type responseWriter struct {
	ctx      context.Context // the request's
	r        *router
	iq       *stanza.Stanza
	answered atomic.Bool
}

func (w *responseWriter) Result(payload xml.TokenReader) error {
	if w.answered.Swap(true) {
		return ErrAlreadyAnswered
	}
	w.r.deliver(w.ctx, filter.Module, w.iq.ResultReply(payload))
	return nil
}

func (w *responseWriter) Error(e mstanza.Error) error {
	if w.answered.Swap(true) {
		return ErrAlreadyAnswered
	}
	reply := w.iq.ErrorReply(e)
	w.r.deliver(w.ctx, filter.Module, reply)
	return nil
}

var _ ResponseWriter = (*responseWriter)(nil)

// redact returns the text of a module's error without the addresses of the
// stanza that caused it: with the log's timestamp, a user's address would
// tell when they were active.
func redact(err error, st *stanza.Stanza) string {
	text := err.Error()
	for _, j := range []string{st.From.String(), st.From.Bare().String(), st.To.String(), st.To.Bare().String()} {
		if j != "" {
			text = strings.ReplaceAll(text, j, "[user]")
		}
	}
	return text
}

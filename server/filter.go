package server

import (
	"context"
	"errors"
	"slices"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/stanza"
)

// ErrNotDelivered is returned by Host.SendTo when the session is closing
// (or gone) and did not take the stanza.
var ErrNotDelivered = errors.New("server: session closed; stanza not delivered")

// ModuleFilter is a filter a module puts on every stanza's path (see
// package filter), with its place in the order: filters of higher
// Priority run first; equal priorities run in Config.Modules order. All
// module filters run after Config.Filters.
type ModuleFilter struct {
	Priority int
	Filter   filter.Filter
}

// FilterProvider is implemented by modules that filter stanzas, such as
// blocking (XEP-0191).
type FilterProvider interface {
	Filters() []ModuleFilter
}

// buildFilters orders Config.Filters and the modules' filters into the
// one chain both phases run.
func (s *Server) buildFilters() {
	s.filters = append([]filter.Filter(nil), s.cfg.Filters...)
	var mod []ModuleFilter
	for _, m := range s.cfg.Modules {
		if p, ok := m.(FilterProvider); ok {
			for _, f := range p.Filters() {
				if f.Filter != nil {
					mod = append(mod, f)
				}
			}
		}
	}
	slices.SortStableFunc(mod, func(a, b ModuleFilter) int { return b.Priority - a.Priority })
	for _, f := range mod {
		s.filters = append(s.filters, f.Filter)
	}
}

// localAccount reports whether j is an address of a local account (bare
// or full).
func (s *Server) localAccount(j jid.JID) bool {
	return j.Localpart() != "" && s.local[j.Domainpart()]
}

// sendSide returns the account, domain or service whose sending side a
// stanza from j passes, and whether it is local at all.
func (s *Server) sendSide(j jid.JID) (jid.JID, bool) {
	d := j.Domainpart()
	if s.local[d] {
		return j.Bare(), true
	}
	if j.Localpart() == "" && s.services[d] != nil {
		return j.Domain(), true
	}
	return jid.JID{}, false
}

// originOf classifies a stanza a module or service hands to the router.
func (s *Server) originOf(st *stanza.Stanza) filter.Origin {
	if d := st.From.Domainpart(); !s.local[d] && s.services[d] != nil {
		return filter.Service
	}
	return filter.Module
}

// pass runs the filter chain for one side of st's path. It returns the
// stanza to go on with, or nil when a filter stopped it; the sender is
// answered if the filter asked for that and answer is set (a module's
// delivery of a stanza accepted earlier, such as a stored offline
// message, is not answered again).
func (r *router) pass(ctx context.Context, ph filter.Phase, origin filter.Origin, account jid.JID, st *stanza.Stanza, answer bool) *stanza.Stanza {
	fs := r.srv.filters
	if len(fs) == 0 {
		return st
	}
	out, err := filter.Run(ctx, fs, filter.Packet{Phase: ph, Origin: origin, Account: account, Stanza: st})
	if err == nil {
		return out
	}
	var f stanza.Failure
	var se mstanza.Error
	switch {
	case errors.Is(err, filter.ErrDrop):
	case !answer && (errors.As(err, &f) || errors.As(err, &se)):
	case errors.As(err, &f):
		r.reject(ctx, st, f)
	case errors.As(err, &se):
		r.reject(ctx, st, stanza.Failure{Err: se})
	default:
		r.srv.log.Warn("filter failed; stanza dropped", "phase", ph.String(), "err", err)
	}
	return nil
}

// sendPhase runs the sender's side of st's path, if st is from a local
// account, domain or service (see pass for answer).
func (r *router) sendPhase(ctx context.Context, origin filter.Origin, st *stanza.Stanza, answer bool) *stanza.Stanza {
	if len(r.srv.filters) == 0 {
		return st
	}
	if acct, ok := r.srv.sendSide(st.From); ok {
		return r.pass(ctx, filter.Send, origin, acct, st, answer)
	}
	return st
}

// receivePhase runs the recipient's side of st's path for the local
// account to (bare or full).
func (r *router) receivePhase(ctx context.Context, origin filter.Origin, to jid.JID, st *stanza.Stanza) *stanza.Stanza {
	return r.pass(ctx, filter.Receive, origin, to.Bare(), st, true)
}

// sendTo hands st, from a module, to one session: st passes the sender's
// side (if its sender is local) and the recipient's side of the session's
// account, then is queued to the session.
func (r *router) sendTo(ctx context.Context, sess *Session, st *stanza.Stanza) error {
	if st = r.sendPhase(ctx, filter.Module, st, false); st == nil {
		return filter.ErrDrop
	}
	if st = r.pass(ctx, filter.Receive, filter.Module, sess.jid.Bare(), st, false); st == nil {
		return filter.ErrDrop
	}
	if !sess.Send(st) {
		return ErrNotDelivered
	}
	return nil
}

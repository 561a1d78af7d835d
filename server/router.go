package server

import (
	"context"
	"encoding/xml"
	"strconv"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/stanza"
)

// router implements RFC 6120 §10 and RFC 6121 §8 delivery rules.
type router struct {
	srv *Server
}

var _ Router = (*router)(nil)

// Route delivers a stanza the server, a module or a service originates:
// it passes the sender's side of the filters (if its sender is local),
// then is routed by its 'to' like a client's.
func (r *router) Route(ctx context.Context, st *stanza.Stanza) error {
	origin := r.srv.originOf(st)
	if st = r.sendPhase(ctx, origin, st, true); st != nil {
		r.deliver(ctx, origin, st)
	}
	return nil
}

// inbound handles a stanza a client sent on a bound session.
func (r *router) inbound(ctx context.Context, from *Session, st *stanza.Stanza) {
	r.srv.metrics.in[st.Kind].Inc()
	r.fromSession(ctx, from, st)
}

// fromSession handles a stanza sent on behalf of a bound session: one
// its client sent (inbound), or the unavailable presence of a session
// that ended.
func (r *router) fromSession(ctx context.Context, from *Session, st *stanza.Stanza) {
	st.From = from.jid // never trust the client's from (RFC 6120 §8.1.2.1)
	if st = r.sendPhase(ctx, filter.Client, st, true); st == nil {
		return
	}
	if st.Kind != stanza.IQKind {
		d := &Delivery{Stanza: st, Account: from.jid.Bare(), Origin: filter.Client, Session: from}
		if !r.runRoutes(ctx, filter.Send, d) {
			return
		}
		st = d.Stanza
	}
	if st.To.String() == "" {
		switch st.Kind {
		case stanza.Presence:
			r.ownPresence(ctx, from, st)
			return
		case stanza.IQKind:
			r.iqSelf(ctx, st)
			return
		}
	}
	r.deliver(ctx, filter.Client, st)
}

// deliver routes st, which passed its sender's side, by its 'to' address;
// a stanza to a local account first passes the account's side of the
// filters.
func (r *router) deliver(ctx context.Context, origin filter.Origin, st *stanza.Stanza) {
	s := r.srv
	to := st.To
	if to.String() == "" {
		// Addressed to the sender's own account (RFC 6120 §10.3).
		to = st.From.Bare()
	}
	domain := to.Domainpart()
	switch {
	case s.local[domain]:
		if to.Localpart() != "" {
			if st = r.receivePhase(ctx, origin, to, st); st == nil {
				return
			}
		}
		if r.answer(st) {
			return
		}
		switch {
		case to.Localpart() == "" && to.Resourcepart() == "":
			r.toHost(ctx, st)
		case to.Localpart() == "":
			r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
		case to.Resourcepart() == "":
			r.toBare(ctx, origin, st, to)
		default:
			r.toFull(ctx, origin, st, to)
		}
	case s.services[domain] != nil:
		r.toService(ctx, st, s.services[domain])
	case s.components[domain] != nil:
		r.toComponent(ctx, st, s.components[domain])
	case s.cfg.Remote != nil:
		if err := s.cfg.Remote.RouteRemote(ctx, st); err != nil {
			r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.RemoteServerNotFound})
		}
	default:
		r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.RemoteServerNotFound})
	}
}

// bounce answers st with an error, unless st is itself an error.
func (r *router) bounce(ctx context.Context, st *stanza.Stanza, e mstanza.Error) {
	r.reject(ctx, st, stanza.Failure{Err: e})
}

// reject answers st with the error f, unless st is itself an error. The
// answer is the server's: it passes no sender's side of the filters.
func (r *router) reject(ctx context.Context, st *stanza.Stanza, f stanza.Failure) {
	if st.IsError() || st.From.String() == "" {
		return
	}
	if st.Kind == stanza.Presence && st.Type != "" && st.Type != "subscribe" {
		return // unavailable, probes and subscription answers are not bounced
	}
	reply := st.FailureReply(f)
	if reply.From.String() == "" {
		reply.From = st.From.Bare()
	}
	r.deliver(ctx, filter.Module, reply)
}

func (r *router) toHost(ctx context.Context, st *stanza.Stanza) {
	switch st.Kind {
	case stanza.IQKind:
		r.iq(ctx, st, TargetHost)
	case stanza.Message:
		if st.Type != "error" && st.Type != "headline" && st.Type != "groupchat" {
			r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
		}
	}
	// Presence to the server itself is not used without a roster module.
}

// iqSelf handles an iq without 'to': the server answers for the account.
func (r *router) iqSelf(ctx context.Context, st *stanza.Stanza) {
	if st.Type == stanza.Result || st.Type == stanza.Error {
		return
	}
	r.iq(ctx, st, TargetSelf)
}

func (r *router) toBare(ctx context.Context, origin filter.Origin, st *stanza.Stanza, to jid.JID) {
	s := r.srv
	bare := to.String()
	switch st.Kind {
	case stanza.IQKind:
		if st.Type == stanza.Result || st.Type == stanza.Error {
			return // answers to requests the server made for the account
		}
		if st.From.Bare().Equal(to) {
			r.iq(ctx, st, TargetSelf)
			return
		}
		if !s.userExists(ctx, bare) {
			r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
			return
		}
		r.iq(ctx, st, TargetBare)
	case stanza.Message:
		if st.Type == "groupchat" {
			r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
			return
		}
		if !s.sessions.hasUser(bare) && !s.userExists(ctx, bare) {
			if st.Type != "headline" {
				r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
			}
			return
		}
		if st = r.receiveRoutes(ctx, origin, to, st); st != nil {
			r.messageToBare(ctx, st, bare)
		}
	case stanza.Presence:
		// Receive routes take subscription stanzas (the presence module
		// applies RFC 6121's rules to the account's roster). Directed
		// presence to an account goes to all its available resources.
		if st = r.receiveRoutes(ctx, origin, to, st); st == nil || st.Type == "probe" {
			return
		}
		for _, sess := range s.sessions.userSessions(bare) {
			if sess.Available() {
				sess.Send(st)
			}
		}
	}
}

// receiveRoutes runs the Receive routes on a message to an existing local
// account, or on presence to a local account's bare JID. It returns the
// stanza to deliver, or nil when a route handled or refused it.
func (r *router) receiveRoutes(ctx context.Context, origin filter.Origin, account jid.JID, st *stanza.Stanza) *stanza.Stanza {
	d := &Delivery{Stanza: st, Account: account.Bare(), Origin: origin}
	if !r.runRoutes(ctx, filter.Receive, d) {
		return nil
	}
	return d.Stanza
}

// messageToBare implements RFC 6121 §8.5.2 for a message of an existing
// account that has passed the Receive routes.
func (r *router) messageToBare(ctx context.Context, st *stanza.Stanza, bare string) {
	s := r.srv
	var buf [8]*Session
	delivered := false
	for _, sess := range BareTargets(buf[:0], s.sessions.userSessions(bare), st.Type) {
		delivered = sess.Send(st) || delivered
	}
	if delivered {
		return
	}
	r.undelivered(ctx, st)
}

// undelivered offers a message to the UndeliveredHandlers (offline
// storage); with none taking it, chat and normal messages bounce.
func (r *router) undelivered(ctx context.Context, st *stanza.Stanza) {
	for _, h := range r.srv.undelivered {
		handled, err := h.HandleUndelivered(ctx, st)
		if err != nil {
			r.srv.log.Warn("undelivered handler failed", "err", err)
			continue
		}
		if handled {
			return
		}
	}
	if st.Type == "" || st.Type == "normal" || st.Type == "chat" {
		r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
	}
}

func (r *router) toFull(ctx context.Context, origin filter.Origin, st *stanza.Stanza, to jid.JID) {
	bare := to.Bare()
	sess := r.srv.sessions.lookup(bare.String(), to.Resourcepart())
	if st.Kind == stanza.Message && len(r.srv.routes[receiveMessages]) > 0 {
		if sess == nil && !r.srv.sessions.hasUser(bare.String()) && !r.srv.userExists(ctx, bare.String()) {
			r.bounceMissingResource(ctx, st)
			return
		}
		if st = r.receiveRoutes(ctx, origin, bare, st); st == nil {
			return
		}
		// A route may have waited (for storage): look again.
		sess = r.srv.sessions.lookup(bare.String(), to.Resourcepart())
	}
	if sess != nil {
		sess.Send(st)
		return
	}
	r.bounceMissingResource(ctx, st)
}

// bounceMissingResource handles a stanza to a full JID that has no
// session (RFC 6121 §8.5.3.2).
func (r *router) bounceMissingResource(ctx context.Context, st *stanza.Stanza) {
	switch st.Kind {
	case stanza.Message:
		switch st.Type {
		case "", "normal", "chat":
			bare := st.To.Bare().String()
			if !r.srv.sessions.hasUser(bare) && !r.srv.userExists(ctx, bare) {
				r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
				return
			}
			r.messageToBare(ctx, st, bare)
		case "groupchat":
			r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
		}
	case stanza.IQKind:
		r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
	}
}

// ownPresence handles presence without 'to' (RFC 6121 §4.2, §4.4, §4.5):
// the session's availability changes and the user's other available
// resources are told.
func (r *router) ownPresence(ctx context.Context, from *Session, st *stanza.Stanza) {
	switch st.Type {
	case "":
		prio := 0
		if p, ok := st.ChildText(xml.Name{Local: "priority"}); ok {
			if n, err := strconv.Atoi(p); err == nil && n >= -128 && n <= 127 {
				prio = n
			}
		}
		from.priority.Store(int32(prio))
		from.presence.Store(st)
		if !from.available.Swap(true) {
			// Initial presence: show the new resource its siblings.
			for _, sess := range r.srv.sessions.userSessions(from.bare) {
				if p := sess.Presence(); sess != from && p != nil {
					from.Send(p)
				}
			}
			defer func() {
				for _, l := range r.srv.availableLs {
					l.SessionAvailable(ctx, from)
				}
			}()
		}
	case "unavailable":
		from.available.Store(false)
		from.presence.Store(nil)
	default:
		return
	}
	for _, sess := range r.srv.sessions.userSessions(from.bare) {
		if sess != from && sess.Available() {
			sess.Send(st)
		}
	}
}

// redeliverUnacked handles the stanzas a session leaves behind when it
// ends before its client acknowledged or received them (XEP-0198 §5, "as
// a stanza sent to an unavailable resource"). The session is no longer in
// the registry. Messages to the user go again to the account's bare JID,
// reaching its other resources or the UndeliveredHandlers, without the
// Receive routes, which saw them already; errors, groupchat,
// carbons copies and archive results are dropped (they have other
// sources). Iq requests are answered with an error; presence is dropped.
func (r *router) redeliverUnacked(ctx context.Context, sess *Session, pending []*stanza.Stanza) {
	for _, st := range pending {
		switch st.Kind {
		case stanza.Message:
			if st.Type == "error" || st.Type == "groupchat" || stanza.Classify(st)&stanza.Forwarded != 0 {
				continue
			}
			if st.To.Bare().String() != sess.bare {
				continue
			}
			if !r.srv.userExists(ctx, sess.bare) {
				// The account was deleted: nothing is kept for it.
				r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
				continue
			}
			r.messageToBare(ctx, st, sess.bare)
		case stanza.IQKind:
			if st.Type == stanza.Get || st.Type == stanza.Set {
				r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
			}
		}
	}
}

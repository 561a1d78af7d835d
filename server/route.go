package server

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/stanza"
)

// TargetFull, for a StanzaRoute, takes stanzas addressed to a full JID.
// (IQ routes do not use it: an iq to a full JID goes to that session.)
const TargetFull Target = TargetBare + 1

// StanzaRoute takes messages or presence on one side of their path, as
// Prosody's events do ("pre-message/bare" is Side filter.Send, Kind
// stanza.Message, To TargetBare). Routes of one side and kind run in
// order of descending Priority, routes of equal priority in
// Config.Modules order, each on the stanza the one before passed on.
//
//   - Side filter.Send: a stanza a client of a local account sends, after
//     the sender's filters and before it is routed. Stanzas modules send
//     pass the filters but no Send routes, so that a module's own
//     broadcast does not come back to it.
//   - Side filter.Receive: a message to an existing local account, after
//     the recipient's filters and before it reaches the account's
//     sessions or its UndeliveredHandlers, whoever sent it (a client, a
//     module, a service, another server); likewise presence to a local
//     account's bare JID (subscription stanzas: the route checks that the
//     account exists), before it reaches the available sessions.
type StanzaRoute struct {
	Side filter.Phase
	Kind stanza.Kind // stanza.Message or stanza.Presence
	// Types are the stanza types taken ("" is a normal message or
	// available presence); none takes every type.
	Types []string
	// To takes stanzas to one kind of address: TargetSelf (no 'to'),
	// TargetHost (a domain), TargetBare or TargetFull; zero takes all.
	To       Target
	Priority int
	Handler  RouteHandler
}

// RouteProvider is implemented by modules that take messages or
// presence on their path.
type RouteProvider interface {
	StanzaRoutes() []StanzaRoute
}

// Delivery is a stanza on its path, as a RouteHandler sees it.
type Delivery struct {
	// Stanza is the stanza so far. A handler never changes it in place
	// (it may already be queued elsewhere): it sets Stanza to a changed
	// copy, which the routes after it and the delivery get.
	Stanza *stanza.Stanza
	// Account is the local account whose side this is: the sender's for
	// filter.Send, the recipient's for filter.Receive.
	Account jid.JID
	// Origin is where the stanza entered the server.
	Origin filter.Origin
	// Session is the session that sent the stanza (Send side), or nil.
	Session *Session
}

// RouteHandler takes a stanza on its path. It returns nil to let it go
// on, ErrHandled when it took care of it (the path ends there), a
// mellium stanza.Error or a stanza.Failure to refuse it (the sender gets
// the error), or another error, which is logged while the stanza goes
// on.
type RouteHandler interface {
	HandleRoute(ctx context.Context, d *Delivery) error
}

// RouteHandlerFunc adapts a function to RouteHandler.
type RouteHandlerFunc func(ctx context.Context, d *Delivery) error

// HandleRoute calls f.
func (f RouteHandlerFunc) HandleRoute(ctx context.Context, d *Delivery) error { return f(ctx, d) }

// receiveMessages is the table slot of Receive routes for messages.
const receiveMessages = 2

// routeTable holds the routes of one side and kind, in running order.
type routeTable []namedRoute

type namedRoute struct {
	StanzaRoute
	module string
}

// routeIndex returns the table slot of a side and kind.
func routeIndex(side filter.Phase, kind stanza.Kind) (int, bool) {
	if side != filter.Send && side != filter.Receive {
		return 0, false
	}
	if kind != stanza.Message && kind != stanza.Presence {
		return 0, false
	}
	i := 0
	if side == filter.Receive {
		i = 2
	}
	if kind == stanza.Presence {
		i++
	}
	return i, true
}

// addStanzaRoute checks r and adds it to its table.
func (s *Server) addStanzaRoute(module string, r StanzaRoute) error {
	i, ok := routeIndex(r.Side, r.Kind)
	switch {
	case !ok:
		return fmt.Errorf("server: module %s: a stanza route takes side send or receive and kind message or presence", module)
	case r.Handler == nil:
		return fmt.Errorf("server: module %s: stanza route %s %s has no handler", module, r.Side, r.Kind)
	case r.To > TargetFull:
		return fmt.Errorf("server: module %s: stanza route %s %s has an unknown target", module, r.Side, r.Kind)
	}
	s.routes[i] = append(s.routes[i], namedRoute{StanzaRoute: r, module: module})
	return nil
}

// sortRoutes puts each table in running order; equal priorities keep
// the order the modules were added in.
func (s *Server) sortRoutes() {
	for i := range s.routes {
		slices.SortStableFunc(s.routes[i], func(a, b namedRoute) int { return b.Priority - a.Priority })
	}
}

// targetOf classifies a stanza's 'to' for StanzaRoute.To.
func targetOf(to jid.JID) Target {
	switch {
	case to.String() == "":
		return TargetSelf
	case to.Localpart() == "" && to.Resourcepart() == "":
		return TargetHost
	case to.Resourcepart() == "":
		return TargetBare
	}
	return TargetFull
}

// runRoutes runs the routes of a side on d. It reports false when a
// handler ended the stanza's path (after bouncing it, if it refused it).
func (r *router) runRoutes(ctx context.Context, side filter.Phase, d *Delivery) bool {
	i, ok := routeIndex(side, d.Stanza.Kind)
	if !ok || len(r.srv.routes[i]) == 0 {
		return true
	}
	target := targetOf(d.Stanza.To)
	for _, rt := range r.srv.routes[i] {
		if rt.To != 0 && rt.To != target || len(rt.Types) > 0 && !slices.Contains(rt.Types, d.Stanza.Type) {
			continue
		}
		orig := d.Stanza
		err := rt.Handler.HandleRoute(ctx, d)
		if d.Stanza == nil {
			d.Stanza = orig
		}
		if err == nil {
			continue
		}
		var f stanza.Failure
		var se mstanza.Error
		switch {
		case errors.Is(err, ErrHandled):
			return false
		case errors.As(err, &f):
			r.reject(ctx, orig, f)
			return false
		case errors.As(err, &se):
			r.bounce(ctx, orig, se)
			return false
		default:
			r.srv.log.Warn("stanza route failed", "module", rt.module, "side", side.String(), "err", err)
		}
	}
	return true
}

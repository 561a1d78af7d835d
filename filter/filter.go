// Package filter defines the filters every stanza passes on its way
// through a Kiez server, whatever its origin: a client, a module, a
// sub-domain service, an external component, another server.
//
// A stanza's path has two sides. On the sender's side (Send) the server
// acts for the local account, domain or service the stanza is from, before
// routing it; on the recipient's side (Receive) it acts for the local
// account the stanza is to, before the stanza reaches the account's
// sessions, its offline storage or a module's handler. A stanza between
// two local accounts passes both sides; one from another server only the
// recipient's; one to another server only the sender's.
//
// A Filter sees a Packet and either passes the stanza (itself or a changed
// copy) or stops it: ErrDrop drops it silently, a stanza.Failure or a
// mellium stanza.Error drops it and answers the sender with that error.
//
// # Order
//
// On each side the server runs, in this order: the filters of
// server.Config.Filters in their order (the administrator's: IP and
// stanza filters), then the filters modules provide, by descending
// Priority, modules of equal priority in Config.Modules order. The first
// filter that stops a stanza ends the chain.
package filter

import (
	"context"
	"errors"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
)

// ErrDrop is returned by a filter to drop a stanza without an answer.
var ErrDrop = errors.New("filter: stanza dropped")

// Phase says on whose side of a stanza's path a filter runs.
type Phase uint8

// The two sides of a stanza's path.
const (
	// Send is the sender's side: a stanza from a local account (or a
	// local domain or service), before it is routed.
	Send Phase = iota + 1
	// Receive is the recipient's side: a stanza to a local account,
	// before it reaches the account's sessions, storage or handlers.
	Receive
)

func (p Phase) String() string {
	switch p {
	case Send:
		return "send"
	case Receive:
		return "receive"
	}
	return "unknown"
}

// Origin says where a stanza entered the server.
type Origin uint8

// Origins of stanzas.
const (
	// Client: a client's stream (TCP, TLS, later WebSocket).
	Client Origin = iota + 1
	// Module: a module of the server itself, through its Host (roster
	// pushes, presence broadcasts, offline delivery, bounces).
	Module
	// Service: a sub-domain service (conference.example.org).
	Service
	// Remote: another server (federation).
	Remote
	// Component: an external component (XEP-0114) attached to the
	// server, such as a gateway to another network; as for another
	// server, only the recipient's side runs.
	Component
)

func (o Origin) String() string {
	switch o {
	case Client:
		return "client"
	case Module:
		return "module"
	case Service:
		return "service"
	case Remote:
		return "remote"
	case Component:
		return "component"
	}
	return "unknown"
}

// Packet is a stanza on its path, as a filter sees it.
type Packet struct {
	Phase  Phase
	Origin Origin
	// Account is whose side this is: for Send the sender's bare JID (a
	// domain for the server itself or a service), for Receive the
	// recipient account's bare JID.
	Account jid.JID
	// Stanza must not be changed: it may already be queued elsewhere.
	// Return a changed copy (Stanza.Clone) instead.
	Stanza *stanza.Stanza
}

// Filter inspects a stanza on its path. It returns the stanza to pass on,
// p.Stanza or a changed copy, or an error that stops it: ErrDrop (no
// answer), a stanza.Failure or a mellium stanza.Error (answered to the
// sender, unless the stanza is itself an error), or any other error
// (logged; the stanza is dropped, so a failing filter fails closed).
type Filter interface {
	Filter(ctx context.Context, p Packet) (*stanza.Stanza, error)
}

// Func adapts a function to Filter.
type Func func(ctx context.Context, p Packet) (*stanza.Stanza, error)

// Filter calls f.
func (f Func) Filter(ctx context.Context, p Packet) (*stanza.Stanza, error) { return f(ctx, p) }

// Chain returns a filter that runs fs in order, each on the stanza the one
// before passed on, and stops at the first that stops the stanza.
func Chain(fs ...Filter) Filter {
	fs = append([]Filter(nil), fs...)
	return Func(func(ctx context.Context, p Packet) (*stanza.Stanza, error) {
		return Run(ctx, fs, p)
	})
}

// Run runs fs on p in order, as Chain's filter does, and returns the
// stanza the last one passed on, or the first error.
func Run(ctx context.Context, fs []Filter, p Packet) (*stanza.Stanza, error) {
	for _, f := range fs {
		st, err := f.Filter(ctx, p)
		if err != nil {
			return nil, err
		}
		if st != nil {
			p.Stanza = st
		}
	}
	return p.Stanza, nil
}

// Only returns a filter that runs f on the phase ph only and passes every
// stanza of the other phase.
func Only(ph Phase, f Filter) Filter {
	return Func(func(ctx context.Context, p Packet) (*stanza.Stanza, error) {
		if p.Phase != ph {
			return p.Stanza, nil
		}
		return f.Filter(ctx, p)
	})
}

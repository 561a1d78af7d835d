package server

import (
	"context"
	"net"
	"net/netip"
)

// ConnFilter decides which client connections the server serves, by the
// client's IP address, and learns how they authenticate (package
// filter/ipfilter is one). The server asks Admit in its accept loop,
// before the TLS handshake and before reading or writing a byte; a
// refused connection is closed at once, without a word: a stream error
// would first need the client's stream header (or, on direct TLS, a
// handshake), which is the work a refusal is there to save.
//
// For every admitted connection the server then reports exactly one of
// Authenticated (SASL succeeded) or Closed (it ended before that). It
// reports AuthFailed for failed SASL attempts that guess a password:
// a client that tries each offered mechanism in turn with the same
// password is counted once, a repeated mechanism again. When AuthFailed
// reports a ban, the stream ends with policy-violation.
//
// Connections without an IP address (an in-process pipe, a Unix socket)
// are not filtered.
type ConnFilter interface {
	Admit(addr netip.Addr) (allowed bool, reason string)
	Authenticated(addr netip.Addr)
	Closed(addr netip.Addr)
	AuthFailed(ctx context.Context, addr netip.Addr) (banned bool)
}

// remoteIP returns the IP address of a connection's peer, if it has one.
func remoteIP(nc net.Conn) (netip.Addr, bool) {
	switch a := nc.RemoteAddr().(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return ap.Addr().Unmap(), ap.Addr().IsValid()
	case *net.UDPAddr:
		ap := a.AddrPort()
		return ap.Addr().Unmap(), ap.Addr().IsValid()
	}
	return netip.Addr{}, false
}

// admit asks the connection filter about a new connection. It returns
// false if the connection must be closed; filtered says the filter
// counts it as unauthenticated until told otherwise.
func (s *Server) admit(nc net.Conn) (addr netip.Addr, filtered, ok bool) {
	addr, has := remoteIP(nc)
	f := s.cfg.ConnFilter
	if f == nil || !has {
		return addr, false, true
	}
	if allowed, reason := f.Admit(addr); !allowed {
		// The reason only: never the address.
		s.log.Debug("connection refused", "reason", reason)
		return netip.Addr{}, false, false
	}
	return addr, true, true
}

type clientAddrKey struct{}

// ClientAddr returns the IP address of the client whose stream an iq
// handler answers during stream negotiation (a StreamFeature's IQRoutes,
// such as XEP-0077 registration before authentication), for rate limits
// such as ipfilter's AllowRegistration. It reports false for other
// contexts and for streams without an IP address. The address is for
// decisions in memory: never log or store it.
func ClientAddr(ctx context.Context) (netip.Addr, bool) {
	a, ok := ctx.Value(clientAddrKey{}).(netip.Addr)
	return a, ok && a.IsValid()
}

// filterDone tells the connection filter that a connection it counts as
// unauthenticated no longer is: it authenticated, or it ended.
func (c *conn) filterDone(authenticated bool) {
	if !c.filtered {
		return
	}
	c.filtered = false
	if authenticated {
		c.srv.cfg.ConnFilter.Authenticated(c.addr)
	} else {
		c.srv.cfg.ConnFilter.Closed(c.addr)
	}
}

// authFailed reports a failed SASL attempt with mech to the connection
// filter, unless the client is only trying another mechanism (see
// ConnFilter). It reports whether the client's network is banned now.
func (c *conn) authFailed(mech string) bool {
	f := c.srv.cfg.ConnFilter
	if f == nil || !c.addr.IsValid() {
		return false
	}
	bit := uint16(1)
	for i, m := range mechsPlus {
		if m == mech {
			bit = 1 << (i + 1)
		}
	}
	// The first failure counts, and any failure with a mechanism that
	// failed before on this stream.
	first := c.failedMechs == 0
	repeat := c.failedMechs&bit != 0
	c.failedMechs |= bit
	if !first && !repeat {
		return false
	}
	return f.AuthFailed(c.ctx, c.addr)
}

package server

import (
	"context"
	"net"
)

// Listen opens a TCP listener for ServeC2S or ServeDirectTLS on addr (as
// net.Listen takes it). Its connections have the kernel's keepalive
// probes off: the server pings silent sessions itself (Limits.PingAfter)
// and bounds negotiation with Limits.PreAuthTimeout, so the probes would
// only add system calls to every connection.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(ctx, "tcp", addr)
}

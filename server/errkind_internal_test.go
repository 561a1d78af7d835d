package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestErrKindWords checks that the cause logged when a stream ends is
// words an administrator reads, never a Go type name such as
// *errors.errorString, and never the error's text (addresses).
func TestErrKindWords(t *testing.T) {
	opErr := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET),
		Source: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5222}, Addr: &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 40000}}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{io.ErrUnexpectedEOF, "connection closed in the middle of an element"},
		{fmt.Errorf("reading: %w", io.EOF), "connection closed by the client"},
		{net.ErrClosed, "connection closed by the server"},
		{context.Canceled, "server shutting down"},
		{context.DeadlineExceeded, "timeout"},
		{opErr, "connection reset by the client"},
		{&net.OpError{Op: "read", Net: "tcp", Err: errors.New("weird")}, "network error"},
		{streamErr(condPolicyViolation, "element larger than 10 bytes"), "stream error " + condPolicyViolation},
		{fmt.Errorf("tls handshake: %w", errors.New("tls: bad certificate")), "tls handshake failed"},
		{errors.New("something 192.0.2.1 said"), "internal error"},
	} {
		got := errKind(tc.err)
		if got != tc.want {
			t.Errorf("errKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if strings.ContainsAny(got, "*.") || strings.Contains(got, "errors") || strings.Contains(got, "192.0.2.1") {
			t.Errorf("errKind(%v) = %q: a Go type name or the error's text", tc.err, got)
		}
	}
}

package proxy65

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// rwConn is a net.Conn reading from r and discarding what is written.
type rwConn struct {
	r io.Reader
	net.Conn
}

func (c rwConn) Read(b []byte) (int, error)         { return c.r.Read(b) }
func (c rwConn) Write(b []byte) (int, error)        { return len(b), nil }
func (c rwConn) SetDeadline(t time.Time) error      { return nil }
func (c rwConn) SetReadDeadline(t time.Time) error  { return nil }
func (c rwConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzHandshake feeds the SOCKS5 reader arbitrary bytes: it never panics,
// and what it accepts is a 40-byte stream hash.
func FuzzHandshake(f *testing.F) {
	hash := strings.Repeat("a", 40)
	f.Add(append(append([]byte{5, 1, 0, 5, 1, 0, 3, 40}, hash...), 0, 0))
	f.Add([]byte{5, 2, 1, 2})
	f.Add([]byte{4, 1, 0})
	f.Add([]byte{5, 0})
	f.Add(append([]byte{5, 1, 0, 5, 1, 0, 1}, 127, 0, 0, 1, 0, 80))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := handshake(rwConn{r: bytes.NewReader(data)})
		if err == nil && len(got) != 40 {
			t.Fatalf("accepted a %d-byte hash", len(got))
		}
	})
}

package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"io"
	"testing"

	"github.com/kiez-im/kiez/stanza"
)

// wsClientFrame returns a client's frame: masked, with a zero key so
// that the fuzzer's changes to the payload stay readable.
func wsClientFrame(fin bool, op byte, payload []byte) []byte {
	b := []byte{op, 0x80}
	if fin {
		b[0] |= 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b[1] |= byte(n)
	case n <= 0xFFFF:
		b[1] |= 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] |= 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 0, 0, 0, 0)
	return append(b, payload...)
}

// FuzzWebSocket feeds arbitrary frames through a WebSocket stream's
// reading (frames, fragments, control frames, message and element limits,
// one element per message, <open/> and <close/>) and checks that it never
// panics or hangs, and that every stanza it accepts is written back as
// one frame holding one element that declares jabber:client.
func FuzzWebSocket(f *testing.F) {
	open := wsClientFrame(true, wsText, []byte(`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>`))
	f.Add(append(append(append([]byte(nil), open...),
		wsClientFrame(false, wsText, []byte(`<message xmlns='jabber:client' to='a@localhost'>`))...),
		append(wsClientFrame(true, wsPing, []byte("p")), wsClientFrame(true, wsContinuation, []byte(`<body>hi</body></message>`))...)...))
	for _, b := range fuzzSeeds(f, "../testdata/stream/*.xml") {
		f.Add(append(append([]byte(nil), open...), wsClientFrame(true, wsText, b)...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		wire := &wsWire{Conn: discardConn{}} // takes the pongs
		ws := newWebSocketStream(wire, bufio.NewReader(bytes.NewReader(data)), 4096, 16)
		if _, err := ws.readOpen(); err != nil {
			return
		}
		for n := 0; n < 100; n++ {
			start, err := ws.next()
			if err != nil {
				return
			}
			if stanza.KindOf(start.Name) == 0 {
				if _, err := ws.readElement(); err != nil {
					return
				}
				continue
			}
			st, err := ws.readStanza(start)
			var ae *stanza.AddressError
			if err != nil && !errors.As(err, &ae) {
				return
			}
			wsRoundTrip(t, ws, st)
		}
	})
}

// wsRoundTrip writes st as the server sends it on a WebSocket and checks
// the frame: its length, and one element declaring jabber:client.
func wsRoundTrip(t *testing.T, ws *websocketStream, st *stanza.Stanza) {
	t.Helper()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := ws.writeStanza(w, st); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	b := buf.Bytes()
	n, hl := int(b[1]&0x7F), 2
	switch n {
	case 126:
		n, hl = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		n, hl = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	if b[0] != 0x80|wsText || hl+n != len(b) {
		t.Fatalf("frame header % x for %d bytes", b[:hl], len(b))
	}
	d := xml.NewDecoder(bytes.NewReader(b[hl:]))
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("%q: %v", b[hl:], err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Space != nsClient {
				t.Fatalf("%q: namespace %q", b[hl:], se.Name.Space)
			}
			break
		}
	}
	if err := d.Skip(); err != nil {
		t.Fatalf("%q: %v", b[hl:], err)
	}
	if tok, err := d.Token(); err != io.EOF {
		t.Fatalf("%q: %v after the element (%v)", b[hl:], tok, err)
	}
}

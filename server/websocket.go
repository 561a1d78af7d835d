package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"unicode/utf8"

	"github.com/kiez-im/kiez/stanza"
)

// nsFraming is the namespace of RFC 7395's <open/> and <close/>.
const nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// WebSocket opcodes and close codes (RFC 6455 §5.2, §7.4.1).
const (
	wsContinuation = 0x0
	wsText         = 0x1
	wsBinary       = 0x2
	wsClose        = 0x8
	wsPing         = 0x9
	wsPong         = 0xA

	wsCloseNormal      = 1000
	wsCloseProtocol    = 1002
	wsCloseUnsupported = 1003
	wsCloseInvalidData = 1007
	wsClosePolicy      = 1008
	wsCloseTooBig      = 1009
)

// wsHeaderRoom is the room kept before a frame's payload for its header:
// two bytes, and eight of extended length at most (server frames are not
// masked).
const wsHeaderRoom = 10

// errWSAbort is the end of a WebSocket closed without <close/>: a lost
// connection, which under stream management leaves the session waiting
// for its client (RFC 7395 §3.6.2).
var errWSAbort = fmt.Errorf("server: websocket closed without <close/>: %w", syscall.ECONNRESET)

// websocketStream is the framing of RFC 7395 on a WebSocket (RFC 6455):
// <open/> and <close/> in urn:ietf:params:xml:ns:xmpp-framing instead of
// a stream header and its end, and each stanza or other top-level element
// alone in one text message, with its namespace declared. Messages are
// read whole, up to the element limit, and each is parsed as its own
// document; the text a message holds around its element may only be
// whitespace. Only the server side of RFC 6455 is here: text messages,
// fragmented or not, pings answered with pongs, close frames; no
// extensions.
type websocketStream struct {
	wire *wsWire       // the connection's writes, one frame at a time
	br   *bufio.Reader // the connection's reads

	limit, maxDepth int

	msg  []byte        // the message being parsed
	mr   bytes.Reader  // over msg
	mbr  *bufio.Reader // over mr
	x    *xmlIn        // over mbr
	have bool          // msg holds an element not yet read

	// code is the close code of an error the reader found (0: none);
	// peerClosed is set when the client sent its close frame; closed
	// when the server sent its own, after which nothing more is sent.
	code       atomic.Int32
	peerClosed atomic.Bool
	closed     atomic.Bool
}

// newWebSocketStream returns the framing of a WebSocket whose frames are
// read from br and written through wire, with elements (and messages) of
// at most limit bytes.
func newWebSocketStream(wire *wsWire, br *bufio.Reader, limit, maxDepth int) *websocketStream {
	t := &websocketStream{wire: wire, br: br, limit: limit, maxDepth: maxDepth}
	t.mbr = bufio.NewReaderSize(&t.mr, 512)
	t.x = newXMLIn(t.mbr, nsClient, limit, maxDepth)
	return t
}

// wsWire is the connection under a WebSocket: writes are serialised, so
// that the reader's pongs go between the frames the writer writes, and
// reads first drain what the HTTP server read past the upgrade request.
type wsWire struct {
	net.Conn
	mu  sync.Mutex
	pre *bufio.Reader // nil once drained
}

func (w *wsWire) Read(p []byte) (int, error) {
	if w.pre != nil {
		if w.pre.Buffered() > 0 {
			return w.pre.Read(p)
		}
		w.pre = nil
	}
	return w.Conn.Read(p)
}

// Write writes p, which holds whole frames only.
func (w *wsWire) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.Conn.Write(p)
}

// protoErr records the close code of a WebSocket protocol error and
// returns it as a stream error.
func (t *websocketStream) protoErr(code int, cond, text string) error {
	t.code.CompareAndSwap(0, int32(code))
	return streamErr(cond, text)
}

// readMessage reads the next text message that holds more than
// whitespace into t.msg, answering pings on the way. A close frame
// ends the input with errWSAbort (the <close/> element is the clean end).
func (t *websocketStream) readMessage() error {
	t.msg = t.msg[:0]
	if cap(t.msg) > maxKeptMessage {
		t.msg = nil
	}
	inMessage := false
	for {
		var h [14]byte
		if _, err := io.ReadFull(t.br, h[:2]); err != nil {
			return t.eof(err, inMessage || len(t.msg) > 0)
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0F
		if h[0]&0x70 != 0 {
			return t.protoErr(wsCloseProtocol, condNotWellFormed, "websocket extensions were not negotiated")
		}
		if h[1]&0x80 == 0 {
			return t.protoErr(wsCloseProtocol, condNotWellFormed, "websocket frames from clients must be masked")
		}
		n := uint64(h[1] & 0x7F)
		ext := 0
		switch n {
		case 126:
			ext = 2
		case 127:
			ext = 8
		}
		if _, err := io.ReadFull(t.br, h[2:2+ext+4]); err != nil {
			return t.eof(err, true)
		}
		switch ext {
		case 2:
			n = uint64(binary.BigEndian.Uint16(h[2:4]))
		case 8:
			n = binary.BigEndian.Uint64(h[2:10])
		}
		var key [4]byte
		copy(key[:], h[2+ext:])
		if op >= wsClose {
			if !fin || n > 125 {
				return t.protoErr(wsCloseProtocol, condNotWellFormed, "bad websocket control frame")
			}
			var p [125]byte
			if _, err := io.ReadFull(t.br, p[:n]); err != nil {
				return t.eof(err, true)
			}
			unmask(p[:n], key, 0)
			switch op {
			case wsClose:
				t.peerClosed.Store(true)
				return errWSAbort
			case wsPing:
				t.pong(p[:n])
			case wsPong:
			default:
				return t.protoErr(wsCloseProtocol, condNotWellFormed, "unknown websocket opcode")
			}
			continue
		}
		switch op {
		case wsText:
			if inMessage {
				return t.protoErr(wsCloseProtocol, condNotWellFormed, "websocket message started inside another")
			}
			inMessage = true
		case wsContinuation:
			if !inMessage {
				return t.protoErr(wsCloseProtocol, condNotWellFormed, "websocket continuation outside a message")
			}
		case wsBinary:
			return t.protoErr(wsCloseUnsupported, condUnsupportedEncoding, "only text messages carry XMPP (RFC 7395 §3.3.3)")
		default:
			return t.protoErr(wsCloseProtocol, condNotWellFormed, "unknown websocket opcode")
		}
		if n > uint64(t.limit-len(t.msg)) {
			return t.protoErr(wsCloseTooBig, condPolicyViolation, fmt.Sprintf("element larger than %d bytes", t.limit))
		}
		start := len(t.msg)
		t.msg = append(t.msg, make([]byte, n)...)
		if _, err := io.ReadFull(t.br, t.msg[start:]); err != nil {
			return t.eof(err, true)
		}
		unmask(t.msg[start:], key, 0)
		if !fin {
			continue
		}
		if !utf8.Valid(t.msg) {
			return t.protoErr(wsCloseInvalidData, condNotWellFormed, "a websocket text message must be UTF-8")
		}
		if len(bytes.TrimSpace(t.msg)) == 0 {
			// Whitespace alone (a keepalive some clients send) is no
			// element: wait for the next message.
			t.msg, inMessage = t.msg[:0], false
			continue
		}
		t.mr.Reset(t.msg)
		t.mbr.Reset(&t.mr)
		t.x.dec.Reset()
		t.x.reset()
		t.have = true
		return nil
	}
}

// maxKeptMessage is the largest message buffer kept between messages.
const maxKeptMessage = 4 << 10

// eof maps a read error: the end of input in the middle of a frame is
// unexpected, between frames a lost connection.
func (t *websocketStream) eof(err error, inside bool) error {
	if errors.Is(err, io.EOF) {
		if inside {
			return io.ErrUnexpectedEOF
		}
		return errWSAbort
	}
	return err
}

// unmask applies a client's masking key to p, whose first byte is at
// offset off of the payload.
func unmask(p []byte, key [4]byte, off int) {
	for i := range p {
		p[i] ^= key[(off+i)&3]
	}
}

// pong answers a ping right away, between the writer's frames.
func (t *websocketStream) pong(payload []byte) {
	if t.closed.Load() {
		return
	}
	f := make([]byte, 2+len(payload))
	f[0], f[1] = 0x80|wsPong, byte(len(payload))
	copy(f[2:], payload)
	t.wire.Write(f)
}

// rest checks that the message holds nothing but whitespace after the
// element just read (RFC 7395 §3.3.3: one element per message).
func (t *websocketStream) rest() error {
	t.have = false
	used := len(t.msg) - t.mr.Len() - t.mbr.Buffered()
	if len(bytes.TrimSpace(t.msg[used:])) != 0 {
		return streamErr(condNotWellFormed, "a websocket message must hold one element")
	}
	return nil
}

// mapErr turns the end of a message inside its element into the error
// RFC 7395 §3.3.3 calls it: an element cut short is not well-formed.
func mapErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return streamErr(condNotWellFormed, "a websocket message must hold a whole element")
	}
	return err
}

func (t *websocketStream) readOpen() (streamHeader, error) {
	var h streamHeader
	if err := t.readMessage(); err != nil {
		return h, err
	}
	start, err := t.x.next()
	if err != nil {
		return h, mapErr(err)
	}
	if start.Name.Space != nsFraming || start.Name.Local != "open" {
		return h, streamErr(condInvalidNamespace, "expected <open xmlns='"+nsFraming+"'/>")
	}
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "to":
			h.to = a.Value
		case a.Name.Space == "" && a.Name.Local == "version":
			h.version = a.Value
		case a.Name.Local == "lang" && (a.Name.Space == "xml" || a.Name.Space == stanza.NSXML):
			h.lang = a.Value
		}
	}
	if _, err := t.x.readElement(); err != nil {
		return h, mapErr(err)
	}
	return h, t.rest()
}

func (t *websocketStream) next() (xml.StartElement, error) {
	if t.have {
		// The element before was not read: only next was called.
		return xml.StartElement{}, streamErr(condInternalServerError, "")
	}
	if err := t.readMessage(); err != nil {
		return xml.StartElement{}, err
	}
	start, err := t.x.next()
	if err != nil {
		return start, mapErr(err)
	}
	if start.Name.Space == nsFraming {
		if start.Name.Local != "close" {
			return start, streamErr(condNotWellFormed, "<"+start.Name.Local+"/> where an element of the stream was expected")
		}
		if _, err := t.x.readElement(); err != nil {
			return start, mapErr(err)
		}
		if err := t.rest(); err != nil {
			return start, err
		}
		return start, io.EOF
	}
	return start, nil
}

func (t *websocketStream) readStanza(start xml.StartElement) (*stanza.Stanza, error) {
	s, err := t.x.readStanza(start)
	if err != nil {
		t.have = false
		return s, mapErr(err)
	}
	return s, t.rest()
}

func (t *websocketStream) readElement() ([]xml.Token, error) {
	toks, err := t.x.readElement()
	if err != nil {
		t.have = false
		return toks, mapErr(err)
	}
	return toks, t.rest()
}

func (t *websocketStream) wait() {
	if t.br.Buffered() == 0 {
		t.br.Peek(1)
	}
}

func (t *websocketStream) restart(limit int) { t.setLimit(limit) }

func (t *websocketStream) setLimit(limit int) {
	t.limit = limit
	t.x.setLimit(limit)
}

// wsBufs holds the buffers frames are built in.
var wsBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// frame writes one text message to w, its payload written by body, as a
// single write of whole frames: if it does not fit in w's buffer with
// what is there, that goes first, so the connection sees whole frames
// only and a pong can go between them.
func (t *websocketStream) frame(w *bufio.Writer, op byte, body func(b *bytes.Buffer) error) error {
	if t.closed.Load() {
		return nil
	}
	b := wsBufs.Get().(*bytes.Buffer)
	defer func() {
		if b.Cap() <= 64<<10 {
			wsBufs.Put(b)
		}
	}()
	b.Reset()
	var room [wsHeaderRoom]byte
	b.Write(room[:])
	if err := body(b); err != nil {
		return err
	}
	buf := b.Bytes()
	n := len(buf) - wsHeaderRoom
	var hl int
	switch {
	case n <= 125:
		hl = 2
	case n <= 0xFFFF:
		hl = 4
	default:
		hl = 10
	}
	f := buf[wsHeaderRoom-hl:]
	f[0] = 0x80 | op
	switch hl {
	case 2:
		f[1] = byte(n)
	case 4:
		f[1] = 126
		binary.BigEndian.PutUint16(f[2:], uint16(n))
	default:
		f[1] = 127
		binary.BigEndian.PutUint64(f[2:], uint64(n))
	}
	if len(f) > w.Available() && w.Buffered() > 0 {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	_, err := w.Write(f)
	return err
}

func (t *websocketStream) writeOpen(w *bufio.Writer, id, from string) {
	t.frame(w, wsText, func(b *bytes.Buffer) error {
		b.WriteString(`<open xmlns='` + nsFraming + `' id='`)
		b.WriteString(id)
		if from != "" {
			b.WriteString(`' from='`)
			b.WriteString(escapeString(from))
		}
		b.WriteString(`' version='1.0' xml:lang='en'/>`)
		return nil
	})
}

func (t *websocketStream) writeFeatures(w *bufio.Writer, inner []byte) {
	t.frame(w, wsText, func(b *bytes.Buffer) error {
		b.WriteString(`<stream:features xmlns:stream='` + nsStream + `'>`)
		b.Write(inner)
		b.WriteString("</stream:features>")
		return nil
	})
}

func (t *websocketStream) writeStanza(w *bufio.Writer, st *stanza.Stanza) error {
	return t.frame(w, wsText, func(b *bytes.Buffer) error { return st.WriteDeclared(b) })
}

func (t *websocketStream) writeNonza(w *bufio.Writer, elem []byte) {
	t.frame(w, wsText, func(b *bytes.Buffer) error { b.Write(elem); return nil })
}

// writeClose writes the stream error, if any, and <close/>, then the
// close frame: the server closes the WebSocket (RFC 7395 §3.6.1). After
// the client's close frame only the close frame answering it is sent.
func (t *websocketStream) writeClose(w *bufio.Writer, se *StreamError) {
	if !t.peerClosed.Load() {
		if se != nil {
			t.frame(w, wsText, func(b *bytes.Buffer) error {
				b.WriteString(`<stream:error xmlns:stream='` + nsStream + `'>`)
				b.Write(bytes.TrimPrefix(se.bytes(), []byte("<stream:error>")))
				return nil
			})
		}
		t.frame(w, wsText, func(b *bytes.Buffer) error {
			b.WriteString(`<close xmlns='` + nsFraming + `'/>`)
			return nil
		})
	}
	code := int(t.code.Load())
	if code == 0 {
		code = wsCloseNormal
		if se != nil && se.Condition == condPolicyViolation {
			code = wsClosePolicy
		}
	}
	t.frame(w, wsClose, func(b *bytes.Buffer) error {
		b.Write(binary.BigEndian.AppendUint16(nil, uint16(code)))
		return nil
	})
	t.closed.Store(true)
}

var _ transport = (*websocketStream)(nil)

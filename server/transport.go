package server

import (
	"bufio"
	"encoding/xml"

	"github.com/kiez-im/kiez/stanza"
)

// transport frames one XMPP stream on a connection: it reads the peer's
// stream openings and top-level elements, and writes the server's. The
// negotiation, the session's reader and its writer talk XML only through
// it, so a new framing is a new transport, not a new server: TCP and TLS
// streams (RFC 6120 §4, tcpStream) implement it, and so does WebSocket
// (RFC 7395, websocketStream: <open/> and <close/>, one element per
// message); server-to-server streams use content namespace jabber:server.
//
// Inside the server stanzas are in jabber:client; a transport maps its
// content namespace onto it when reading and back when writing.
//
// Writes go to w, which the caller owns and flushes: during negotiation a
// buffer of the connection's, afterwards one the session's writer borrows
// for each batch. Each write call writes whole top-level elements, so a
// transport that frames elements one by one can frame each call.
type transport interface {
	// readOpen reads the peer's opening of a stream.
	readOpen() (streamHeader, error)
	// next returns the start of the next top-level element, or io.EOF
	// when the peer closed its stream.
	next() (xml.StartElement, error)
	// readStanza reads the rest of the stanza whose start next returned.
	readStanza(start xml.StartElement) (*stanza.Stanza, error)
	// readElement reads the rest of any other element, returning its
	// inner tokens.
	readElement() ([]xml.Token, error)
	// wait blocks until input is available, on a shallow stack.
	wait()
	// restart makes the next readOpen read a new stream on the same
	// connection, as after STARTTLS and SASL (RFC 6120 §4.3.3), with
	// elements of at most limit bytes.
	restart(limit int)
	// setLimit changes the largest element accepted, in bytes.
	setLimit(limit int)

	// writeOpen writes the server's opening of the stream with the id
	// and, if not empty, the from address.
	writeOpen(w *bufio.Writer, id, from string)
	// writeFeatures writes the stream features element around inner,
	// the feature elements.
	writeFeatures(w *bufio.Writer, inner []byte)
	// writeStanza writes a stanza.
	writeStanza(w *bufio.Writer, st *stanza.Stanza) error
	// writeNonza writes a serialised stream-level element that declares
	// its namespace (SASL, stream management).
	writeNonza(w *bufio.Writer, elem []byte)
	// writeClose writes the stream error se, if not nil, and the end of
	// the stream.
	writeClose(w *bufio.Writer, se *StreamError)
}

// tcpStream is the framing of RFC 6120 §4 on a TCP or TLS connection: one
// XML document per stream, opened by <stream:stream> and restarted by a
// new header after STARTTLS and SASL.
type tcpStream struct {
	*xmlIn
}

// newTCPStream returns the framing of a stream with content namespace ns
// read from br.
func newTCPStream(br *bufio.Reader, ns string, limit, maxDepth int) *tcpStream {
	return &tcpStream{xmlIn: newXMLIn(br, ns, limit, maxDepth)}
}

func (t *tcpStream) readOpen() (streamHeader, error) { return t.readHeader() }

func (t *tcpStream) writeOpen(w *bufio.Writer, id, from string) {
	w.WriteString(`<?xml version='1.0'?><stream:stream xmlns='`)
	w.WriteString(t.ns)
	w.WriteString(`' xmlns:stream='http://etherx.jabber.org/streams' id='`)
	w.WriteString(id)
	if from != "" {
		w.WriteString(`' from='`)
		w.WriteString(escapeString(from))
	}
	w.WriteString(`' version='1.0' xml:lang='en'>`)
}

func (t *tcpStream) writeFeatures(w *bufio.Writer, inner []byte) {
	w.WriteString("<stream:features>")
	w.Write(inner)
	w.WriteString("</stream:features>")
}

func (t *tcpStream) writeStanza(w *bufio.Writer, st *stanza.Stanza) error {
	if t.ns == nsClient {
		return st.WriteTo(w)
	}
	return st.WriteIn(w, t.ns)
}

func (t *tcpStream) writeNonza(w *bufio.Writer, elem []byte) { w.Write(elem) }

func (t *tcpStream) writeClose(w *bufio.Writer, se *StreamError) {
	if se != nil {
		w.Write(se.bytes())
	}
	w.WriteString("</stream:stream>")
}

var _ transport = (*tcpStream)(nil)

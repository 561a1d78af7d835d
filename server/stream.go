package server

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kiez-im/kiez/server/internal/xmltok"
	"github.com/kiez-im/kiez/stanza"
)

// Namespaces used on c2s streams.
const (
	nsStream   = "http://etherx.jabber.org/streams"
	nsClient   = "jabber:client"
	nsStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsSASLCB   = "urn:xmpp:sasl-cb:0"
	nsStanzaEr = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// xmlIn decodes one XML stream: the header, then top-level elements. The
// tokenizer consumes from the connection's buffered reader only the bytes
// of the tokens it returns, and counts them against a per-element byte
// budget, so an oversized stanza is refused before it is buffered.
//
// Elements in the stream's content namespace (ns: jabber:client, or
// jabber:server on a server-to-server stream) are returned in jabber:client,
// the namespace stanzas have inside the server, whatever stream they came
// on.
type xmlIn struct {
	br       *bufio.Reader
	dec      *xmltok.Decoder
	ns       string
	limit    int
	maxDepth int
}

func newXMLIn(br *bufio.Reader, ns string, limit, maxDepth int) *xmlIn {
	x := &xmlIn{br: br, dec: xmltok.NewDecoder(br), ns: ns, limit: limit, maxDepth: maxDepth}
	x.dec.SetBudget(limit)
	return x
}

// restart reads a new stream from the same input, as after STARTTLS and
// SASL (RFC 6120 §4.3.3): the new header opens a new document.
func (x *xmlIn) restart(limit int) {
	x.dec.Reset()
	x.setLimit(limit)
}

// streamHeader is what a client's stream header says.
type streamHeader struct {
	to      string
	from    string // server-to-server streams
	id      string // the receiving server's, read by the initiating one
	version string
	lang    string
}

// readHeader reads the XML declaration (optional) and the stream header.
func (x *xmlIn) readHeader() (streamHeader, error) {
	var h streamHeader
	for {
		t, err := x.token()
		if err != nil {
			return h, err
		}
		switch tt := t.(type) {
		case xml.ProcInst:
			if tt.Target != "xml" {
				return h, streamErr(condRestrictedXML, "processing instructions are not allowed")
			}
			if enc := procInstParam(string(tt.Inst), "encoding"); enc != "" && !strings.EqualFold(enc, "utf-8") {
				return h, streamErr(condUnsupportedEncoding, "")
			}
		case xml.CharData:
			if len(bytes.TrimSpace(tt)) != 0 {
				return h, streamErr(condNotWellFormed, "text before the stream header")
			}
		case xml.StartElement:
			if tt.Name.Local != "stream" || tt.Name.Space != nsStream {
				return h, streamErr(condInvalidNamespace, "expected a stream header")
			}
			var defaultNS string
			for _, a := range tt.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "to":
					h.to = a.Value
				case a.Name.Space == "" && a.Name.Local == "from":
					h.from = a.Value
				case a.Name.Space == "" && a.Name.Local == "id":
					h.id = a.Value
				case a.Name.Space == "" && a.Name.Local == "version":
					h.version = a.Value
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					defaultNS = a.Value
				case a.Name.Local == "lang" && (a.Name.Space == "xml" || a.Name.Space == stanza.NSXML):
					h.lang = a.Value
				}
			}
			if defaultNS != x.ns {
				return h, streamErr(condInvalidNamespace, "the stream's default namespace must be "+x.ns)
			}
			x.reset()
			return h, nil
		default:
			return h, restricted(t)
		}
	}
}

// next returns the next top-level element's start, skipping whitespace
// between elements. It returns io.EOF when the client closed its stream.
func (x *xmlIn) next() (xml.StartElement, error) {
	for {
		t, err := x.token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch tt := t.(type) {
		case xml.StartElement:
			if tt.Name.Space == x.ns && x.ns != nsClient {
				tt.Name.Space = nsClient
			}
			return tt, nil
		case xml.EndElement:
			return xml.StartElement{}, io.EOF
		case xml.CharData:
			if len(bytes.TrimSpace(tt)) != 0 {
				return xml.StartElement{}, streamErr(condNotWellFormed, "text between stanzas")
			}
			x.reset()
		default:
			return xml.StartElement{}, restricted(t)
		}
	}
}

// readStanza reads the rest of a stanza element.
func (x *xmlIn) readStanza(start xml.StartElement) (*stanza.Stanza, error) {
	s, err := stanza.Read(x, start, x.maxDepth)
	x.reset()
	if s != nil && x.ns != nsClient {
		toClientNS(s.Inner, x.ns)
	}
	return s, x.wrap(err)
}

// toClientNS moves the elements of toks in namespace ns to jabber:client.
func toClientNS(toks []xml.Token, ns string) {
	for i, t := range toks {
		switch tt := t.(type) {
		case xml.StartElement:
			if tt.Name.Space == ns {
				tt.Name.Space = nsClient
				toks[i] = tt
			}
		case xml.EndElement:
			if tt.Name.Space == ns {
				tt.Name.Space = nsClient
				toks[i] = tt
			}
		}
	}
}

// wait blocks until input is available or the connection fails. An idle
// session waits here, on a shallow stack the garbage collector can shrink,
// rather than deep inside the decoder. A read error recurs on the next
// read.
func (x *xmlIn) wait() {
	if x.br.Buffered() == 0 {
		x.br.Peek(1)
	}
}

// readElement reads the rest of any element, returning its inner tokens.
func (x *xmlIn) readElement() ([]xml.Token, error) {
	toks, err := stanza.ReadElement(x, x.maxDepth)
	x.reset()
	return toks, x.wrap(err)
}

// Token implements xml.TokenReader with errors mapped to stream errors.
func (x *xmlIn) Token() (xml.Token, error) { return x.token() }

func (x *xmlIn) token() (xml.Token, error) {
	t, err := x.dec.Token()
	if err != nil {
		return nil, x.wrap(err)
	}
	return t, nil
}

// reset renews the byte budget at an element boundary.
func (x *xmlIn) reset() { x.dec.SetBudget(x.limit) }

// setLimit changes the per-element byte budget (after authentication).
func (x *xmlIn) setLimit(n int) { x.limit = n; x.dec.SetBudget(n) }

// wrap maps decoder and reader errors onto stream errors.
func (x *xmlIn) wrap(err error) error {
	var se *StreamError
	var syn *xmltok.SyntaxError
	var addr *stanza.AddressError
	switch {
	case err == nil, errors.As(err, &se), errors.As(err, &addr):
		return err
	case errors.Is(err, xmltok.ErrTooBig):
		return streamErr(condPolicyViolation, fmt.Sprintf("element larger than %d bytes", x.limit))
	case errors.Is(err, stanza.ErrTooDeep):
		return streamErr(condPolicyViolation, "elements nested too deeply")
	case errors.Is(err, stanza.ErrUnexpectedToken):
		return streamErr(condRestrictedXML, "")
	case errors.As(err, &syn):
		switch syn.Kind {
		case xmltok.Entity:
			return streamErr(condRestrictedXML, "entity references are not allowed")
		case xmltok.Char:
			return streamErr(condNotWellFormed, "invalid character data")
		case xmltok.Truncated:
			return io.ErrUnexpectedEOF
		}
		return streamErr(condNotWellFormed, "")
	}
	return err
}

func restricted(t xml.Token) error {
	switch t.(type) {
	case xml.Directive:
		return streamErr(condRestrictedXML, "DTDs and directives are not allowed")
	case xml.Comment:
		return streamErr(condRestrictedXML, "comments are not allowed")
	case xml.ProcInst:
		return streamErr(condRestrictedXML, "processing instructions are not allowed")
	}
	return streamErr(condRestrictedXML, "")
}

func procInstParam(inst, param string) string {
	i := strings.Index(inst, param+"=")
	if i < 0 {
		return ""
	}
	v := inst[i+len(param)+1:]
	if len(v) < 2 {
		return ""
	}
	q := v[0]
	if j := strings.IndexByte(v[1:], q); j >= 0 {
		return v[1 : j+1]
	}
	return ""
}

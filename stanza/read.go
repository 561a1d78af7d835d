package stanza

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"
)

var errEOF = io.EOF

// ErrTooDeep is returned by Read when an element nests deeper than allowed.
var ErrTooDeep = errors.New("stanza: elements nested too deeply")

// ErrUnexpectedToken is returned by Read for tokens that are not allowed
// inside a stanza on an XMPP stream (comments, processing instructions and
// directives: RFC 6120 §11.1 restricted XML).
var ErrUnexpectedToken = errors.New("stanza: restricted XML token")

// AddressError reports a malformed from or to attribute. The stanza was read
// completely; the caller answers it with a jid-malformed stanza error.
type AddressError struct {
	Attr string // "from" or "to"
	Err  error
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("stanza: malformed %s address: %v", e.Attr, e.Err)
}

func (e *AddressError) Unwrap() error { return e.Err }

// StanzaError returns the stanza error RFC 6120 §8.3.3.8 prescribes.
func (e *AddressError) StanzaError() mstanza.Error {
	return mstanza.Error{Type: mstanza.Modify, Condition: mstanza.JIDMalformed}
}

// Read reads the rest of the stanza whose start element was just read from
// r, buffering its inner tokens. Elements may nest at most maxDepth levels
// below the stanza element (0 means no limit).
//
// On an *AddressError the stanza is still returned, with the bad address
// left empty. Any other error means the stream is no longer usable.
func Read(r xml.TokenReader, start xml.StartElement, maxDepth int) (*Stanza, error) {
	s, addrErr := header(start)
	if s == nil {
		return nil, addrErr
	}
	inner, err := ReadElement(r, maxDepth)
	if err != nil {
		return nil, err
	}
	s.Inner = inner
	return s, addrErr
}

// header returns a stanza with the kind and addressing of start and no
// inner tokens. A nil stanza means start is no stanza; with a non-nil one
// the error is an *AddressError or nil.
func header(start xml.StartElement) (*Stanza, error) {
	s := &Stanza{Kind: KindOf(start.Name)}
	if s.Kind == 0 {
		return nil, fmt.Errorf("stanza: <%s/> is not a stanza", start.Name.Local)
	}
	var addrErr error
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "id":
			s.ID = a.Value
		case a.Name.Space == "" && a.Name.Local == "type":
			s.Type = a.Value
		case a.Name.Space == "" && (a.Name.Local == "from" || a.Name.Local == "to"):
			if a.Value == "" {
				continue
			}
			j, err := jid.Parse(a.Value)
			if err != nil {
				if addrErr == nil {
					addrErr = &AddressError{Attr: a.Name.Local, Err: err}
				}
				continue
			}
			if a.Name.Local == "from" {
				s.From = j
			} else {
				s.To = j
			}
		case a.Name.Local == "lang" && (a.Name.Space == NSXML || a.Name.Space == "xml"):
			s.Lang = a.Value
		case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
			// Namespace declarations are regenerated when writing.
		default:
			s.Attrs = append(s.Attrs, a)
		}
	}
	return s, addrErr
}

// ReadElement reads the children of an element whose start element was
// just read from r, up to and including its end element, and returns the
// inner tokens (copied). Elements may nest at most maxDepth levels (0 means
// no limit).
func ReadElement(r xml.TokenReader, maxDepth int) ([]xml.Token, error) {
	var inner []xml.Token
	depth := 0
	for {
		t, err := r.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch tt := t.(type) {
		case xml.StartElement:
			depth++
			if maxDepth > 0 && depth > maxDepth {
				return nil, ErrTooDeep
			}
			inner = append(inner, copyStart(tt))
		case xml.EndElement:
			if depth == 0 {
				return inner, nil
			}
			depth--
			inner = append(inner, tt)
		case xml.CharData:
			inner = append(inner, tt.Copy())
		default:
			return nil, fmt.Errorf("%w: %T", ErrUnexpectedToken, t)
		}
	}
}

// copyStart copies a start element, dropping namespace declarations (the
// writer regenerates them from resolved names).
func copyStart(se xml.StartElement) xml.StartElement {
	n := 0
	for _, a := range se.Attr {
		if !isNSDecl(a.Name) {
			n++
		}
	}
	if n == 0 {
		return xml.StartElement{Name: se.Name}
	}
	attrs := make([]xml.Attr, 0, n)
	for _, a := range se.Attr {
		if !isNSDecl(a.Name) {
			attrs = append(attrs, a)
		}
	}
	return xml.StartElement{Name: se.Name, Attr: attrs}
}

func isNSDecl(n xml.Name) bool {
	return n.Space == "xmlns" || (n.Space == "" && n.Local == "xmlns")
}

// FromTokens builds a stanza from a token reader that yields one complete
// stanza element, such as one made with mellium's stanza builders.
func FromTokens(r xml.TokenReader) (*Stanza, error) {
	for {
		t, err := r.Token()
		if err != nil {
			return nil, fmt.Errorf("stanza: no stanza element: %w", err)
		}
		if se, ok := t.(xml.StartElement); ok {
			return Read(r, se, 0)
		}
	}
}

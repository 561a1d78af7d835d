package stanza

import (
	"encoding/xml"

	mstanza "mellium.im/xmpp/stanza"
)

// ErrorReply returns the error stanza answering s (RFC 6120 §8.3): addresses
// swapped, type "error", the same id, and e as the error child. Message and
// presence errors carry the original child elements; iq errors do not.
func (s *Stanza) ErrorReply(e mstanza.Error) *Stanza {
	r := &Stanza{Kind: s.Kind, ID: s.ID, Type: Error, From: s.To, To: s.From, Lang: s.Lang}
	if s.Kind != IQKind {
		r.Inner = append(r.Inner, s.Inner...)
	}
	r.Inner = appendReader(r.Inner, e.TokenReader())
	return r
}

// ResultReply returns the iq result answering s with payload as its child
// (nil for an empty result).
func (s *Stanza) ResultReply(payload xml.TokenReader) *Stanza {
	r := &Stanza{Kind: IQKind, ID: s.ID, Type: Result, From: s.To, To: s.From}
	if payload != nil {
		r.Inner = appendReader(r.Inner, payload)
	}
	return r
}

// IsError reports whether s is of type error.
func (s *Stanza) IsError() bool { return s.Type == Error }

// appendReader appends every token of r, copied.
func appendReader(dst []xml.Token, r xml.TokenReader) []xml.Token {
	for {
		t, err := r.Token()
		if t != nil {
			switch tt := t.(type) {
			case xml.StartElement:
				dst = append(dst, copyStart(tt))
			case xml.EndElement, xml.CharData:
				dst = append(dst, xml.CopyToken(tt))
			}
		}
		if err != nil {
			return dst
		}
	}
}

// AppendChild appends the element read from r to the stanza's children.
func (s *Stanza) AppendChild(r xml.TokenReader) {
	s.Inner = appendReader(s.Inner, r)
}

package stanza

import (
	"encoding/xml"

	mstanza "mellium.im/xmpp/stanza"
)

// ErrorReply returns the error stanza answering s (RFC 6120 §8.3): addresses
// swapped, type "error", the same id, and e as the only child. The original
// content is not echoed (RFC 6120 §8.3.1 makes that optional): a bounce
// must never cost more than what caused it.
func (s *Stanza) ErrorReply(e mstanza.Error) *Stanza {
	r := &Stanza{Kind: s.Kind, ID: s.ID, Type: Error, From: s.To, To: s.From, Lang: s.Lang}
	r.Inner = appendResolved(r.Inner, e.TokenReader(), NSClient)
	return r
}

// ResultReply returns the iq result answering s with payload as its child
// (nil for an empty result).
func (s *Stanza) ResultReply(payload xml.TokenReader) *Stanza {
	r := &Stanza{Kind: IQKind, ID: s.ID, Type: Result, From: s.To, To: s.From}
	if payload != nil {
		r.Inner = appendResolved(r.Inner, payload, NSClient)
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
			case Raw:
				dst = append(dst, append(Raw(nil), tt...))
			}
		}
		if err != nil {
			return dst
		}
	}
}

// appendResolved appends every token of r, copied, giving elements without
// a namespace the namespace of their parent (builders such as mellium's
// leave Space empty to mean "inherited"), starting from parentNS.
func appendResolved(dst []xml.Token, r xml.TokenReader, parentNS string) []xml.Token {
	stack := []string{parentNS}
	for {
		t, err := r.Token()
		if t != nil {
			switch tt := t.(type) {
			case xml.StartElement:
				se := copyStart(tt)
				if se.Name.Space == "" {
					se.Name.Space = stack[len(stack)-1]
				}
				stack = append(stack, se.Name.Space)
				dst = append(dst, se)
			case xml.EndElement:
				if len(stack) > 1 {
					tt.Name.Space = stack[len(stack)-1]
					stack = stack[:len(stack)-1]
				}
				dst = append(dst, tt)
			case xml.CharData:
				dst = append(dst, tt.Copy())
			case Raw:
				dst = append(dst, append(Raw(nil), tt...))
			}
		}
		if err != nil {
			return dst
		}
	}
}

// Resolve returns a copy of the balanced tokens r yields with every element
// namespace made explicit, inheriting from parentNS where it is empty.
func Resolve(r xml.TokenReader, parentNS string) []xml.Token {
	return appendResolved(nil, r, parentNS)
}

// AppendChild appends the element read from r to the stanza's children.
func (s *Stanza) AppendChild(r xml.TokenReader) {
	s.Inner = appendResolved(s.Inner, r, NSClient)
}

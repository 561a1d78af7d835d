// Package stanza holds Kiez's stanza value: the header of a message,
// presence or iq element (its addressing attributes, parsed once) plus its
// inner XML, buffered as tokens so that it can be routed, cloned and written
// to many streams without re-parsing.
//
// mellium.im/xmpp/stanza is imported as mstanza throughout Kiez to keep the
// two apart; this package reuses its error and type definitions.
package stanza

import (
	"encoding/xml"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"
)

// Namespaces of the streams stanzas travel on.
const (
	NSClient = "jabber:client"
	NSServer = "jabber:server"
	NSXML    = "http://www.w3.org/XML/1998/namespace"
)

// Kind tells the three stanza kinds apart.
type Kind uint8

// The stanza kinds of RFC 6120 §8.
const (
	Message Kind = iota + 1
	Presence
	IQKind
)

// String returns the element name of the kind.
func (k Kind) String() string {
	switch k {
	case Message:
		return "message"
	case Presence:
		return "presence"
	case IQKind:
		return "iq"
	}
	return ""
}

// KindOf returns the kind for an element name, or 0 if the name is not a
// stanza (for example a stream-level element such as <r/>).
func KindOf(name xml.Name) Kind {
	if name.Space != NSClient && name.Space != NSServer && name.Space != "" {
		return 0
	}
	switch name.Local {
	case "message":
		return Message
	case "presence":
		return Presence
	case "iq":
		return IQKind
	}
	return 0
}

// Stanza is a message, presence or iq with its inner XML buffered.
//
// A Stanza handed to the router must not be changed afterwards: it may be
// queued to several sessions at once. Use Clone to get a copy to change.
type Stanza struct {
	Kind Kind
	ID   string
	Type string
	Lang string
	From jid.JID
	To   jid.JID
	// Attrs are the remaining attributes of the stanza element, in document
	// order (never id, type, from, to, xml:lang or namespace declarations).
	Attrs []xml.Attr
	// Inner are the child tokens: StartElement, EndElement and CharData,
	// and Raw for stored XML written out verbatim.
	// An element's Name.Space is its namespace URI, always explicit ("" is
	// no namespace); the builders (AppendChild, ResultReply, ErrorReply)
	// fill in inherited namespaces, see Resolve.
	Inner []xml.Token
}

// Raw is serialised XML kept among a stanza's Inner tokens and written
// verbatim, so that stored messages (offline storage, the archive) can be
// sent again without parsing them. It must be a sequence of complete
// elements and character data that is well-formed where it is placed: an
// element whose namespace differs from its parent's must declare it (as
// WriteTokens writes it). Only this package's writer understands Raw;
// readers such as Child and ChildText skip it.
type Raw []byte

// IQ is an iq stanza handed to an IQ handler.
type IQ struct {
	*Stanza
}

// IQ types, re-exported from mellium for convenience.
const (
	Get    = string(mstanza.GetIQ)
	Set    = string(mstanza.SetIQ)
	Result = string(mstanza.ResultIQ)
	Error  = string(mstanza.ErrorIQ)
)

// StartElement returns the stanza's start element in the jabber:client
// namespace, with all its attributes.
func (s *Stanza) StartElement() xml.StartElement {
	attrs := make([]xml.Attr, 0, 5+len(s.Attrs))
	if s.ID != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "id"}, Value: s.ID})
	}
	if s.Type != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "type"}, Value: s.Type})
	}
	if !s.From.Equal(jid.JID{}) {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "from"}, Value: s.From.String()})
	}
	if !s.To.Equal(jid.JID{}) {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "to"}, Value: s.To.String()})
	}
	if s.Lang != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Space: NSXML, Local: "lang"}, Value: s.Lang})
	}
	attrs = append(attrs, s.Attrs...)
	return xml.StartElement{Name: xml.Name{Space: NSClient, Local: s.Kind.String()}, Attr: attrs}
}

// TokenReader returns a reader over the whole stanza: start element, inner
// tokens and end element.
func (s *Stanza) TokenReader() xml.TokenReader {
	return &tokenReader{s: s, i: -1}
}

type tokenReader struct {
	s *Stanza
	i int
}

func (r *tokenReader) Token() (xml.Token, error) {
	switch {
	case r.i < 0:
		r.i++
		return r.s.StartElement(), nil
	case r.i < len(r.s.Inner):
		t := r.s.Inner[r.i]
		r.i++
		return t, nil
	case r.i == len(r.s.Inner):
		r.i++
		return xml.EndElement{Name: xml.Name{Space: NSClient, Local: r.s.Kind.String()}}, nil
	}
	return nil, errEOF
}

// Clone returns a deep copy of s that can be changed freely.
func (s *Stanza) Clone() *Stanza {
	c := *s
	c.Attrs = append([]xml.Attr(nil), s.Attrs...)
	c.Inner = make([]xml.Token, len(s.Inner))
	for i, t := range s.Inner {
		c.Inner[i] = xml.CopyToken(t)
	}
	return &c
}

// Payload returns the first child element's start element and a reader
// over that element (start to end, inclusive). ok is false when s has no
// child element.
func (s *Stanza) Payload() (start xml.StartElement, r xml.TokenReader, ok bool) {
	el, ok := s.PayloadElement()
	if !ok {
		return xml.StartElement{}, nil, false
	}
	return el.Start(), &sliceReader{toks: el.toks}, true
}

// Child returns a reader over the first child element with the given name
// (an empty Space matches any namespace), and whether one exists.
func (s *Stanza) Child(name xml.Name) (xml.StartElement, xml.TokenReader, bool) {
	el, ok := s.ChildElement(name)
	if !ok {
		return xml.StartElement{}, nil, false
	}
	return el.Start(), &sliceReader{toks: el.toks}, true
}

// HasChild reports whether s has a direct child element with that name.
func (s *Stanza) HasChild(name xml.Name) bool {
	_, ok := s.ChildElement(name)
	return ok
}

// ChildText returns the character data of the first direct child element
// with the given name, such as a message body.
func (s *Stanza) ChildText(name xml.Name) (string, bool) {
	el, ok := s.ChildElement(name)
	if !ok {
		return "", false
	}
	return el.Text(), true
}

type sliceReader struct {
	toks []xml.Token
	i    int
}

func (r *sliceReader) Token() (xml.Token, error) {
	if r.i >= len(r.toks) {
		return nil, errEOF
	}
	t := r.toks[r.i]
	r.i++
	return t, nil
}

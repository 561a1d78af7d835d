package stanza

import (
	"encoding/xml"
	"iter"
	"slices"
	"strings"
)

// Element is a view of one element among buffered tokens (a stanza's
// Inner, or tokens Resolve returned): its name and its tokens, from its
// start element to its end element. It copies nothing, so the tokens must
// not be changed while it is in use (tokens are never changed in place in
// Kiez). Its iterators yield only elements: character data and Raw (stored
// XML, whose content is unknown) are skipped.
//
// The zero Element has no name, no attributes and no children.
type Element struct {
	// Name is the element's name; its Space is the namespace URI, as in
	// Inner.
	Name xml.Name
	toks []xml.Token // start element, inner tokens, end element
}

// Elements returns an iterator over the top-level elements of a balanced
// token sequence, in document order.
func Elements(toks []xml.Token) iter.Seq[Element] {
	return func(yield func(Element) bool) {
		for i := 0; i < len(toks); i++ {
			se, ok := toks[i].(xml.StartElement)
			if !ok {
				continue
			}
			end := matchingEnd(toks, i)
			if !yield(Element{Name: se.Name, toks: toks[i : end+1]}) {
				return
			}
			i = end
		}
	}
}

// firstElement returns the first top-level element of toks named name (an
// empty Space matches any namespace; an empty name matches any element).
func firstElement(toks []xml.Token, name xml.Name) (Element, bool) {
	for i := 0; i < len(toks); i++ {
		se, ok := toks[i].(xml.StartElement)
		if !ok {
			continue
		}
		end := matchingEnd(toks, i)
		if name.Local == "" || (se.Name.Local == name.Local && (name.Space == "" || se.Name.Space == name.Space)) {
			return Element{Name: se.Name, toks: toks[i : end+1]}, true
		}
		i = end
	}
	return Element{}, false
}

// Children returns an iterator over the stanza's child elements.
//
//	for el := range st.Children() {
//		if el.Name.Space == nsReceipts { ... }
//	}
func (s *Stanza) Children() iter.Seq[Element] { return Elements(s.Inner) }

// ChildElement returns the first child element with the given name (an
// empty Space matches any namespace), and whether there is one.
func (s *Stanza) ChildElement(name xml.Name) (Element, bool) { return firstElement(s.Inner, name) }

// PayloadElement returns the first child element, such as an iq's
// payload, and whether there is one.
func (s *Stanza) PayloadElement() (Element, bool) { return firstElement(s.Inner, xml.Name{}) }

// WithoutChildren returns s itself if drop reports false for each of its
// child elements, and otherwise a copy of s without those drop reports
// true for. The copy shares the tokens it keeps with s (they are never
// changed in place) but none of s's slices, so appending to its Inner or
// Attrs leaves s as it is.
func (s *Stanza) WithoutChildren(drop func(Element) bool) *Stanza {
	var inner []xml.Token
	next := 0 // s.Inner[next:] is not in inner yet
	for i := 0; i < len(s.Inner); i++ {
		se, ok := s.Inner[i].(xml.StartElement)
		if !ok {
			continue
		}
		end := matchingEnd(s.Inner, i)
		if drop(Element{Name: se.Name, toks: s.Inner[i : end+1]}) {
			if inner == nil {
				inner = make([]xml.Token, 0, len(s.Inner))
			}
			inner = append(inner, s.Inner[next:i]...)
			next = end + 1
		}
		i = end
	}
	if inner == nil {
		return s
	}
	c := *s
	c.Inner = append(inner, s.Inner[next:]...)
	c.Attrs = slices.Clip(s.Attrs)
	return &c
}

// Start returns the element's start element, with its attributes.
func (e Element) Start() xml.StartElement {
	if len(e.toks) == 0 {
		return xml.StartElement{}
	}
	return e.toks[0].(xml.StartElement)
}

// Attr returns the value of the element's attribute called name without
// a namespace, or "" if it has none.
func (e Element) Attr(name string) string { return AttrValue(e.Start().Attr, name) }

// LookupAttr returns the value of the element's attribute called name
// without a namespace, and whether it has one.
func (e Element) LookupAttr(name string) (string, bool) { return LookupAttr(e.Start().Attr, name) }

// Children returns an iterator over the element's child elements.
func (e Element) Children() iter.Seq[Element] { return Elements(e.Inner()) }

// Child returns the first child element with the given name (an empty
// Space matches any namespace), and whether there is one.
func (e Element) Child(name xml.Name) (Element, bool) { return firstElement(e.Inner(), name) }

// HasChild reports whether the element has a child element with the given
// name (an empty Space matches any namespace).
func (e Element) HasChild(name xml.Name) bool {
	_, ok := e.Child(name)
	return ok
}

// Text returns the character data directly inside the element (not that
// of its children), such as the text of a <body/>.
func (e Element) Text() string {
	var b strings.Builder
	depth := 0
	for _, t := range e.Inner() {
		switch tt := t.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				b.Write(tt)
			}
		}
	}
	return b.String()
}

// Tokens returns the element's tokens, from its start element to its end
// element; they are the buffered tokens themselves, not a copy.
func (e Element) Tokens() []xml.Token { return e.toks }

// Inner returns the tokens between the element's start and end elements;
// they are the buffered tokens themselves, not a copy.
func (e Element) Inner() []xml.Token {
	if len(e.toks) < 2 {
		return nil
	}
	return e.toks[1 : len(e.toks)-1]
}

// LookupAttr returns the value of the attribute called name without a
// namespace among attrs, and whether there is one.
func LookupAttr(attrs []xml.Attr, name string) (string, bool) {
	for _, a := range attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value, true
		}
	}
	return "", false
}

// AttrValue returns the value of the attribute called name without a
// namespace among attrs, or "" if there is none.
func AttrValue(attrs []xml.Attr, name string) string {
	v, _ := LookupAttr(attrs, name)
	return v
}

// matchingEnd returns the index of the end element matching the start
// element at toks[start], or the last index if toks ends before it.
func matchingEnd(toks []xml.Token, start int) int {
	depth := 0
	for j := start; j < len(toks); j++ {
		switch toks[j].(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return len(toks) - 1
}

package stanza

import "encoding/xml"

// Elem returns a reader over an element with the given attributes and
// children, each child a reader over complete elements or text.
func Elem(name xml.Name, attrs []xml.Attr, children ...xml.TokenReader) xml.TokenReader {
	toks := []xml.Token{xml.StartElement{Name: name, Attr: attrs}}
	for _, c := range children {
		if c != nil {
			toks = appendReader(toks, c)
		}
	}
	toks = append(toks, xml.EndElement{Name: name})
	return &sliceReader{toks: toks}
}

// TextElem returns a reader over <name>text</name>.
func TextElem(name xml.Name, text string) xml.TokenReader {
	toks := []xml.Token{xml.StartElement{Name: name}}
	if text != "" {
		toks = append(toks, xml.CharData(text))
	}
	return &sliceReader{toks: append(toks, xml.EndElement{Name: name})}
}

// Attr returns an unqualified attribute.
func Attr(name, value string) xml.Attr {
	return xml.Attr{Name: xml.Name{Local: name}, Value: value}
}

// Tokens returns a reader over the given tokens.
func Tokens(toks ...xml.Token) xml.TokenReader { return &sliceReader{toks: toks} }

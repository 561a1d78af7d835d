package form

import (
	"encoding/xml"
	"strings"

	"github.com/kiez-im/kiez/stanza"
)

// Element names, built once.
var (
	nameX            = xml.Name{Space: NS, Local: "x"}
	nameTitle        = xml.Name{Space: NS, Local: "title"}
	nameInstructions = xml.Name{Space: NS, Local: "instructions"}
	nameField        = xml.Name{Space: NS, Local: "field"}
	nameDesc         = xml.Name{Space: NS, Local: "desc"}
	nameRequired     = xml.Name{Space: NS, Local: "required"}
	nameValue        = xml.Name{Space: NS, Local: "value"}
	nameOption       = xml.Name{Space: NS, Local: "option"}
	nameReported     = xml.Name{Space: NS, Local: "reported"}
	nameItem         = xml.Name{Space: NS, Local: "item"}
)

// TokenReader returns the form as an <x xmlns='jabber:x:data'/> element,
// with explicit namespaces, ready for stanza.Stanza.AppendChild or a
// ResponseWriter. An empty Type is written as "form"; Instructions are
// written one <instructions/> element per line. The tokens are built when
// TokenReader is called: later changes to f do not show.
func (f *Form) TokenReader() xml.TokenReader {
	return stanza.Tokens(f.AppendTokens(nil)...)
}

// AppendTokens appends the tokens of the form's element (as TokenReader
// yields them) to dst and returns the extended slice.
func (f *Form) AppendTokens(dst []xml.Token) []xml.Token {
	typ := f.Type
	if typ == "" {
		typ = TypeForm
	}
	dst = append(dst, xml.StartElement{Name: nameX, Attr: []xml.Attr{stanza.Attr("type", string(typ))}})
	if f.Title != "" {
		dst = appendText(dst, nameTitle, f.Title)
	}
	if f.Instructions != "" {
		for line := range strings.SplitSeq(f.Instructions, "\n") {
			dst = appendText(dst, nameInstructions, line)
		}
	}
	for i := range f.Fields {
		dst = f.Fields[i].appendTokens(dst)
	}
	if f.Reported != nil {
		dst = appendFields(dst, nameReported, f.Reported)
	}
	for _, item := range f.Items {
		dst = appendFields(dst, nameItem, item)
	}
	return append(dst, xml.EndElement{Name: nameX})
}

// appendFields appends an element named name holding fields.
func appendFields(dst []xml.Token, name xml.Name, fields []Field) []xml.Token {
	dst = append(dst, xml.StartElement{Name: name})
	for i := range fields {
		dst = fields[i].appendTokens(dst)
	}
	return append(dst, xml.EndElement{Name: name})
}

// appendTokens appends the <field/> element.
func (fd *Field) appendTokens(dst []xml.Token) []xml.Token {
	attrs := make([]xml.Attr, 0, 3)
	if fd.Type != "" {
		attrs = append(attrs, stanza.Attr("type", string(fd.Type)))
	}
	if fd.Var != "" {
		attrs = append(attrs, stanza.Attr("var", fd.Var))
	}
	if fd.Label != "" {
		attrs = append(attrs, stanza.Attr("label", fd.Label))
	}
	dst = append(dst, xml.StartElement{Name: nameField, Attr: attrs})
	if fd.Desc != "" {
		dst = appendText(dst, nameDesc, fd.Desc)
	}
	if fd.Required {
		dst = append(dst, xml.StartElement{Name: nameRequired}, xml.EndElement{Name: nameRequired})
	}
	for _, v := range fd.Values {
		dst = appendText(dst, nameValue, v)
	}
	for _, o := range fd.Options {
		var attrs []xml.Attr
		if o.Label != "" {
			attrs = []xml.Attr{stanza.Attr("label", o.Label)}
		}
		dst = append(dst, xml.StartElement{Name: nameOption, Attr: attrs})
		dst = appendText(dst, nameValue, o.Value)
		dst = append(dst, xml.EndElement{Name: nameOption})
	}
	dst = append(dst, fd.Extra...)
	return append(dst, xml.EndElement{Name: nameField})
}

// appendText appends <name>text</name>.
func appendText(dst []xml.Token, name xml.Name, text string) []xml.Token {
	dst = append(dst, xml.StartElement{Name: name})
	if text != "" {
		dst = append(dst, xml.CharData(text))
	}
	return append(dst, xml.EndElement{Name: name})
}

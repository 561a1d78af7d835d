package adhoc

import (
	"encoding/xml"
	"errors"
	"io"

	"github.com/kiez-im/kiez/stanza"
)

// NSData is the XEP-0004 data forms namespace.
const NSData = "jabber:x:data"

// Form is a XEP-0004 data form: the form a command stage shows, or the
// form a client submits.
type Form struct {
	// Type is "form", "submit", "cancel" or "result".
	Type         string
	Title        string
	Instructions string
	Fields       []Field
}

// Field is one field of a data form (XEP-0004 §3.2).
type Field struct {
	Var  string
	Type string // boolean, fixed, hidden, jid-single, list-multi, text-single, ...
	// Label is the human-readable name of the field.
	Label string
	// Desc is a longer description, shown as help.
	Desc     string
	Required bool
	Values   []string
}

// Value returns the first value of the field named v, and whether the
// field is present.
func (f *Form) Value(v string) (string, bool) {
	if f == nil {
		return "", false
	}
	for _, fd := range f.Fields {
		if fd.Var == v {
			if len(fd.Values) == 0 {
				return "", true
			}
			return fd.Values[0], true
		}
	}
	return "", false
}

// Bool reports whether the field named v holds the boolean true ("1" or
// "true", XEP-0004 §3.3).
func (f *Form) Bool(v string) bool {
	s, _ := f.Value(v)
	return s == "1" || s == "true"
}

// FormType returns the value of the hidden FORM_TYPE field (XEP-0068), or
// "" when there is none.
func (f *Form) FormType() string {
	s, _ := f.Value("FORM_TYPE")
	return s
}

// TokenReader returns the form as an <x xmlns='jabber:x:data'/> element.
func (f *Form) TokenReader() xml.TokenReader {
	var children []xml.TokenReader
	if f.Title != "" {
		children = append(children, stanza.TextElem(xml.Name{Space: NSData, Local: "title"}, f.Title))
	}
	if f.Instructions != "" {
		children = append(children, stanza.TextElem(xml.Name{Space: NSData, Local: "instructions"}, f.Instructions))
	}
	for _, fd := range f.Fields {
		var attrs []xml.Attr
		if fd.Type != "" {
			attrs = append(attrs, stanza.Attr("type", fd.Type))
		}
		if fd.Var != "" {
			attrs = append(attrs, stanza.Attr("var", fd.Var))
		}
		if fd.Label != "" {
			attrs = append(attrs, stanza.Attr("label", fd.Label))
		}
		var inner []xml.TokenReader
		if fd.Desc != "" {
			inner = append(inner, stanza.TextElem(xml.Name{Space: NSData, Local: "desc"}, fd.Desc))
		}
		if fd.Required {
			inner = append(inner, stanza.Elem(xml.Name{Space: NSData, Local: "required"}, nil))
		}
		for _, v := range fd.Values {
			inner = append(inner, stanza.TextElem(xml.Name{Space: NSData, Local: "value"}, v))
		}
		children = append(children, stanza.Elem(xml.Name{Space: NSData, Local: "field"}, attrs, inner...))
	}
	typ := f.Type
	if typ == "" {
		typ = "form"
	}
	return stanza.Elem(xml.Name{Space: NSData, Local: "x"}, []xml.Attr{stanza.Attr("type", typ)}, children...)
}

// ErrNotForm is returned by ParseForm for an element that is not a data
// form.
var ErrNotForm = errors.New("adhoc: not a jabber:x:data form")

// maxFormFields bounds what ParseForm accepts.
const maxFormFields = 256

// ParseForm reads a data form from r, which yields an <x
// xmlns='jabber:x:data'/> element from its start to its end (as
// stanza.Stanza.Child returns it). Options, media and other extensions
// of fields are skipped.
func ParseForm(r xml.TokenReader) (*Form, error) {
	t, err := r.Token()
	if err != nil {
		return nil, ErrNotForm
	}
	start, ok := t.(xml.StartElement)
	if !ok || start.Name.Space != NSData || start.Name.Local != "x" {
		return nil, ErrNotForm
	}
	f := &Form{Type: attr(start, "type")}
	var field *Field
	var text []byte
	depth := 1
	for depth > 0 {
		t, err := r.Token()
		if err == io.EOF && t == nil {
			break
		}
		if err != nil && t == nil {
			return nil, err
		}
		switch tt := t.(type) {
		case xml.StartElement:
			depth++
			text = text[:0]
			switch {
			case depth == 2 && tt.Name.Space == NSData && tt.Name.Local == "field":
				if len(f.Fields) >= maxFormFields {
					return nil, errors.New("adhoc: too many form fields")
				}
				f.Fields = append(f.Fields, Field{Var: attr(tt, "var"), Type: attr(tt, "type"), Label: attr(tt, "label")})
				field = &f.Fields[len(f.Fields)-1]
			case depth == 3 && field != nil && tt.Name.Space == NSData && tt.Name.Local == "required":
				field.Required = true
			}
		case xml.CharData:
			text = append(text, tt...)
		case xml.EndElement:
			switch {
			case depth == 2 && tt.Name.Local == "title":
				f.Title = string(text)
			case depth == 2 && tt.Name.Local == "instructions":
				f.Instructions = string(text)
			case depth == 2 && tt.Name.Local == "field":
				field = nil
			case depth == 3 && field != nil && tt.Name.Local == "value":
				field.Values = append(field.Values, string(text))
			case depth == 3 && field != nil && tt.Name.Local == "desc":
				field.Desc = string(text)
			}
			text = text[:0]
			depth--
		}
		if err != nil {
			break
		}
	}
	return f, nil
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

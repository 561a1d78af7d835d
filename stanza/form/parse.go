package form

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
)

// MaxFields bounds the fields Parse accepts in one form, counting those of
// <reported/> and every <item/>.
const MaxFields = 256

// ErrNotForm is returned by Parse for input that is not an <x
// xmlns='jabber:x:data'/> element.
var ErrNotForm = errors.New("form: not a jabber:x:data form")

// SyntaxError reports a data form that breaks the rules of XEP-0004, or
// input that ends inside it.
type SyntaxError struct {
	Msg string
}

// Error returns "form: " and the message.
func (e *SyntaxError) Error() string { return "form: " + e.Msg }

// StanzaError returns the bad-request error that answers a request
// carrying this form.
func (e *SyntaxError) StanzaError() mstanza.Error {
	return mstanza.Error{Type: mstanza.Modify, Condition: mstanza.BadRequest,
		Text: map[string]string{"": "malformed data form: " + e.Msg}}
}

func syntaxErr(format string, args ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(format, args...)}
}

// Parse reads a data form from r, which yields an <x xmlns='jabber:x:data'/>
// element from its start to its end with explicit namespaces (as
// stanza.Stanza.Child returns it, or stanza.Resolve makes it). It returns
// ErrNotForm when the first token is not that element, and a *SyntaxError
// for a form that breaks XEP-0004: a missing or unknown form type, an
// unknown field type, a field without var (other than a fixed one), a var
// twice in one form or item, a second <title/>, <desc/> or <reported/>, an
// <option/> without exactly one <value/>, elements inside text, more than
// MaxFields fields, or input that ends early.
//
// Elements of other namespaces inside a field are kept in Field.Extra;
// elsewhere they are skipped, as are unknown jabber:x:data elements, so
// that later extensions do not break parsing. Parse checks structure, not
// values: see Validate.
func Parse(r xml.TokenReader) (*Form, error) {
	t, _ := r.Token()
	if t == nil {
		return nil, ErrNotForm
	}
	start, ok := t.(xml.StartElement)
	if !ok || start.Name.Space != NS || start.Name.Local != "x" {
		return nil, ErrNotForm
	}
	f := &Form{Type: Type(stanza.AttrValue(start.Attr, "type"))}
	switch f.Type {
	case TypeForm, TypeSubmit, TypeCancel, TypeResult:
	case "":
		return nil, syntaxErr("<x/> has no type")
	default:
		return nil, syntaxErr("unknown form type %q", f.Type)
	}
	p := parser{r: r}
	var instr strings.Builder
	seenTitle, seenInstr, seenReported := false, false, false
	for {
		se, err := p.child()
		if err != nil {
			return nil, err
		}
		if se == nil {
			break
		}
		if se.Name.Space != NS {
			if err := p.skip(); err != nil {
				return nil, err
			}
			continue
		}
		switch se.Name.Local {
		case "title":
			if seenTitle {
				return nil, syntaxErr("more than one <title/>")
			}
			seenTitle = true
			if f.Title, err = p.text("title"); err != nil {
				return nil, err
			}
		case "instructions":
			s, err := p.text("instructions")
			if err != nil {
				return nil, err
			}
			if seenInstr {
				instr.WriteByte('\n')
			}
			seenInstr = true
			instr.WriteString(s)
		case "field":
			fd, err := p.field(*se)
			if err != nil {
				return nil, err
			}
			if f.Fields, err = addField(f.Fields, fd, "the form"); err != nil {
				return nil, err
			}
		case "reported":
			if seenReported {
				return nil, syntaxErr("more than one <reported/>")
			}
			seenReported = true
			if f.Reported, err = p.fields("reported"); err != nil {
				return nil, err
			}
			if f.Reported == nil {
				f.Reported = []Field{}
			}
		case "item":
			item, err := p.fields("item")
			if err != nil {
				return nil, err
			}
			f.Items = append(f.Items, item)
		default:
			if err := p.skip(); err != nil {
				return nil, err
			}
		}
	}
	f.Instructions = instr.String()
	return f, nil
}

// addField appends fd unless its var is taken; where names the list in
// errors.
func addField(fields []Field, fd Field, where string) ([]Field, error) {
	if fd.Var != "" {
		for i := range fields {
			if fields[i].Var == fd.Var {
				return nil, syntaxErr("field %q twice in %s", fd.Var, where)
			}
		}
	}
	return append(fields, fd), nil
}

// parser reads the inside of an element whose start was read.
type parser struct {
	r       xml.TokenReader
	nfields int // fields read so far
}

// token returns the next token; the end of input is a *SyntaxError.
func (p *parser) token() (xml.Token, error) {
	t, err := p.r.Token()
	if t != nil {
		return t, nil
	}
	if err == nil || err == io.EOF {
		return nil, syntaxErr("input ends inside the form")
	}
	return nil, err
}

// child returns the start element of the next child, or nil at the end of
// the current element (whose end it consumes). Character data between
// children is skipped.
func (p *parser) child() (*xml.StartElement, error) {
	for {
		t, err := p.token()
		if err != nil {
			return nil, err
		}
		switch tt := t.(type) {
		case xml.StartElement:
			return &tt, nil
		case xml.EndElement:
			return nil, nil
		}
	}
}

// skip consumes the rest of an element whose start was read.
func (p *parser) skip() error {
	for depth := 1; depth > 0; {
		t, err := p.token()
		if err != nil {
			return err
		}
		switch t.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return nil
}

// copyElem appends the whole element whose start was read to dst, copied.
func (p *parser) copyElem(dst []xml.Token, start xml.StartElement) ([]xml.Token, error) {
	dst = append(dst, copyStart(start))
	for depth := 1; depth > 0; {
		t, err := p.token()
		if err != nil {
			return nil, err
		}
		switch tt := t.(type) {
		case xml.StartElement:
			depth++
			t = copyStart(tt)
		case xml.EndElement:
			depth--
		default:
			t = xml.CopyToken(t)
		}
		dst = append(dst, t)
	}
	return dst, nil
}

// copyStart copies se, leaving no attributes as nil (as stanza.Resolve
// does), so that a copy of a copy is equal to the first.
func copyStart(se xml.StartElement) xml.StartElement {
	if len(se.Attr) == 0 {
		se.Attr = nil
		return se
	}
	return se.Copy()
}

// text returns the character data of the element named name whose start
// was read; an element inside it is a *SyntaxError.
func (p *parser) text(name string) (string, error) {
	var s []byte
	for {
		t, err := p.token()
		if err != nil {
			return "", err
		}
		switch tt := t.(type) {
		case xml.CharData:
			s = append(s, tt...)
		case xml.StartElement:
			return "", syntaxErr("element <%s/> inside <%s/>", tt.Name.Local, name)
		case xml.EndElement:
			return string(s), nil
		}
	}
}

// fields reads the fields of a <reported/> or <item/> whose start was read.
func (p *parser) fields(name string) ([]Field, error) {
	var out []Field
	for {
		se, err := p.child()
		if err != nil || se == nil {
			return out, err
		}
		if se.Name.Space != NS || se.Name.Local != "field" {
			if err := p.skip(); err != nil {
				return nil, err
			}
			continue
		}
		fd, err := p.field(*se)
		if err != nil {
			return nil, err
		}
		if out, err = addField(out, fd, "<"+name+"/>"); err != nil {
			return nil, err
		}
	}
}

// field reads a <field/> whose start was read.
func (p *parser) field(start xml.StartElement) (Field, error) {
	p.nfields++
	if p.nfields > MaxFields {
		return Field{}, syntaxErr("more than %d fields", MaxFields)
	}
	fd := Field{Var: stanza.AttrValue(start.Attr, "var"), Type: FieldType(stanza.AttrValue(start.Attr, "type")), Label: stanza.AttrValue(start.Attr, "label")}
	if !fd.Type.valid() {
		return Field{}, syntaxErr("unknown field type %q", fd.Type)
	}
	if fd.Var == "" && fd.Type != Fixed {
		return Field{}, syntaxErr("a field without var")
	}
	seenDesc := false
	for {
		se, err := p.child()
		if err != nil {
			return Field{}, err
		}
		if se == nil {
			return fd, nil
		}
		if se.Name.Space != NS {
			if fd.Extra, err = p.copyElem(fd.Extra, *se); err != nil {
				return Field{}, err
			}
			continue
		}
		switch se.Name.Local {
		case "desc":
			if seenDesc {
				return Field{}, syntaxErr("more than one <desc/> in field %q", fd.Var)
			}
			seenDesc = true
			fd.Desc, err = p.text("desc")
		case "required":
			fd.Required = true
			err = p.skip()
		case "value":
			var v string
			v, err = p.text("value")
			fd.Values = append(fd.Values, v)
		case "option":
			var o Option
			o, err = p.option(*se)
			fd.Options = append(fd.Options, o)
		default:
			err = p.skip()
		}
		if err != nil {
			return Field{}, err
		}
	}
}

// option reads an <option/> whose start was read.
func (p *parser) option(start xml.StartElement) (Option, error) {
	o := Option{Label: stanza.AttrValue(start.Attr, "label")}
	values := 0
	for {
		se, err := p.child()
		if err != nil {
			return Option{}, err
		}
		if se == nil {
			break
		}
		if se.Name.Space == NS && se.Name.Local == "value" {
			values++
			if o.Value, err = p.text("value"); err != nil {
				return Option{}, err
			}
			continue
		}
		if err := p.skip(); err != nil {
			return Option{}, err
		}
	}
	if values != 1 {
		return Option{}, syntaxErr("an <option/> with %d <value/> elements, not one", values)
	}
	return o, nil
}

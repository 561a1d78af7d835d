package form

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"
)

// NS is the XEP-0004 data forms namespace.
const NS = "jabber:x:data"

// FormTypeVar is the name of the hidden field that tells a form's purpose
// (XEP-0068).
const FormTypeVar = "FORM_TYPE"

// Type is the type of a form (XEP-0004 §3.1).
type Type string

// The form types of XEP-0004.
const (
	// TypeForm asks the receiver to fill in the form.
	TypeForm Type = "form"
	// TypeSubmit is a filled-in form.
	TypeSubmit Type = "submit"
	// TypeCancel declines to fill in a form.
	TypeCancel Type = "cancel"
	// TypeResult returns data, such as search results.
	TypeResult Type = "result"
)

// FieldType is the type of a field (XEP-0004 §3.3). An empty FieldType
// means text-single in forms and results; submitted forms usually omit
// field types.
type FieldType string

// The field types of XEP-0004.
const (
	Boolean     FieldType = "boolean"      // a yes or no: "1"/"true" or "0"/"false"
	Fixed       FieldType = "fixed"        // text shown to the user, such as a section header
	Hidden      FieldType = "hidden"       // returned unchanged by the submitter
	JIDMulti    FieldType = "jid-multi"    // several JIDs
	JIDSingle   FieldType = "jid-single"   // one JID
	ListMulti   FieldType = "list-multi"   // some of the options
	ListSingle  FieldType = "list-single"  // one of the options
	TextMulti   FieldType = "text-multi"   // lines of text, one value each
	TextPrivate FieldType = "text-private" // a line of text to obscure, such as a password
	TextSingle  FieldType = "text-single"  // a line of text
)

// valid reports whether t is one of the types of XEP-0004 or empty.
func (t FieldType) valid() bool {
	switch t {
	case "", Boolean, Fixed, Hidden, JIDMulti, JIDSingle, ListMulti, ListSingle, TextMulti, TextPrivate, TextSingle:
		return true
	}
	return false
}

// multi reports whether a field of type t may hold more than one value.
func (t FieldType) multi() bool {
	return t == JIDMulti || t == ListMulti || t == TextMulti || t == Hidden || t == Fixed
}

// Form is a XEP-0004 data form.
type Form struct {
	// Type is the form's type; TokenReader writes "form" when it is empty.
	Type Type
	// Title is the form's title, "" for none.
	Title string
	// Instructions are the instructions for the user, one <instructions/>
	// element per line.
	Instructions string
	// Fields are the form's fields, in order.
	Fields []Field
	// Reported are the columns of a multi-item result (<reported/>): fields
	// with Var, Type and Label and no values. Nil for none.
	Reported []Field
	// Items are the rows of a multi-item result (<item/>), each a list of
	// fields with Var and Values.
	Items [][]Field
}

// Field is one field of a form (XEP-0004 §3.2).
type Field struct {
	// Var names the field; required but for fixed fields.
	Var string
	// Type is the field's type; see FieldType.
	Type FieldType
	// Label is the human-readable name of the field.
	Label string
	// Desc is a longer description, shown as help.
	Desc string
	// Required marks a field that a submission must fill in.
	Required bool
	// Values are the field's values: the default in a form, the answer in
	// a submission. Only multi types (and hidden and fixed fields) hold
	// more than one.
	Values []string
	// Options are the choices of a list-single or list-multi field.
	Options []Option
	// Extra are the field's children from other namespaces (XEP-0122
	// validation, XEP-0221 media), as complete elements with explicit
	// namespaces; they are written back unchanged after the options.
	Extra []xml.Token
}

// Option is one choice of a list field.
type Option struct {
	// Label is the human-readable name of the choice, "" for none.
	Label string
	// Value is what a submission carries when the choice is taken.
	Value string
}

// Field returns the first field named v, or nil when f (which may be nil)
// has none.
func (f *Form) Field(v string) *Field {
	if f == nil {
		return nil
	}
	for i := range f.Fields {
		if f.Fields[i].Var == v {
			return &f.Fields[i]
		}
	}
	return nil
}

// Value returns the first value of the field named v ("" when it has
// none), and whether the field is present.
func (f *Form) Value(v string) (string, bool) {
	fd := f.Field(v)
	if fd == nil {
		return "", false
	}
	return fd.Value(), true
}

// Bool reports whether the field named v is present and holds the boolean
// true ("1" or "true", XEP-0004 §3.3). Use Field(v).Bool to tell a
// malformed value from false.
func (f *Form) Bool(v string) bool {
	fd := f.Field(v)
	if fd == nil {
		return false
	}
	b, err := fd.Bool()
	return err == nil && b
}

// FormType returns the value of the FORM_TYPE field (XEP-0068), or "" when
// there is none. In forms and results (and forms of no type) the field
// must be hidden to count; in submissions and cancellations, which often
// leave out field types, any FORM_TYPE field counts.
func (f *Form) FormType() string {
	fd := f.Field(FormTypeVar)
	if fd == nil || (f.Type != TypeSubmit && f.Type != TypeCancel && fd.Type != Hidden) {
		return ""
	}
	return fd.Value()
}

// FormTypeField returns the hidden FORM_TYPE field (XEP-0068) naming ns,
// to put first in a form's fields.
func FormTypeField(ns string) Field {
	return Field{Var: FormTypeVar, Type: Hidden, Values: []string{ns}}
}

// Value returns the field's first value, or "" when it has none.
func (fd *Field) Value() string {
	if fd == nil || len(fd.Values) == 0 {
		return ""
	}
	return fd.Values[0]
}

// Bool returns the value of a boolean field: true for "1" and "true",
// false for "0", "false" and no value (XEP-0004 §3.3). Any other value,
// or more than one, is a *FieldError.
func (fd *Field) Bool() (bool, error) {
	if fd == nil {
		return false, nil
	}
	if len(fd.Values) > 1 {
		return false, &FieldError{Var: fd.Var, Err: ErrMultipleValues}
	}
	b, err := parseBool(fd.Value())
	if err != nil {
		return false, &FieldError{Var: fd.Var, Err: err}
	}
	return b, nil
}

func parseBool(s string) (bool, error) {
	switch strings.TrimSpace(s) {
	case "1", "true":
		return true, nil
	case "", "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("%w %q: not a boolean", ErrInvalidValue, s)
}

// JID returns the value of a jid-single field; the zero JID when it has no
// value. A malformed JID, or more than one, is a *FieldError.
func (fd *Field) JID() (jid.JID, error) {
	if fd == nil || len(fd.Values) == 0 {
		return jid.JID{}, nil
	}
	if len(fd.Values) > 1 {
		return jid.JID{}, &FieldError{Var: fd.Var, Err: ErrMultipleValues}
	}
	j, err := parseJID(fd.Values[0])
	if err != nil {
		return jid.JID{}, &FieldError{Var: fd.Var, Err: err}
	}
	return j, nil
}

// JIDs returns the values of a jid-multi field. A malformed JID is a
// *FieldError.
func (fd *Field) JIDs() ([]jid.JID, error) {
	if fd == nil || len(fd.Values) == 0 {
		return nil, nil
	}
	out := make([]jid.JID, 0, len(fd.Values))
	for _, v := range fd.Values {
		j, err := parseJID(v)
		if err != nil {
			return nil, &FieldError{Var: fd.Var, Err: err}
		}
		out = append(out, j)
	}
	return out, nil
}

func parseJID(s string) (jid.JID, error) {
	j, err := jid.Parse(strings.TrimSpace(s))
	if err != nil {
		return jid.JID{}, fmt.Errorf("%w %q: %w", ErrInvalidValue, s, err)
	}
	return j, nil
}

// Errors a *FieldError wraps.
var (
	// ErrRequired: a required field has no value.
	ErrRequired = errors.New("required field has no value")
	// ErrMultipleValues: a single-value field has more than one value.
	ErrMultipleValues = errors.New("more than one value")
	// ErrInvalidValue: a value does not fit the field's type or options.
	ErrInvalidValue = errors.New("invalid value")
)

// FieldError reports a field whose values are missing or do not fit it.
type FieldError struct {
	Var string // the field
	Err error  // ErrRequired, ErrMultipleValues or ErrInvalidValue, wrapped
}

// Error returns, for example, `form: field "confirm": invalid value "yes":
// not a boolean`.
func (e *FieldError) Error() string {
	return fmt.Sprintf("form: field %q: %v", e.Var, e.Err)
}

// Unwrap returns e.Err.
func (e *FieldError) Unwrap() error { return e.Err }

// StanzaError returns the bad-request error that answers a submission with
// this fault, its text naming the field.
func (e *FieldError) StanzaError() mstanza.Error {
	return mstanza.Error{Type: mstanza.Modify, Condition: mstanza.BadRequest,
		Text: map[string]string{"": fmt.Sprintf("field %q: %v", e.Var, e.Err)}}
}

// Validate checks f, a submitted form, against def, the form that was shown:
// every required field of def has a non-empty value in f, single-value
// fields have at most one value, booleans and JIDs parse, and values of list
// fields are among def's options (unless the field's XEP-0122 validation in
// def's Extra is <open/>). The field types are def's. Fields f has and def
// does not are not checked: a caller that refuses them compares with
// def.Field. The first fault is returned as a *FieldError.
func (f *Form) Validate(def *Form) error {
	if def == nil {
		return nil
	}
	for i := range def.Fields {
		d := &def.Fields[i]
		if d.Var == "" || d.Type == Fixed {
			continue
		}
		sub := f.Field(d.Var)
		var vals []string
		if sub != nil {
			vals = sub.Values
		}
		if d.Required && !hasValue(vals) {
			return &FieldError{Var: d.Var, Err: ErrRequired}
		}
		if err := checkValues(d, vals); err != nil {
			return &FieldError{Var: d.Var, Err: err}
		}
	}
	return nil
}

func hasValue(vals []string) bool {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

// checkValues checks vals, submitted for the field def describes.
func checkValues(def *Field, vals []string) error {
	if len(vals) > 1 && !def.Type.multi() {
		return ErrMultipleValues
	}
	for _, v := range vals {
		switch def.Type {
		case Boolean:
			if _, err := parseBool(v); err != nil {
				return err
			}
		case JIDSingle, JIDMulti:
			if strings.TrimSpace(v) == "" {
				continue
			}
			if _, err := parseJID(v); err != nil {
				return err
			}
		case ListSingle, ListMulti:
			if v == "" || len(def.Options) == 0 || open(def.Extra) {
				continue
			}
			if !hasOption(def.Options, v) {
				return fmt.Errorf("%w %q: not one of the options", ErrInvalidValue, v)
			}
		}
	}
	return nil
}

func hasOption(opts []Option, v string) bool {
	for _, o := range opts {
		if o.Value == v {
			return true
		}
	}
	return false
}

// NSValidate is the XEP-0122 data forms validation namespace.
const NSValidate = "http://jabber.org/protocol/xdata-validate"

// open reports whether extra holds a XEP-0122 <open/>: values other than
// the options are allowed.
func open(extra []xml.Token) bool {
	for _, t := range extra {
		if se, ok := t.(xml.StartElement); ok && se.Name.Space == NSValidate && se.Name.Local == "open" {
			return true
		}
	}
	return false
}

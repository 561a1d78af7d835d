package form_test

import (
	"bytes"
	"fmt"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
)

// A service shows a form, reads the submission and checks it against the
// form it showed.
func Example() {
	shown := &form.Form{
		Type:  form.TypeForm,
		Title: "Delete my account",
		Fields: []form.Field{
			form.FormTypeField("urn:example:delete"),
			{Var: "confirm", Type: form.Boolean, Label: "Really delete?", Required: true},
		},
	}
	var b bytes.Buffer
	stanza.WriteTokens(&b, shown.AppendTokens(nil), "")
	fmt.Println(b.String())

	submitted := `<x xmlns='jabber:x:data' type='submit'>` +
		`<field var='FORM_TYPE'><value>urn:example:delete</value></field>` +
		`<field var='confirm'><value>true</value></field></x>`
	toks, _ := stanza.ParseElement([]byte(submitted))
	f, err := form.Parse(stanza.Tokens(toks...))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := f.Validate(shown); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.FormType(), f.Bool("confirm"))
	// Output:
	// <x xmlns="jabber:x:data" type="form"><title>Delete my account</title><field type="hidden" var="FORM_TYPE"><value>urn:example:delete</value></field><field type="boolean" var="confirm" label="Really delete?"><required/></field></x>
	// urn:example:delete true
}

// Parse reads a form from tokens with explicit namespaces, such as those
// stanza.Stanza.Child returns.
func ExampleParse() {
	toks, _ := stanza.ParseElement([]byte(`<x xmlns='jabber:x:data' type='submit'><field var='ids'><value>1</value><value>2</value></field></x>`))
	f, err := form.Parse(stanza.Tokens(toks...))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.Type, f.Field("ids").Values)
	// Output: submit [1 2]
}

// Malformed forms are *SyntaxError values; StanzaError gives the error to
// answer.
func ExampleSyntaxError() {
	toks, _ := stanza.ParseElement([]byte(`<x xmlns='jabber:x:data' type='submit'><field><value>1</value></field></x>`))
	_, err := form.Parse(stanza.Tokens(toks...))
	fmt.Println(err)
	if se, ok := err.(*form.SyntaxError); ok {
		fmt.Println(se.StanzaError().Condition)
	}
	// Output:
	// form: a field without var
	// bad-request
}

// Validate reports the first field that does not fit the form shown.
func ExampleForm_Validate() {
	shown := &form.Form{Fields: []form.Field{
		{Var: "whois", Type: form.ListSingle, Options: []form.Option{{Value: "moderators"}, {Value: "anyone"}}},
	}}
	answer := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "whois", Values: []string{"everyone"}}}}
	err := answer.Validate(shown)
	fmt.Println(err)
	// Output: form: field "whois": invalid value "everyone": not one of the options
}

// Field's getters read typed values and report bad ones.
func ExampleField_Bool() {
	f := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "public", Values: []string{"yes"}}}}
	_, err := f.Field("public").Bool()
	fmt.Println(err)
	// Output: form: field "public": invalid value "yes": not a boolean
}

// A multi-item result: the columns in Reported, one row per item.
func ExampleForm_TokenReader() {
	f := &form.Form{
		Type:     form.TypeResult,
		Reported: []form.Field{{Var: "jid", Type: form.JIDSingle}},
		Items:    [][]form.Field{{{Var: "jid", Values: []string{"juliet@capulet.lit"}}}},
	}
	st := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Result, ID: "s1"}
	st.AppendChild(f.TokenReader())
	var b bytes.Buffer
	st.WriteTo(&b)
	fmt.Println(b.String())
	// Output: <iq id="s1" type="result"><x xmlns="jabber:x:data" type="result"><reported><field type="jid-single" var="jid"/></reported><item><field var="jid"><value>juliet@capulet.lit</value></field></item></x></iq>
}

package form_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"reflect"
	"strings"
	"testing"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
)

// wire serialises f as the server would put it on a stream.
func wire(t testing.TB, f *form.Form) string {
	t.Helper()
	var b bytes.Buffer
	if err := stanza.WriteTokens(&b, f.AppendTokens(nil), ""); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// parse reads a form from its serialised XML.
func parse(t testing.TB, s string) (*form.Form, error) {
	t.Helper()
	toks, err := stanza.ParseElement([]byte(s))
	if err != nil {
		t.Fatalf("test input %s: %v", s, err)
	}
	return form.Parse(stanza.Tokens(toks...))
}

var validate = stanza.Resolve(stanza.Elem(xml.Name{Space: form.NSValidate, Local: "validate"},
	[]xml.Attr{stanza.Attr("datatype", "xs:string")},
	stanza.Elem(xml.Name{Space: form.NSValidate, Local: "open"}, nil)), "")

// every uses each field type and each part of a form.
var every = &form.Form{
	Type:         form.TypeForm,
	Title:        "Room configuration",
	Instructions: "Fill in the form.\n\nThen submit it.",
	Fields: []form.Field{
		form.FormTypeField("http://jabber.org/protocol/muc#roomconfig"),
		{Type: form.Fixed, Values: []string{"Section 1", "continued"}},
		{Var: "public", Type: form.Boolean, Label: "Public?", Desc: "Listed in the directory", Required: true, Values: []string{"1"}},
		{Var: "owner", Type: form.JIDSingle, Values: []string{"juliet@capulet.lit"}},
		{Var: "admins", Type: form.JIDMulti, Values: []string{"a@b.c", "d@e.f/g"}},
		{Var: "whois", Type: form.ListSingle, Values: []string{"moderators"}, Options: []form.Option{{Label: "Moderators", Value: "moderators"}, {Value: "anyone"}}},
		{Var: "roles", Type: form.ListMulti, Values: []string{"a", "b"}, Options: []form.Option{{Value: "a"}, {Value: "b"}, {Value: "c"}}, Extra: validate},
		{Var: "desc", Type: form.TextMulti, Values: []string{"line 1", "", "line 3"}},
		{Var: "secret", Type: form.TextPrivate, Values: []string{"s3cr<e>t&"}},
		{Var: "name", Type: form.TextSingle, Values: []string{""}},
		{Var: "untyped"},
	},
}

var results = &form.Form{
	Type:     form.TypeResult,
	Fields:   []form.Field{form.FormTypeField("jabber:iq:search")},
	Reported: []form.Field{{Var: "jid", Type: form.JIDSingle, Label: "JID"}, {Var: "nick", Label: "Nickname"}},
	Items: [][]form.Field{
		{{Var: "jid", Values: []string{"a@b.c"}}, {Var: "nick", Values: []string{"A"}}},
		{{Var: "jid", Values: []string{"d@e.f"}}, {Var: "nick", Values: []string{"D"}}},
	},
}

func TestRoundTrip(t *testing.T) {
	for _, f := range []*form.Form{
		every,
		results,
		{Type: form.TypeSubmit, Fields: []form.Field{{Var: "ids", Values: []string{"1", "2"}}}},
		{Type: form.TypeCancel},
		{Type: form.TypeResult, Reported: []form.Field{}},
	} {
		// Straight from the tokens, and through the wire.
		got, err := form.Parse(f.TokenReader())
		if err != nil {
			t.Fatalf("%s: %v", wire(t, f), err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Errorf("tokens: %+v\nbecame %+v", f, got)
		}
		got, err = parse(t, wire(t, f))
		if err != nil {
			t.Fatalf("%s: %v", wire(t, f), err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Errorf("wire: %+v\nbecame %+v", f, got)
		}
	}
}

func TestWire(t *testing.T) {
	f := &form.Form{Title: "T", Instructions: "a\nb", Fields: []form.Field{
		{Var: "v", Type: form.ListSingle, Label: "L", Desc: "D", Required: true, Values: []string{"x"},
			Options: []form.Option{{Label: "X", Value: "x"}}, Extra: validate},
	}}
	want := `<x xmlns="jabber:x:data" type="form"><title>T</title><instructions>a</instructions><instructions>b</instructions>` +
		`<field type="list-single" var="v" label="L"><desc>D</desc><required/><value>x</value><option label="X"><value>x</value></option>` +
		`<validate xmlns="http://jabber.org/protocol/xdata-validate" datatype="xs:string"><open/></validate></field></x>`
	if got := wire(t, f); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestParseLenient(t *testing.T) {
	// White space, unknown elements of the namespace and elements of other
	// namespaces outside fields are skipped.
	f, err := parse(t, `<x xmlns='jabber:x:data' type='submit'>
		<page xmlns='http://jabber.org/protocol/xdata-layout'><fieldref var='a'/></page>
		<future/>
		<field var='a'>
			<value>1</value>
			<unknown/>
		</field>
		<item><other xmlns='urn:x'/></item>
	</x>`)
	if err != nil {
		t.Fatal(err)
	}
	want := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "a", Values: []string{"1"}}}, Items: [][]form.Field{nil}}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got %+v, want %+v", f, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		notForm  bool
		msg      string // part of the *SyntaxError
	}{
		{name: "other element", in: `<query xmlns='jabber:x:data'/>`, notForm: true},
		{name: "other namespace", in: `<x xmlns='urn:other' type='form'/>`, notForm: true},
		{name: "no type", in: `<x xmlns='jabber:x:data'/>`, msg: "no type"},
		{name: "bad type", in: `<x xmlns='jabber:x:data' type='reply'/>`, msg: `unknown form type "reply"`},
		{name: "bad field type", in: `<x xmlns='jabber:x:data' type='form'><field var='a' type='text'/></x>`, msg: `unknown field type "text"`},
		{name: "no var", in: `<x xmlns='jabber:x:data' type='submit'><field><value>1</value></field></x>`, msg: "without var"},
		{name: "var twice", in: `<x xmlns='jabber:x:data' type='submit'><field var='a'/><field var='a'/></x>`, msg: `field "a" twice in the form`},
		{name: "var twice in item", in: `<x xmlns='jabber:x:data' type='result'><item><field var='a'/><field var='a'/></item></x>`, msg: `field "a" twice in <item/>`},
		{name: "two titles", in: `<x xmlns='jabber:x:data' type='form'><title>a</title><title>b</title></x>`, msg: "more than one <title/>"},
		{name: "two descs", in: `<x xmlns='jabber:x:data' type='form'><field var='a'><desc/><desc/></field></x>`, msg: "more than one <desc/>"},
		{name: "two reported", in: `<x xmlns='jabber:x:data' type='result'><reported/><reported/></x>`, msg: "more than one <reported/>"},
		{name: "option without value", in: `<x xmlns='jabber:x:data' type='form'><field var='a' type='list-single'><option label='x'/></field></x>`, msg: "0 <value/>"},
		{name: "option with two values", in: `<x xmlns='jabber:x:data' type='form'><field var='a' type='list-single'><option><value>1</value><value>2</value></option></field></x>`, msg: "2 <value/>"},
		{name: "element in value", in: `<x xmlns='jabber:x:data' type='submit'><field var='a'><value><b/></value></field></x>`, msg: "element <b/> inside <value/>"},
		{name: "element in title", in: `<x xmlns='jabber:x:data' type='form'><title>a<i>b</i></title></x>`, msg: "inside <title/>"},
		{name: "too many fields", in: `<x xmlns='jabber:x:data' type='submit'>` + strings.Repeat(`<field type='fixed'/>`, form.MaxFields+1) + `</x>`, msg: "more than 256 fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parse(t, tc.in)
			if f != nil {
				t.Fatalf("parsed %+v", f)
			}
			if tc.notForm {
				if !errors.Is(err, form.ErrNotForm) {
					t.Fatalf("error %v, want ErrNotForm", err)
				}
				return
			}
			var se *form.SyntaxError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want a SyntaxError with %q", err, tc.msg)
			}
			if e := se.StanzaError(); e.Condition != mstanza.BadRequest || !strings.Contains(e.Text[""], tc.msg) {
				t.Errorf("stanza error %+v", e)
			}
		})
	}
}

func TestParseTruncated(t *testing.T) {
	toks, err := stanza.ParseElement([]byte(`<x xmlns='jabber:x:data' type='form'><title>T</title><field var='a'><value>1</value></field></x>`))
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(toks) - 1 {
		f, err := form.Parse(stanza.Tokens(toks[:n]...))
		var se *form.SyntaxError
		switch {
		case n == 0 && !errors.Is(err, form.ErrNotForm):
			t.Errorf("no tokens: %v", err)
		case n > 0 && !errors.As(err, &se):
			t.Errorf("%d of %d tokens: %+v, %v", n, len(toks), f, err)
		}
	}
	if _, err := form.Parse(stanza.Tokens(xml.CharData("x"))); !errors.Is(err, form.ErrNotForm) {
		t.Errorf("character data: %v", err)
	}
}

// failing is a reader whose input breaks after some tokens.
type failing struct {
	toks []xml.Token
	err  error
}

func (r *failing) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, r.err
	}
	t := r.toks[0]
	r.toks = r.toks[1:]
	return t, nil
}

func TestParseReaderError(t *testing.T) {
	boom := errors.New("boom")
	toks := every.AppendTokens(nil)
	_, err := form.Parse(&failing{toks: toks[:5], err: boom})
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want the reader's", err)
	}
}

func TestFormType(t *testing.T) {
	for _, tc := range []struct {
		f    *form.Form
		want string
	}{
		{nil, ""},
		{&form.Form{Type: form.TypeForm}, ""},
		{&form.Form{Type: form.TypeForm, Fields: []form.Field{form.FormTypeField("urn:a")}}, "urn:a"},
		{&form.Form{Type: form.TypeResult, Fields: []form.Field{{Var: "FORM_TYPE", Values: []string{"urn:a"}}}}, ""},
		{&form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "FORM_TYPE", Values: []string{"urn:a"}}}}, "urn:a"},
	} {
		if got := tc.f.FormType(); got != tc.want {
			t.Errorf("%+v: FormType %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestGetters(t *testing.T) {
	f := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{
		{Var: "yes", Values: []string{"true"}},
		{Var: "one", Values: []string{" 1 "}},
		{Var: "no", Values: []string{"0"}},
		{Var: "empty"},
		{Var: "bad", Values: []string{"yes"}},
		{Var: "two", Values: []string{"1", "0"}},
		{Var: "jid", Values: []string{"juliet@capulet.lit/balcony"}},
		{Var: "badjid", Values: []string{"@"}},
		{Var: "jids", Values: []string{"a@b.c", "d.e"}},
	}}
	for _, tc := range []struct {
		v    string
		want bool
		err  error
	}{
		{"yes", true, nil}, {"one", true, nil}, {"no", false, nil}, {"empty", false, nil},
		{"missing", false, nil}, {"bad", false, form.ErrInvalidValue}, {"two", false, form.ErrMultipleValues},
	} {
		got, err := f.Field(tc.v).Bool()
		if got != tc.want || !errors.Is(err, tc.err) || f.Bool(tc.v) != tc.want {
			t.Errorf("%s: %v, %v; want %v, %v", tc.v, got, err, tc.want, tc.err)
		}
	}
	var fe *form.FieldError
	if _, err := f.Field("bad").Bool(); !errors.As(err, &fe) || fe.Var != "bad" ||
		err.Error() != `form: field "bad": invalid value "yes": not a boolean` {
		t.Errorf("error %v", err)
	}
	if v, ok := f.Value("jid"); !ok || v != "juliet@capulet.lit/balcony" {
		t.Errorf("Value %q, %v", v, ok)
	}
	if v, ok := f.Value("missing"); ok || v != "" {
		t.Errorf("Value of a missing field %q, %v", v, ok)
	}
	if v, ok := f.Value("empty"); !ok || v != "" {
		t.Errorf("Value of an empty field %q, %v", v, ok)
	}
	if j, err := f.Field("jid").JID(); err != nil || j.String() != "juliet@capulet.lit/balcony" {
		t.Errorf("JID %v, %v", j, err)
	}
	if _, err := f.Field("badjid").JID(); !errors.Is(err, form.ErrInvalidValue) {
		t.Errorf("JID of @: %v", err)
	}
	if _, err := f.Field("jids").JID(); !errors.Is(err, form.ErrMultipleValues) {
		t.Errorf("JID of two: %v", err)
	}
	if js, err := f.Field("jids").JIDs(); err != nil || len(js) != 2 || js[1].String() != "d.e" {
		t.Errorf("JIDs %v, %v", js, err)
	}
	if js, err := f.Field("missing").JIDs(); err != nil || js != nil {
		t.Errorf("JIDs of a missing field %v, %v", js, err)
	}
	if _, err := (&form.Field{Var: "x", Values: []string{"a@b", "@"}}).JIDs(); !errors.Is(err, form.ErrInvalidValue) {
		t.Errorf("JIDs with a bad one: %v", err)
	}
	var nilForm *form.Form
	if nilForm.Field("a") != nil || nilForm.Bool("a") {
		t.Error("a nil form has fields")
	}
}

func TestValidate(t *testing.T) {
	def := &form.Form{Type: form.TypeForm, Fields: []form.Field{
		form.FormTypeField("urn:example"),
		{Type: form.Fixed, Values: []string{"Header"}},
		{Var: "name", Type: form.TextSingle, Required: true},
		{Var: "public", Type: form.Boolean},
		{Var: "owner", Type: form.JIDSingle},
		{Var: "admins", Type: form.JIDMulti},
		{Var: "whois", Type: form.ListSingle, Options: []form.Option{{Value: "moderators"}, {Value: "anyone"}}},
		{Var: "roles", Type: form.ListMulti, Options: []form.Option{{Value: "a"}, {Value: "b"}}},
		{Var: "tags", Type: form.ListMulti, Options: []form.Option{{Value: "a"}}, Extra: validate},
		{Var: "lines", Type: form.TextMulti},
	}}
	sub := func(fields ...form.Field) *form.Form {
		return &form.Form{Type: form.TypeSubmit, Fields: append([]form.Field{{Var: "name", Values: []string{"n"}}}, fields...)}
	}
	for _, tc := range []struct {
		name string
		f    *form.Form
		v    string
		err  error
	}{
		{name: "minimal", f: sub()},
		{name: "full", f: sub(
			form.Field{Var: "public", Values: []string{"true"}},
			form.Field{Var: "owner", Values: []string{"a@b.c"}},
			form.Field{Var: "admins", Values: []string{"a@b.c", "d@e.f"}},
			form.Field{Var: "whois", Values: []string{"anyone"}},
			form.Field{Var: "roles", Values: []string{"a", "b"}},
			form.Field{Var: "tags", Values: []string{"free", "text"}},
			form.Field{Var: "lines", Values: []string{"1", "2"}},
			form.Field{Var: "unknown", Values: []string{"ignored", "twice"}})},
		{name: "required missing", f: &form.Form{Type: form.TypeSubmit}, v: "name", err: form.ErrRequired},
		{name: "required blank", f: &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "name", Values: []string{" "}}}}, v: "name", err: form.ErrRequired},
		{name: "two names", f: &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "name", Values: []string{"a", "b"}}}}, v: "name", err: form.ErrMultipleValues},
		{name: "bad boolean", f: sub(form.Field{Var: "public", Values: []string{"maybe"}}), v: "public", err: form.ErrInvalidValue},
		{name: "bad jid", f: sub(form.Field{Var: "owner", Values: []string{"@"}}), v: "owner", err: form.ErrInvalidValue},
		{name: "bad jid in list", f: sub(form.Field{Var: "admins", Values: []string{"a@b", "b@"}}), v: "admins", err: form.ErrInvalidValue},
		{name: "not an option", f: sub(form.Field{Var: "whois", Values: []string{"everyone"}}), v: "whois", err: form.ErrInvalidValue},
		{name: "not an option in list", f: sub(form.Field{Var: "roles", Values: []string{"a", "z"}}), v: "roles", err: form.ErrInvalidValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.Validate(def)
			if tc.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *form.FieldError
			if !errors.As(err, &fe) || fe.Var != tc.v || !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v on %q", err, tc.err, tc.v)
			}
			if e := fe.StanzaError(); e.Condition != mstanza.BadRequest || !strings.Contains(e.Text[""], tc.v) {
				t.Errorf("stanza error %+v", e)
			}
		})
	}
	if err := sub().Validate(nil); err != nil {
		t.Errorf("against no definition: %v", err)
	}
}

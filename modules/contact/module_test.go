package contact_test

import (
	"encoding/xml"
	"errors"
	"reflect"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/contact"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/stanza"
)

// form is a data form as read back from disco#info.
type form struct {
	Type   string
	Fields []formField
}

type formField struct {
	Var, Type string
	Values    []string
}

// forms decodes every jabber:x:data form in a disco#info result.
func forms(t *testing.T, res *stanza.Stanza) []form {
	t.Helper()
	_, r, ok := res.Child(xml.Name{Space: modtest.NSDiscoInfo, Local: "query"})
	if !ok {
		t.Fatal("result has no disco#info query")
	}
	var out []form
	d := xml.NewTokenDecoder(r)
	for {
		tok, err := d.Token()
		if err != nil {
			return out
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name != (xml.Name{Space: contact.NSData, Local: "x"}) {
			continue
		}
		var x struct {
			Type   string `xml:"type,attr"`
			Fields []struct {
				Var    string   `xml:"var,attr"`
				Type   string   `xml:"type,attr"`
				Values []string `xml:"value"`
			} `xml:"field"`
		}
		if err := d.DecodeElement(&x, &se); err != nil {
			t.Fatalf("decoding form: %v", err)
		}
		f := form{Type: x.Type}
		for _, fl := range x.Fields {
			f.Fields = append(f.Fields, formField{Var: fl.Var, Type: fl.Type, Values: fl.Values})
		}
		out = append(out, f)
	}
}

func TestForm(t *testing.T) {
	m, err := contact.New(contact.Options{Addresses: map[string][]string{
		contact.Security: {"mailto:security@example.org"},
		contact.Abuse:    {"mailto:abuse@example.org", "xmpp:abuse@example.org"},
		contact.Support:  {"https://example.org/support?lang=en&x=1"},
		contact.Sales:    {},
	}}, contact.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	srv, c := modtest.Start(t, m)
	got := forms(t, modtest.DiscoInfo(t, c, jid.MustParse(srv.Domain)))
	want := []form{{Type: "result", Fields: []formField{
		{Var: "FORM_TYPE", Type: "hidden", Values: []string{contact.FormType}},
		{Var: contact.Abuse, Values: []string{"mailto:abuse@example.org", "xmpp:abuse@example.org"}},
		{Var: contact.Security, Values: []string{"mailto:security@example.org"}},
		{Var: contact.Support, Values: []string{"https://example.org/support?lang=en&x=1"}},
	}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("forms\n got %+v\nwant %+v", got, want)
	}
	// Asked again, the form is there again: readers are not shared.
	if again := forms(t, modtest.DiscoInfo(t, c, jid.MustParse(srv.Domain))); !reflect.DeepEqual(again, want) {
		t.Fatalf("second disco#info forms %+v", again)
	}
	// Accounts do not carry the server's contact addresses.
	if f := forms(t, modtest.DiscoInfo(t, c, c.LocalAddr().Bare())); len(f) != 0 {
		t.Fatalf("account disco#info has forms %+v", f)
	}
}

func TestNothingConfigured(t *testing.T) {
	for name, opts := range map[string]contact.Options{
		"nil map":     {},
		"empty lists": {Addresses: map[string][]string{contact.Abuse: nil}},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := contact.New(opts, contact.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			srv, c := modtest.Start(t, m)
			if f := forms(t, modtest.DiscoInfo(t, c, jid.MustParse(srv.Domain))); len(f) != 0 {
				t.Fatalf("disco#info has forms %+v", f)
			}
		})
	}
}

func TestInvalidConfig(t *testing.T) {
	tests := []struct {
		name  string
		addrs map[string][]string
		want  error
	}{
		{name: "unknown type", addrs: map[string][]string{"complaints-addresses": {"mailto:a@example.org"}}, want: contact.ErrUnknownType},
		{name: "singular type", addrs: map[string][]string{"abuse": {"mailto:a@example.org"}}, want: contact.ErrUnknownType},
		{name: "unknown type without URIs", addrs: map[string][]string{"nope": nil}, want: contact.ErrUnknownType},
		{name: "no scheme", addrs: map[string][]string{contact.Abuse: {"abuse@example.org"}}, want: contact.ErrBadURI},
		{name: "empty", addrs: map[string][]string{contact.Abuse: {""}}, want: contact.ErrBadURI},
		{name: "scheme only", addrs: map[string][]string{contact.Abuse: {"mailto:"}}, want: contact.ErrBadURI},
		{name: "unparsable", addrs: map[string][]string{contact.Support: {"https://exa mple.org/%zz"}}, want: contact.ErrBadURI},
		{name: "one bad among good", addrs: map[string][]string{contact.Admin: {"xmpp:admin@example.org", "admin at example.org"}}, want: contact.ErrBadURI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := contact.New(contact.Options{Addresses: tt.addrs}, contact.Deps{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("New() = %v, %v; want error %v", m, err, tt.want)
			}
		})
	}
}

package adhoc_test

import (
	"testing"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/stanza"
)

// FuzzParseForm feeds arbitrary elements to ParseForm: it never panics,
// and a form it accepts survives writing and parsing again.
func FuzzParseForm(f *testing.F) {
	for _, s := range []string{
		`<x xmlns='jabber:x:data' type='submit'><field var='confirm'><value>1</value></field></x>`,
		`<x xmlns='jabber:x:data' type='form'><title>T</title><instructions>I</instructions><field type='list-multi' var='ids' label='L'><desc>D</desc><required/><value>a</value><value>b</value><option><value>c</value></option></field></x>`,
		`<x xmlns='jabber:x:data'><reported><field var='a'/></reported><item><field var='a'><value>1</value></field></item></x>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		toks, err := stanza.ParseElement(b)
		if err != nil {
			return
		}
		form, err := adhoc.ParseForm(stanza.Tokens(toks...))
		if err != nil {
			return
		}
		again, err := adhoc.ParseForm(form.TokenReader())
		if err != nil {
			t.Fatalf("a parsed form does not parse again: %v", err)
		}
		if len(again.Fields) != len(form.Fields) || again.Title != form.Title {
			t.Fatalf("round trip changed %+v into %+v", form, again)
		}
		for i := range form.Fields {
			if len(again.Fields[i].Values) != len(form.Fields[i].Values) {
				t.Fatalf("field %d values %q became %q", i, form.Fields[i].Values, again.Fields[i].Values)
			}
		}
	})
}

package form_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
)

// FuzzParse feeds arbitrary elements to Parse: it never panics, and a form
// it accepts survives writing (as tokens and on the wire) and parsing
// again unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`<x xmlns='jabber:x:data' type='submit'><field var='confirm'><value>1</value></field></x>`,
		`<x xmlns='jabber:x:data' type='form'><title>T</title><instructions>I</instructions><instructions>J</instructions><field type='list-multi' var='ids' label='L'><desc>D</desc><required/><value>a</value><value/><option label='C'><value>c</value></option><validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:string'><open/></validate></field></x>`,
		`<x xmlns='jabber:x:data' type='result'><reported><field var='a'/></reported><item><field var='a'><value>1</value></field></item><item/></x>`,
		`<x xmlns='jabber:x:data' type='cancel'/>`,
		`<x xmlns='jabber:x:data' type='form'><field type='fixed'><value>x</value></field><field type='fixed'/></x>`,
	} {
		f.Add([]byte(s))
	}
	// The archive's query form, as the mam module writes it.
	if b, err := os.ReadFile(filepath.Join("testdata", "mam-query-form.xml")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		toks, err := stanza.ParseElement(b)
		if err != nil {
			return
		}
		fm, err := form.Parse(stanza.Tokens(toks...))
		if err != nil {
			if fm != nil {
				t.Fatalf("a form %+v with error %v", fm, err)
			}
			return
		}
		again, err := form.Parse(fm.TokenReader())
		if err != nil {
			t.Fatalf("a parsed form does not parse again: %v", err)
		}
		if !reflect.DeepEqual(again, fm) {
			t.Fatalf("round trip changed %+v into %+v", fm, again)
		}
		wired, err := parse(t, wire(t, fm))
		if err != nil {
			t.Fatalf("a parsed form does not parse from the wire: %v\n%s", err, wire(t, fm))
		}
		if !reflect.DeepEqual(wired, fm) {
			t.Fatalf("wire round trip changed %+v into %+v", fm, wired)
		}
		_ = fm.Validate(fm)
		_ = fm.FormType()
	})
}

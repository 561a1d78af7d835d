package paging_test

import (
	"reflect"
	"testing"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/paging"
)

// FuzzParse feeds arbitrary elements to Parse: it never panics, an error
// leaves no request, and a request it accepts survives writing and parsing
// again unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set>`,
		`<set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set>`,
		`<set xmlns='http://jabber.org/protocol/rsm'><after>123</after><before>456</before><index>3</index></set>`,
		`<set xmlns='http://jabber.org/protocol/rsm'><max>1</max><max>2</max></set>`,
		`<set xmlns='http://jabber.org/protocol/rsm'><first index='0'>a</first><last>b</last><count>2</count></set>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		toks, err := stanza.ParseElement(b)
		if err != nil {
			return
		}
		req, err := paging.Parse(stanza.Tokens(toks...))
		if err != nil {
			if !reflect.DeepEqual(req, paging.Request{}) {
				t.Fatalf("request %+v with error %v", req, err)
			}
			return
		}
		if (req.Max != nil && *req.Max < 0) || (req.Index != nil && *req.Index < 0) {
			t.Fatalf("negative numbers in %+v", req)
		}
		again, err := parse(t, wire(t, req.TokenReader()))
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip of %+v: %+v, %v", req, again, err)
		}
	})
}

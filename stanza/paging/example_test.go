package paging_test

import (
	"bytes"
	"fmt"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/paging"
)

// A service reads the <set/> of a query, serves the page and answers with
// the result set.
func Example() {
	toks, _ := stanza.ParseElement([]byte(`<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>`))
	req, err := paging.Parse(stanza.Tokens(toks...))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := req.RejectIndex(); err != nil {
		fmt.Println(err)
		return
	}
	items := []string{"a", "b", "c", "d"}
	n := req.Size(50)
	page := items[:n]
	if req.Backward() && *req.Before == "" {
		page = items[len(items)-n:] // the last page
	}
	res := paging.Result{First: page[0], Last: page[len(page)-1], Count: new(len(items))}
	var b bytes.Buffer
	stanza.WriteTokens(&b, res.AppendTokens(nil), "")
	fmt.Println(b.String())
	// Output: <set xmlns="http://jabber.org/protocol/rsm"><first>c</first><last>d</last><count>4</count></set>
}

// Malformed requests are *paging.Error values; StanzaError gives the error
// to answer.
func ExampleParse() {
	toks, _ := stanza.ParseElement([]byte(`<set xmlns='http://jabber.org/protocol/rsm'><max>ten</max></set>`))
	_, err := paging.Parse(stanza.Tokens(toks...))
	fmt.Println(err)
	if pe, ok := err.(*paging.Error); ok {
		fmt.Println(pe.StanzaError().Condition)
	}
	// Output:
	// paging: <max/>: "ten" is not a non-negative number
	// bad-request
}

// Services that cannot skip to an offset refuse paging by index.
func ExampleRequest_RejectIndex() {
	toks, _ := stanza.ParseElement([]byte(`<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><index>30</index></set>`))
	req, _ := paging.Parse(stanza.Tokens(toks...))
	err := req.RejectIndex()
	fmt.Println(err)
	fmt.Println(err.(*paging.Error).StanzaError().Condition)
	// Output:
	// paging: <index/>: paging by index is not supported
	// feature-not-implemented
}

// Size bounds the requested page by the service's largest.
func ExampleRequest_Size() {
	req := paging.Request{Max: new(500)}
	fmt.Println(req.Size(100), (&paging.Request{}).Size(100))
	// Output: 100 100
}

// A result set with the first item's index, for services that know it.
func ExampleResult() {
	res := paging.Result{First: "item-11", Last: "item-20", Index: new(10), Count: new(42)}
	var b bytes.Buffer
	stanza.WriteTokens(&b, stanza.Resolve(res.TokenReader(), ""), "")
	fmt.Println(b.String())
	// Output: <set xmlns="http://jabber.org/protocol/rsm"><first index="10">item-11</first><last>item-20</last><count>42</count></set>
}

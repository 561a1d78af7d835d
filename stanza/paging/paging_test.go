package paging_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"reflect"
	"strings"
	"testing"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/paging"
)

func parse(t testing.TB, s string) (paging.Request, error) {
	t.Helper()
	toks, err := stanza.ParseElement([]byte(s))
	if err != nil {
		t.Fatalf("test input %s: %v", s, err)
	}
	return paging.Parse(stanza.Tokens(toks...))
}

func wire(t testing.TB, r xml.TokenReader) string {
	t.Helper()
	var b bytes.Buffer
	if err := stanza.WriteTokens(&b, stanza.Resolve(r, ""), ""); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

const set = `<set xmlns='http://jabber.org/protocol/rsm'>`

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want paging.Request
	}{
		{set + `</set>`, paging.Request{}},
		{set + `<max>10</max></set>`, paging.Request{Max: new(10)}},
		{set + `<max>0</max></set>`, paging.Request{Max: new(0)}},
		{set + `<max> 7 </max><after>abc</after></set>`, paging.Request{Max: new(7), After: "abc"}},
		{set + `<before>xyz</before></set>`, paging.Request{Before: new("xyz")}},
		{set + `<before/><max>5</max></set>`, paging.Request{Max: new(5), Before: new("")}},
		{set + `<after>a</after><before>b</before></set>`, paging.Request{After: "a", Before: new("b")}},
		{set + `<index>3</index><max>10</max></set>`, paging.Request{Max: new(10), Index: new(3)}},
		{set + "\n  <max>1</max>\n  <other/><x xmlns='urn:x'><max>2</max></x></set>", paging.Request{Max: new(1)}},
	} {
		got, err := parse(t, tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in     string
		notSet bool
		msg    string
	}{
		{in: `<set xmlns='urn:other'/>`, notSet: true},
		{in: `<query xmlns='http://jabber.org/protocol/rsm'/>`, notSet: true},
		{in: set + `<max>x</max></set>`, msg: `<max/>: "x" is not a non-negative number`},
		{in: set + `<max>-1</max></set>`, msg: `<max/>: "-1" is not a non-negative number`},
		{in: set + `<max>99999999999999999999</max></set>`, msg: "not a non-negative number"},
		{in: set + `<max/></set>`, msg: `<max/>: "" is not`},
		{in: set + `<index>one</index></set>`, msg: `<index/>: "one"`},
		{in: set + `<max>1</max><max>2</max></set>`, msg: "<max/>: given twice"},
		{in: set + `<before/><before>1</before></set>`, msg: "<before/>: given twice"},
		{in: set + `<after>1</after><after>2</after></set>`, msg: "<after/>: given twice"},
		{in: set + `<index>1</index><index>2</index></set>`, msg: "<index/>: given twice"},
		{in: set + `<after/></set>`, msg: "<after/>: empty"},
		{in: set + `<after><b/></after></set>`, msg: "<after/>: holds an element"},
	} {
		got, err := parse(t, tc.in)
		if tc.notSet {
			if !errors.Is(err, paging.ErrNotSet) {
				t.Errorf("%s: %+v, %v; want ErrNotSet", tc.in, got, err)
			}
			continue
		}
		var pe *paging.Error
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.msg) || !reflect.DeepEqual(got, paging.Request{}) {
			t.Errorf("%s: %+v, %v; want an error with %q", tc.in, got, err, tc.msg)
			continue
		}
		if e := pe.StanzaError(); e.Type != mstanza.Modify || e.Condition != mstanza.BadRequest || !strings.Contains(e.Text[""], tc.msg) {
			t.Errorf("%s: stanza error %+v", tc.in, e)
		}
	}
}

func TestParseTruncated(t *testing.T) {
	toks, err := stanza.ParseElement([]byte(set + `<max>10</max><x xmlns='urn:x'><y/></x><before/></set>`))
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(toks) - 1 {
		_, err := paging.Parse(stanza.Tokens(toks[:n]...))
		var pe *paging.Error
		switch {
		case n == 0 && !errors.Is(err, paging.ErrNotSet):
			t.Errorf("no tokens: %v", err)
		case n > 0 && (!errors.As(err, &pe) || pe.Elem != "set"):
			t.Errorf("%d of %d tokens: %v", n, len(toks), err)
		}
	}
}

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
	toks, _ := stanza.ParseElement([]byte(set + `<max>10</max></set>`))
	if _, err := paging.Parse(&failing{toks: toks[:2], err: boom}); !errors.Is(err, boom) {
		t.Errorf("error %v, want the reader's", err)
	}
}

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		max       *int
		limit, is int
	}{
		{nil, 50, 50}, {new(10), 50, 10}, {new(0), 50, 0}, {new(500), 50, 50}, {new(50), 50, 50},
	} {
		r := paging.Request{Max: tc.max}
		if got := r.Size(tc.limit); got != tc.is {
			t.Errorf("max %v, limit %d: %d, want %d", tc.max, tc.limit, got, tc.is)
		}
	}
}

func TestRejectIndex(t *testing.T) {
	if err := (&paging.Request{Max: new(3)}).RejectIndex(); err != nil {
		t.Errorf("without index: %v", err)
	}
	err := (&paging.Request{Index: new(0)}).RejectIndex()
	var pe *paging.Error
	if !errors.As(err, &pe) || !pe.Unsupported {
		t.Fatalf("with index: %v", err)
	}
	if e := pe.StanzaError(); e.Type != mstanza.Cancel || e.Condition != mstanza.FeatureNotImplemented {
		t.Errorf("stanza error %+v", e)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range []paging.Request{
		{},
		{Max: new(0)},
		{Max: new(10), After: "a", Before: new("b"), Index: new(4)},
		{Before: new("")},
	} {
		got, err := parse(t, wire(t, r.TokenReader()))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("%+v: %+v, %v", r, got, err)
		}
	}
	if got, want := wire(t, paging.Request{Max: new(10), Before: new("")}.TokenReader()),
		`<set xmlns="http://jabber.org/protocol/rsm"><max>10</max><before/></set>`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestResult(t *testing.T) {
	for _, tc := range []struct {
		r    paging.Result
		want string
	}{
		{paging.Result{}, `<set xmlns="http://jabber.org/protocol/rsm"/>`},
		{paging.Result{Count: new(0)}, `<set xmlns="http://jabber.org/protocol/rsm"><count>0</count></set>`},
		{paging.Result{First: "a", Last: "b"}, `<set xmlns="http://jabber.org/protocol/rsm"><first>a</first><last>b</last></set>`},
		{paging.Result{First: "a&", Last: "b", Index: new(0), Count: new(800)},
			`<set xmlns="http://jabber.org/protocol/rsm"><first index="0">a&amp;</first><last>b</last><count>800</count></set>`},
	} {
		if got := wire(t, tc.r.TokenReader()); got != tc.want {
			t.Errorf("%+v:\ngot  %s\nwant %s", tc.r, got, tc.want)
		}
		if got := stanza.Resolve(stanza.Tokens(tc.r.AppendTokens(nil)...), ""); !reflect.DeepEqual(got, stanza.Resolve(tc.r.TokenReader(), "")) {
			t.Errorf("AppendTokens differs from TokenReader: %v", got)
		}
	}
}

package filter_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/stanza"
)

// A filter that refuses messages advertising a spam domain when a local
// account sends them; in a server it goes in server.Config.Filters.
func ExampleFunc() {
	spam := filter.Only(filter.Send, filter.Func(func(ctx context.Context, p filter.Packet) (*stanza.Stanza, error) {
		if body, _ := p.Stanza.ChildText(xml.Name{Space: stanza.NSClient, Local: "body"}); strings.Contains(body, "cheap-pills.example") {
			return nil, mstanza.Error{Type: mstanza.Modify, Condition: mstanza.PolicyViolation}
		}
		return p.Stanza, nil
	}))

	msg := &stanza.Stanza{Kind: stanza.Message, From: jid.MustParse("alice@example.org/phone"), To: jid.MustParse("bob@example.org")}
	msg.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "visit cheap-pills.example"))
	for _, ph := range []filter.Phase{filter.Send, filter.Receive} {
		_, err := spam.Filter(context.Background(), filter.Packet{Phase: ph, Origin: filter.Client, Account: jid.MustParse("alice@example.org"), Stanza: msg})
		fmt.Println(ph, err)
	}
	// Output:
	// send policy-violation
	// receive <nil>
}

// Chain runs filters in order, each on what the one before passed on.
func ExampleChain() {
	mark := func(name string) filter.Filter {
		return filter.Func(func(ctx context.Context, p filter.Packet) (*stanza.Stanza, error) {
			c := p.Stanza.Clone()
			c.Attrs = append(c.Attrs, xml.Attr{Name: xml.Name{Local: "seen-by-" + name}, Value: "1"})
			return c, nil
		})
	}
	drop := filter.Func(func(context.Context, filter.Packet) (*stanza.Stanza, error) { return nil, filter.ErrDrop })

	st := &stanza.Stanza{Kind: stanza.Message}
	out, err := filter.Chain(mark("a"), mark("b")).Filter(context.Background(), filter.Packet{Stanza: st})
	fmt.Println(len(out.Attrs), len(st.Attrs), err)
	_, err = filter.Chain(mark("a"), drop, mark("c")).Filter(context.Background(), filter.Packet{Stanza: st})
	fmt.Println(errors.Is(err, filter.ErrDrop))
	// Output:
	// 2 0 <nil>
	// true
}

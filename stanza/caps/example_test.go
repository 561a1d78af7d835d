package caps_test

import (
	"fmt"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/caps"
)

// The simple example of XEP-0115 §5.2.
func ExampleInfo_Ver() {
	in := caps.Info{
		Identities: []caps.Identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}},
		Features: []string{
			"http://jabber.org/protocol/disco#info",
			"http://jabber.org/protocol/disco#items",
			"http://jabber.org/protocol/muc",
			"http://jabber.org/protocol/caps",
		},
	}
	ver, err := in.Ver(caps.SHA1)
	fmt.Println(ver, err)
	// Output: QgayPKawpkPSDYmwT/WM94uAlu0= <nil>
}

// A processing entity parses the disco#info answer for node#ver and
// trusts it only if it hashes to ver.
func ExampleParse() {
	c := caps.Caps{Hash: caps.SHA1, Node: "http://code.google.com/p/exodus", Ver: "QgayPKawpkPSDYmwT/WM94uAlu0="}
	answer, err := stanza.ParseElement([]byte(`<query xmlns='http://jabber.org/protocol/disco#info'
	    node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
	  <identity category='client' name='Exodus 0.9.1' type='pc'/>
	  <feature var='http://jabber.org/protocol/caps'/>
	  <feature var='http://jabber.org/protocol/disco#info'/>
	  <feature var='http://jabber.org/protocol/disco#items'/>
	  <feature var='http://jabber.org/protocol/muc'/>
	</query>`))
	if err != nil {
		fmt.Println(err)
		return
	}
	in, err := caps.ParseTokens(answer)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(in.Verify(c.Hash, c.Ver), len(in.Features))
	// Output: true 4
}

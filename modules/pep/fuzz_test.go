package pep

import (
	"testing"

	"github.com/kiez-im/kiez/stanza"
)

// FuzzParseRequest: the pubsub request parser takes any element a client
// sends without panicking, and what it accepts is complete.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item id='1'><x xmlns='urn:t'>a</x></item></publish></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item><x xmlns='urn:t'/></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#access_model'><value>open</value></field></x></publish-options></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n' max_items='2'><item id='a'/></items></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='n' notify='true'><item id='a'/></retract></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#node_config</value></field></x></configure></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='n'/></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='n'/><configure/></pubsub>`,
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, payload string, set bool) {
		typ := `get`
		if set {
			typ = `set`
		}
		st, err := stanza.Unmarshal([]byte(`<iq xmlns="jabber:client" type="` + typ + `" id="f">` + payload + `</iq>`))
		if err != nil {
			return
		}
		r, err := parseRequest(st)
		if err != nil {
			return
		}
		switch r.op {
		case opPublish:
			if r.node == "" || len(r.item.payload) == 0 {
				t.Fatalf("accepted a publish without node or payload: %q", payload)
			}
		case opRetract:
			if r.node == "" || len(r.ids) != 1 {
				t.Fatalf("accepted a retract without node or item: %q", payload)
			}
		case opItems, opConfigure, opPurge, opDelete:
			if r.node == "" {
				t.Fatalf("accepted op %d without a node: %q", r.op, payload)
			}
		}
	})
}

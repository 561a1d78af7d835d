package pep_test

import (
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/pep"
	"github.com/kiez-im/kiez/stanza"
)

// TestImport: nodes come back from an export with their configuration
// and their items, in order.
func TestImport(t *testing.T) {
	e := start(t, pep.Options{})
	a := e.srv.Connect(t, e.alice, "pw")
	iq := func(id, payload string) {
		t.Helper()
		toks, err := stanza.ParseElement([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		modtest.MustResult(t, modtest.Do(t, a, modtest.IQ(id, stanza.Set, jid.JID{}, stanza.Tokens(toks...))), jid.JID{})
	}
	const node = "urn:example:mood"
	iq("create", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='`+node+`'/></pubsub>`)
	iq("configure", `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='`+node+`'><x xmlns='jabber:x:data' type='submit'>`+
		`<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>`+
		`<field var='pubsub#max_items'><value>5</value></field><field var='pubsub#access_model'><value>open</value></field></x></configure></pubsub>`)
	for _, id := range []string{"one", "two", "three"} {
		iq("pub-"+id, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='`+node+`'><item id='`+id+`'><mood xmlns='`+node+`'>`+id+`</mood></item></publish></pubsub>`)
	}
	iq("pub-other", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:example:other'><item id='x'><other xmlns='urn:example:other' a='&amp;'/></item></publish></pubsub>`)
	before, after, report := e.srv.ReImport(t, e.alice)
	if before != after || report.Elements != 2 {
		t.Fatalf("export after the import (%+v):\n%s\ndiffers from the one before:\n%s", report, after, before)
	}
	for _, want := range []string{`<value xmlns="jabber:x:data">open</value>`, `id="one"`, `id="three"`, `a="&amp;"`} {
		if !strings.Contains(after, want) {
			t.Errorf("export after the import lacks %s:\n%s", want, after)
		}
	}
	items, err := e.store.PEPItems(t.Context(), e.alice.String(), node, nil, 0)
	if err != nil || len(items) != 3 || items[0].ID != "one" || items[2].ID != "three" {
		t.Fatalf("items after the import: %+v, %v", items, err)
	}
}

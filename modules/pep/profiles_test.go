package pep_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/pep"
	"github.com/kiez-im/kiez/stanza"
)

// The node profiles clients use, each with real sessions: XEP-0223
// private data, XEP-0292 vCard4, XEP-0490 displayed synchronisation.

// TestPrivateData (XEP-0223): a node published with access_model
// whitelist is the owner's alone: contacts can neither fetch it nor get
// events, the owner's other resource gets them.
func TestPrivateData(t *testing.T) {
	e := start(t, pep.Options{})
	e.share(t, e.alice, e.bob)
	const node = "urn:example:client-settings"
	a1 := e.online(t, e.alice, node)
	a2 := e.online(t, e.alice, node)
	b := e.online(t, e.bob, node)
	r := modtest.Do(t, a1, publishIQ("p", node, "current", elem("urn:example:client-settings", "settings", nil),
		"pubsub#persist_items", "true", "pubsub#access_model", "whitelist"))
	modtest.MustResult(t, r, jid.JID{})
	a2.Expect(isEvent(e.alice, node))
	b.SyncNone(isEvent(e.alice, node))
	r = modtest.Do(t, b, itemsIQ("f", e.alice, node, 0))
	if modtest.Condition(r) != mstanza.NotAllowed || appCondition(r) != "closed-node" {
		t.Errorf("contact fetching private data: %v %q", modtest.Condition(r), appCondition(r))
	}
	if r := modtest.Do(t, a2, itemsIQ("o", jid.JID{}, node, 0)); len(itemIDs(r)) != 1 {
		t.Errorf("owner fetching private data: %v", itemIDs(r))
	}
}

// TestVCard4 (XEP-0292): the vCard4 node is a presence node: a contact
// fetches it and gets events, a stranger is refused.
func TestVCard4(t *testing.T) {
	e := start(t, pep.Options{})
	e.share(t, e.alice, e.bob)
	const node = "urn:ietf:params:xml:ns:vcard-4.0"
	b := e.online(t, e.bob, node)
	a := e.srv.Connect(t, e.alice, "pw")
	card := elem(node, "vcard", nil, elem(node, "fn", nil, stanza.TextElem(xml.Name{Space: node, Local: "text"}, "Alice")))
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("p", node, "current", card)), jid.JID{})
	ev := b.Expect(isEvent(e.alice, node))
	if !hasElem(ev, node, "fn") {
		t.Errorf("event without the vCard: %v", ev.Inner)
	}
	if r := modtest.Do(t, b, itemsIQ("c", e.alice, node, 0)); r.Type != stanza.Result || !hasElem(r, node, "vcard") {
		t.Errorf("contact fetching the vCard4: %v", modtest.Condition(r))
	}
	d := e.srv.Connect(t, e.dave, "pw")
	if r := modtest.Do(t, d, itemsIQ("s", e.alice, node, 0)); modtest.Condition(r) != mstanza.NotAuthorized {
		t.Errorf("stranger fetching the vCard4: %v", modtest.Condition(r))
	}
}

// TestDisplayedSync (XEP-0490): displayed markers published with the
// XEP's node configuration reach the owner's other resources only, one
// item per conversation, and a new resource gets no last item (it fetches).
func TestDisplayedSync(t *testing.T) {
	e := start(t, pep.Options{})
	e.share(t, e.alice, e.bob)
	const node = "urn:xmpp:mds:displayed:0"
	a1 := e.online(t, e.alice, node)
	a2 := e.online(t, e.alice, node)
	b := e.online(t, e.bob, node)
	displayed := func(id string) xml.TokenReader {
		return elem(node, "displayed", nil, elem("urn:xmpp:sid:0", "stanza-id", []xml.Attr{
			stanza.Attr("by", e.alice.String()), stanza.Attr("id", id)}))
	}
	opts := []string{"pubsub#persist_items", "true", "pubsub#access_model", "whitelist",
		"pubsub#max_items", "max", "pubsub#send_last_published_item", "never"}
	for i, peer := range []string{"bob@localhost", "carol@localhost", "bob@localhost"} {
		r := modtest.Do(t, a1, publishIQ(strings.Repeat("p", i+1), node, peer, displayed(strings.Repeat("x", i+1)), opts...))
		modtest.MustResult(t, r, jid.JID{})
		a2.Expect(isEvent(e.alice, node))
	}
	b.SyncNone(isEvent(e.alice, node))
	if got := itemIDs(modtest.Do(t, a2, itemsIQ("all", jid.JID{}, node, 0))); strings.Join(got, ",") != "carol@localhost,bob@localhost" {
		t.Errorf("items: %q, want one per conversation, the latest last", got)
	}
	a3 := e.online(t, e.alice, node)
	a3.SyncNone(isEvent(e.alice, node))
}

// TestMaxItemsLarge: a client asking for more items than the server
// keeps gets what "max" gets, in publish-options (a precondition both
// ways) and in a configuration.
func TestMaxItemsLarge(t *testing.T) {
	e := start(t, pep.Options{MaxItems: 50})
	a := e.srv.Connect(t, e.alice, "pw")
	const node = "urn:xmpp:bookmarks:1"
	conf := func() xml.TokenReader { return elem(node, "conference", nil) }
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("p1", node, "a@conference.localhost", conf(),
		"pubsub#access_model", "whitelist", "pubsub#max_items", "10000")), jid.JID{})
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("p2", node, "b@conference.localhost", conf(),
		"pubsub#access_model", "whitelist", "pubsub#max_items", "max")), jid.JID{})
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("p3", node, "c@conference.localhost", conf(),
		"pubsub#access_model", "whitelist", "pubsub#max_items", "10000")), jid.JID{})
	if got := itemIDs(modtest.Do(t, a, itemsIQ("i", jid.JID{}, node, 0))); len(got) != 3 {
		t.Errorf("items: %q", got)
	}
	if r := modtest.Do(t, a, publishIQ("p4", node, "d@conference.localhost", conf(), "pubsub#max_items", "3")); modtest.Condition(r) != mstanza.Conflict {
		t.Errorf("a smaller max_items than the node's: %v", modtest.Condition(r))
	}
}

// TestCreateAndConfigure: a node created with a configuration has it;
// creating it again is a conflict; the default configuration is shown.
func TestCreateAndConfigure(t *testing.T) {
	e := start(t, pep.Options{})
	a := e.srv.Connect(t, e.alice, "pw")
	create := func(id string) *stanza.Stanza {
		return modtest.IQ(id, stanza.Set, jid.JID{}, elem(nsPubSub, "pubsub", nil,
			elem(nsPubSub, "create", node("urn:test:created")),
			elem(nsPubSub, "configure", nil, submitForm(nsPubSub+"#node_config", "pubsub#access_model", "open", "pubsub#max_items", "7"))))
	}
	modtest.MustResult(t, modtest.Do(t, a, create("c1")), jid.JID{})
	if r := modtest.Do(t, a, create("c2")); modtest.Condition(r) != mstanza.Conflict {
		t.Errorf("second create: %v", modtest.Condition(r))
	}
	get := modtest.IQ("g", stanza.Get, jid.JID{}, elem(nsOwner, "pubsub", nil, elem(nsOwner, "configure", node("urn:test:created"))))
	if r := modtest.Do(t, a, get); formValue(r, "pubsub#access_model") != "open" || formValue(r, "pubsub#max_items") != "7" {
		t.Errorf("created node's configuration: %q %q", formValue(r, "pubsub#access_model"), formValue(r, "pubsub#max_items"))
	}
	def := modtest.IQ("d", stanza.Get, jid.JID{}, elem(nsOwner, "pubsub", nil, elem(nsOwner, "default", nil)))
	if r := modtest.Do(t, a, def); formValue(r, "pubsub#access_model") != "presence" || formValue(r, "pubsub#max_items") != "1" {
		t.Errorf("default configuration: %q %q", formValue(r, "pubsub#access_model"), formValue(r, "pubsub#max_items"))
	}
	// A stranger fetches from the open node, which has no items yet.
	d := e.srv.Connect(t, e.dave, "pw")
	if r := modtest.Do(t, d, itemsIQ("s", e.alice, "urn:test:created", 0)); r.Type != stanza.Result || len(itemIDs(r)) != 0 {
		t.Errorf("stranger on the open node: %v %q", modtest.Condition(r), itemIDs(r))
	}
}

// TestExport: an account's export (XEP-0227) holds its nodes'
// configurations and items.
func TestExport(t *testing.T) {
	e := start(t, pep.Options{})
	a := e.srv.Connect(t, e.alice, "pw")
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("p", nodeMeta, "h1", meta("h1"))), jid.JID{})
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if err := e.srv.ExportUser(context.Background(), e.alice, enc); err != nil {
		t.Fatal(err)
	}
	enc.Flush()
	out := buf.String()
	for _, want := range []string{nsOwner, `node="` + nodeMeta + `"`, "pubsub#access_model", `id="h1"`, `bytes="1234"`} {
		if !strings.Contains(out, want) {
			t.Errorf("export lacks %s: %s", want, out)
		}
	}
}

package pep_test

import (
	"bytes"
	"encoding/xml"
	"regexp"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/pep"
	"github.com/kiez-im/kiez/server"
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

// TestImportProsody: a node as Prosody's prosody-migrator writes it
// (0.12): its configuration form lists every field Prosody knows, most
// without a value, and options PEP here does not have; the node is
// created with the values given and defaults for the rest.
func TestImportProsody(t *testing.T) {
	e := start(t, pep.Options{})
	const node = "urn:example:mood"
	field := func(v, typ, value string) string {
		f := `<field var='` + v + `' type='` + typ + `'`
		if value == "" {
			return f + `/>`
		}
		return f + `><value>` + value + `</value></field>`
	}
	doc := `<server-data xmlns='urn:xmpp:pie:0'><host jid='` + e.alice.Domainpart() + `'><user name='erin'>` +
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='` + node + `'><x xmlns='jabber:x:data' type='submit'>` +
		field("FORM_TYPE", "hidden", "http://jabber.org/protocol/pubsub#node_config") +
		field("pubsub#title", "text-single", "") + field("pubsub#description", "text-single", "") +
		field("pubsub#type", "text-single", "") + field("pubsub#max_items", "text-single", "") +
		field("pubsub#persist_items", "boolean", "") + field("pubsub#access_model", "list-single", "authorize") +
		field("pubsub#publish_model", "list-single", "") + field("pubsub#send_last_published_item", "list-single", "") +
		field("pubsub#deliver_notifications", "boolean", "1") + field("pubsub#notification_type", "list-single", "") +
		field("pubsub#notify_delete", "boolean", "1") + field("pubsub#notify_retract", "boolean", "0") +
		`</x></configure></pubsub>` +
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='` + node + `'><item id='current'><mood xmlns='` + node + `'>happy</mood></item></items></pubsub>` +
		`</user></host></server-data>`
	r, err := e.srv.ImportUsers(t.Context(), strings.NewReader(doc), server.ImportOptions{NoCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Failed(); err != nil || len(r.Users) != 1 || r.Users[0].Elements != 2 {
		t.Fatalf("import: %v %+v", err, r.Users)
	}
	erin := "erin@" + e.alice.Domainpart()
	items, err := e.store.PEPItems(t.Context(), erin, node, nil, 0)
	if err != nil || len(items) != 1 || items[0].ID != "current" || !strings.Contains(string(items[0].Payload), ">happy</mood>") {
		t.Fatalf("items after the import: %+v, %v", items, err)
	}
	var buf bytes.Buffer
	if err := e.srv.ExportUser(t.Context(), jid.MustParse(erin), xml.NewEncoder(&buf)); err != nil {
		t.Fatal(err)
	}
	// authorize became whitelist; notify_retract is off, the others are
	// this module's defaults.
	for _, want := range []string{
		`var="pubsub#access_model"[^>]*>(<[^>]*>)*whitelist<`,
		`var="pubsub#notify_retract"[^>]*>(<[^>]*>)*false<`,
		`var="pubsub#persist_items"[^>]*>(<[^>]*>)*true<`,
	} {
		if !regexp.MustCompile(want).MatchString(buf.String()) {
			t.Errorf("the export after the import lacks %s:\n%s", want, buf.String())
		}
	}
}

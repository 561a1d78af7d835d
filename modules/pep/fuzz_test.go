package pep

import (
	"context"
	"errors"
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
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

// FuzzLegacyBookmarks: any <storage xmlns='storage:bookmarks'/> a client
// stores converts into items without error or panic, and reads back with
// every room that had a valid jid, once; a payload of any form stored in
// the avatar nodes reads without panic.
func FuzzLegacyBookmarks(f *testing.F) {
	for _, s := range []string{
		`<storage xmlns='storage:bookmarks'><conference jid='a@conference.example.org' name='A' autojoin='1'><nick>n</nick><password>p</password><x xmlns='urn:ext'>e</x></conference><url name='u' url='https://example.org/'/></storage>`,
		`<storage xmlns='storage:bookmarks'><conference jid='a@b'/><conference jid='a@b' name='again'/><conference jid='@@'/><conference/></storage>`,
		`<storage xmlns='storage:bookmarks'/>`,
		`<metadata xmlns='urn:xmpp:avatar:metadata'><info id='x' url='https://example.org/a.png'/><info id='y' bytes='1' type='image/png'/></metadata>`,
		`<data xmlns='urn:xmpp:avatar:data'>iVBORw0K
Ggo=</data>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		toks, err := stanza.ParseElement([]byte(payload))
		if err != nil {
			return
		}
		store := memory.New()
		ros, err := roster.New(roster.Options{}, roster.Deps{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(Options{}, Deps{Store: store, Roster: ros})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		alice := jid.MustParse("alice@example.org")
		// The avatar nodes hold what a client put there.
		for _, node := range []string{NodeAvatarMetadata, NodeAvatarData} {
			if _, _, err := store.PublishPEPItem(ctx, alice.String(), node, nil, storage.PEPItem{ID: "y", Payload: []byte(payload)}, storage.PEPLimits{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := m.Avatars().AvatarHash(ctx, alice); err != nil {
			t.Fatalf("avatar of %q: %v", payload, err)
		}
		var list stanza.Element
		for list = range stanza.Elements(toks) {
			break
		}
		if list.Name != nameLegacyStorage {
			return
		}
		want := map[string]bool{}
		for c := range list.Children() {
			if c.Name != nameLegacyConference {
				continue
			}
			if j, err := jid.Parse(c.Attr("jid")); err == nil && j.Domainpart() != "" {
				want[j.String()] = true
			}
		}
		err = m.Bookmarks().SetLegacyBookmarks(ctx, alice, list)
		var fail stanza.Failure
		if errors.As(err, &fail) && fail.Err.Condition == mstanza.NotAcceptable {
			return // a payload too big
		}
		if err != nil {
			t.Fatalf("storing %q: %v", payload, err)
		}
		out, err := m.Bookmarks().LegacyBookmarks(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for el := range stanza.Elements(out) {
			for c := range el.Children() {
				got[c.Attr("jid")]++
			}
		}
		if len(got) != len(want) {
			t.Fatalf("stored %q, read back %v", payload, got)
		}
		for j, n := range got {
			if !want[j] || n != 1 {
				t.Fatalf("stored %q, read back %v", payload, got)
			}
		}
	})
}

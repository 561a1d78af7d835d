package mam

import (
	"encoding/xml"
	"testing"

	"github.com/kiez-im/kiez/stanza"
)

func TestArchivable(t *testing.T) {
	for _, tc := range []struct {
		xml  string
		want bool
	}{
		{`<message type='chat'><body>hi</body></message>`, true},
		{`<message><body>hi</body></message>`, true},
		{`<message type='normal'><subject>topic</subject></message>`, true},
		{`<message type='headline'><body>news</body></message>`, false},
		{`<message type='groupchat'><body>all</body></message>`, false},
		{`<message type='error'><body>hi</body></message>`, false},
		{`<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, false},
		{`<message type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='x'/></message>`, true},
		{`<message type='chat'><markable xmlns='urn:xmpp:chat-markers:0'/></message>`, false},
		{`<message type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>`, false},
		{`<message type='chat'><body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`, false},
		{`<message type='chat'><store xmlns='urn:xmpp:hints'/></message>`, true},
		{`<message type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`, true},
		{`<message type='chat'><encrypted xmlns='urn:xmpp:omemo:2'/></message>`, true},
		{`<message><x xmlns='http://jabber.org/protocol/muc#user'><invite from='a@b'/></x></message>`, true},
		{`<message><x xmlns='http://jabber.org/protocol/muc#user'><item/></x></message>`, false},
		{`<message><x xmlns='jabber:x:conference' jid='room@muc'/></message>`, true},
		{`<message type='chat'><propose xmlns='urn:xmpp:jingle-message:0' id='c'/></message>`, true},
		{`<message type='chat'><reactions xmlns='urn:xmpp:reactions:0' id='m'/></message>`, true},
		{`<message><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>hi</body></message></forwarded></received></message>`, false},
		{`<message><result xmlns='urn:xmpp:mam:2' id='1'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>hi</body></message></forwarded></result></message>`, false},
		{`<message type='chat'><x xmlns='urn:example'><body>nested</body></x></message>`, false},
	} {
		toks, err := stanza.ParseElement([]byte(tc.xml))
		if err != nil {
			t.Fatal(err)
		}
		start := toks[0].(xml.StartElement)
		st := &stanza.Stanza{Kind: stanza.Message, Type: stanza.AttrValue(start.Attr, "type"), Inner: toks[1 : len(toks)-1]}
		if got := archivable(st); got != tc.want {
			t.Errorf("%s: archivable %v, want %v", tc.xml, got, tc.want)
		}
	}
}

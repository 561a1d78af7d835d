package stanza_test

import (
	"encoding/xml"
	"fmt"
	"testing"

	"github.com/kiez-im/kiez/stanza"
)

func TestClassify(t *testing.T) {
	const (
		fwdBody  = `<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2024-01-01T00:00:00Z'/><message xmlns='jabber:client' type='chat'><body>hi</body></message></forwarded>`
		fwdState = `<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded>`
	)
	for _, tc := range []struct {
		inner     string
		want, fwd stanza.Class
	}{
		{``, 0, 0},
		{`<body>hi</body>`, stanza.Body, 0},
		{`<body xmlns=''>hi</body>`, stanza.Body, 0},
		{`<subject>s</subject><thread>t</thread>`, stanza.Subject | stanza.Thread, 0},
		{`<x xmlns='urn:example'><body>nested</body></x>`, stanza.Other, 0},
		{`<error type='cancel'/>`, stanza.Other, 0},
		{`<composing xmlns='http://jabber.org/protocol/chatstates'/>`, stanza.ChatState, 0},
		{`<request xmlns='urn:xmpp:receipts'/>`, stanza.Receipt, 0},
		{`<received xmlns='urn:xmpp:receipts' id='x'/>`, stanza.Receipt, 0},
		{`<markable xmlns='urn:xmpp:chat-markers:0'/>`, stanza.Markable, 0},
		{`<displayed xmlns='urn:xmpp:chat-markers:0' id='x'/>`, stanza.Marker, 0},
		{`<encrypted xmlns='eu.siacs.conversations.axolotl'/>`, stanza.OMEMO, 0},
		{`<encrypted xmlns='urn:xmpp:omemo:2'/>`, stanza.OMEMO, 0},
		{`<header xmlns='urn:xmpp:omemo:2'/>`, stanza.Other, 0},
		{`<openpgp xmlns='urn:xmpp:openpgp:0'>…</openpgp>`, stanza.OpenPGP, 0},
		{`<encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:otr:0'/>`, stanza.EME, 0},
		{`<x xmlns='jabber:x:oob'><url>https://x</url></x>`, stanza.OOB, 0},
		{`<reactions xmlns='urn:xmpp:reactions:0' id='m'/>`, stanza.Reaction, 0},
		{`<retract xmlns='urn:xmpp:message-retract:1' id='m'/>`, stanza.Retraction, 0},
		{`<retract xmlns='urn:xmpp:message-retract:0'/>`, stanza.Retraction, 0},
		{`<x xmlns='jabber:x:conference' jid='room@muc'/>`, stanza.DirectInvite, 0},
		{`<x xmlns='http://jabber.org/protocol/muc#user'><invite from='a@b'/></x>`, stanza.MUCUser | stanza.MUCInvite, 0},
		{`<x xmlns='http://jabber.org/protocol/muc#user'><item/></x>`, stanza.MUCUser, 0},
		{`<x xmlns='http://jabber.org/protocol/muc#user'><decline><invite/></decline></x>`, stanza.MUCUser, 0},
		{`<propose xmlns='urn:xmpp:jingle-message:0' id='c'/>`, stanza.Call, 0},
		{`<proceed xmlns='urn:xmpp:jingle-message:1' id='c'/>`, stanza.Call, 0},
		{`<store xmlns='urn:xmpp:hints'/><no-store xmlns='urn:xmpp:hints'/>`, stanza.Store | stanza.NoStore, 0},
		{`<no-permanent-store xmlns='urn:xmpp:hints'/><no-copy xmlns='urn:xmpp:hints'/>`, stanza.NoPermanentStore | stanza.NoCopy, 0},
		{`<private xmlns='urn:xmpp:carbons:2'/>`, stanza.CarbonsPrivate, 0},
		{`<enable xmlns='urn:xmpp:carbons:2'/>`, stanza.Other, 0},
		{`<delay xmlns='urn:xmpp:delay' stamp='2024-01-01T00:00:00Z'/>`, stanza.Delay, 0},
		{`<stanza-id xmlns='urn:xmpp:sid:0' id='1' by='a@b'/><origin-id xmlns='urn:xmpp:sid:0' id='2'/>`, stanza.StanzaID, 0},
		{`<received xmlns='urn:xmpp:carbons:2'>` + fwdBody + `</received>`, stanza.CarbonsCopy, stanza.Body},
		{`<sent xmlns='urn:xmpp:carbons:2'>` + fwdState + `</sent>`, stanza.CarbonsCopy, stanza.ChatState},
		{`<result xmlns='urn:xmpp:mam:2' id='1'>` + fwdBody + `</result>`, stanza.ArchiveResult, stanza.Body},
		{`<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2'>` + fwdBody + `</result></message></forwarded></received>`, stanza.CarbonsCopy, stanza.Body},
		{`<received xmlns='urn:xmpp:carbons:2'/>`, stanza.CarbonsCopy, 0},
		{`<body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/><markable xmlns='urn:xmpp:chat-markers:0'/><origin-id xmlns='urn:xmpp:sid:0' id='o'/>`,
			stanza.Body | stanza.ChatState | stanza.Markable | stanza.StanzaID, 0},
	} {
		st := parse(t, `<message>`+tc.inner+`</message>`)
		if got := stanza.Classify(st); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.inner, got, tc.want)
		}
		if got := stanza.ClassifyForwarded(st); got != tc.fwd {
			t.Errorf("%s: forwarded %v, want %v", tc.inner, got, tc.fwd)
		}
	}
}

// Stored XML is content Classify does not look into, wherever the message
// keeps it: among its children (an offline message) or as the forwarded
// message (an archive result the server sends).
func TestClassifyStored(t *testing.T) {
	offline := &stanza.Stanza{Kind: stanza.Message, Inner: []xml.Token{stanza.Raw(`<body>x</body>`)}}
	if got := stanza.Classify(offline); got != stanza.Stored {
		t.Errorf("offline message: %v", got)
	}
	result := xml.Name{Space: "urn:xmpp:mam:2", Local: "result"}
	fwd := xml.Name{Space: "urn:xmpp:forward:0", Local: "forwarded"}
	archived := &stanza.Stanza{Kind: stanza.Message, Inner: []xml.Token{
		xml.StartElement{Name: result}, xml.StartElement{Name: fwd},
		xml.StartElement{Name: xml.Name{Space: "urn:xmpp:delay", Local: "delay"}}, xml.EndElement{Name: xml.Name{Space: "urn:xmpp:delay", Local: "delay"}},
		stanza.Raw(`<message xmlns="jabber:client"><body>x</body></message>`),
		xml.EndElement{Name: fwd}, xml.EndElement{Name: result},
	}}
	if got, fwd := stanza.Classify(archived), stanza.ClassifyForwarded(archived); got != stanza.ArchiveResult || fwd != stanza.Stored {
		t.Errorf("archive result: %v, forwarded %v", got, fwd)
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[stanza.Class]string{
		0:                                  "0",
		stanza.Body:                        "Body",
		stanza.Other:                       "Other",
		stanza.Stored | stanza.Body:        "Body|Stored",
		stanza.Encrypted:                   "OMEMO|OpenPGP|EME",
		stanza.Forwarded | stanza.Other<<1: "CarbonsCopy|ArchiveResult|0x10000000",
	} {
		if got := c.String(); got != want {
			t.Errorf("%#x: %s, want %s", uint64(c), got, want)
		}
	}
}

// Classifying a message allocates nothing.
func TestClassifyAllocs(t *testing.T) {
	st := parse(t, `<message type='chat'><body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'><invite/></x><active xmlns='http://jabber.org/protocol/chatstates'/><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>b</body></message></forwarded></received></message>`)
	var c stanza.Class
	if n := testing.AllocsPerRun(100, func() { c |= stanza.Classify(st) | stanza.ClassifyForwarded(st) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func ExampleClassify() {
	st, _ := stanza.FromTokens(stanza.Elem(xml.Name{Space: stanza.NSClient, Local: "message"}, []xml.Attr{stanza.Attr("type", "chat")},
		stanza.TextElem(xml.Name{Local: "body"}, "Hi!"),
		stanza.Elem(xml.Name{Space: "urn:xmpp:chat-markers:0", Local: "markable"}, nil),
		stanza.Elem(xml.Name{Space: "urn:xmpp:hints", Local: "no-copy"}, nil)))
	c := stanza.Classify(st)
	fmt.Println(c)
	fmt.Println("archive:", c&stanza.Body != 0 && c&(stanza.NoStore|stanza.Forwarded) == 0)
	fmt.Println("carbons:", c&(stanza.NoCopy|stanza.CarbonsPrivate) == 0)
	// Output:
	// Body|Markable|NoCopy
	// archive: true
	// carbons: false
}

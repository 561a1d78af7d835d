package main

import (
	"encoding/xml"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	capsinfo "github.com/kiez-im/kiez/stanza/caps"
)

// TestFederationPEP runs two kiezd, a.test and b.test: bob@b.test, a
// contact of alice@a.test, advertises caps asking for mood
// notifications but not OMEMO device lists. a.test learns his caps from
// his presence, asks for the disco#info behind them over s2s, sends him
// the last mood item alice published before, then the moods she
// publishes, and none of her device lists. When he then shares presence
// with carol@a.test too, he gets her last mood, and not alice's again.
func TestFederationPEP(t *testing.T) {
	const (
		nodeMood    = "http://jabber.org/protocol/mood"
		nodeDevices = "eu.siacs.conversations.axolotl.devicelist"
		nsPubSub    = "http://jabber.org/protocol/pubsub"
		nsEvent     = "http://jabber.org/protocol/pubsub#event"
		nsDisco     = "http://jabber.org/protocol/disco#info"
	)
	addrA, addrB := freePort(t), freePort(t)
	fileA := federatedConfig(t, "a.test", addrA, "b.test", addrB, "alice@a.test")
	fileB := federatedConfig(t, "b.test", addrB, "a.test", addrA, "bob@b.test")
	if code, _, stderr := kiezd(t, "password\n", "-config", fileA, "adduser", "carol@a.test"); code != 0 {
		t.Fatal(stderr)
	}
	da := startServe(t, nil, "-config", fileA)
	db := startServe(t, nil, "-config", fileB)
	if da.ended || db.ended {
		t.Fatalf("kiezd did not start:\n%s\n%s", da.stderr, db.stderr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a.test:\n%s\nb.test:\n%s", da.stderr, db.stderr)
		}
	})
	aliceJID, bobJID := jid.MustParse("alice@a.test"), jid.MustParse("bob@b.test")
	as, err := login(t, da.bound.C2S[0], false, "alice@a.test", "password")
	if err != nil {
		t.Fatal(err)
	}
	bs, err := login(t, db.bound.C2S[0], false, "bob@b.test", "password")
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := servertest.NewClient(t, as), servertest.NewClient(t, bs)
	alice.Send(&stanza.Stanza{Kind: stanza.Presence})
	bob.Send(&stanza.Stanza{Kind: stanza.Presence})
	alice.Sync()
	bob.Sync()
	subscribeBoth(alice, bob, aliceJID, bobJID)

	elem := func(space, local string, attrs []xml.Attr, children ...xml.TokenReader) xml.TokenReader {
		return stanza.Elem(xml.Name{Space: space, Local: local}, attrs, children...)
	}
	publish := func(c *servertest.Client, id, node string, payload xml.TokenReader) {
		t.Helper()
		iq := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set, ID: id}
		iq.AppendChild(elem(nsPubSub, "pubsub", nil, elem(nsPubSub, "publish", []xml.Attr{stanza.Attr("node", node)},
			elem(nsPubSub, "item", []xml.Attr{stanza.Attr("id", "current")}, payload))))
		c.Send(iq)
		if r := c.Expect(servertest.ByID(id)); r.Type != stanza.Result {
			t.Fatalf("publishing on %s: %v", node, r)
		}
	}
	moodOf := func(c *servertest.Client, id, m string) {
		publish(c, id, nodeMood, elem(nodeMood, "mood", nil, elem(nodeMood, m, nil)))
	}
	mood := func(id, m string) { moodOf(alice, id, m) }
	devices := func(id, dev string) {
		publish(alice, id, nodeDevices, elem("eu.siacs.conversations.axolotl", "list", nil,
			elem("eu.siacs.conversations.axolotl", "device", []xml.Attr{stanza.Attr("id", dev)})))
	}
	// eventOf matches an event from owner about node; with m, a mood of
	// m. event is one from alice.
	eventOf := func(owner jid.JID, node, m string) func(*stanza.Stanza) bool {
		return func(st *stanza.Stanza) bool {
			if st.Kind != stanza.Message || !st.From.Equal(owner) {
				return false
			}
			ev, ok := st.ChildElement(xml.Name{Space: nsEvent, Local: "event"})
			if !ok {
				return false
			}
			items, ok := ev.Child(xml.Name{Space: nsEvent, Local: "items"})
			if !ok || items.Attr("node") != node {
				return false
			}
			if m == "" {
				return true
			}
			for it := range items.Children() {
				if md, ok := it.Child(xml.Name{Space: nodeMood, Local: "mood"}); ok && md.HasChild(xml.Name{Space: nodeMood, Local: m}) {
					return true
				}
			}
			return false
		}
	}
	event := func(node, m string) func(*stanza.Stanza) bool { return eventOf(aliceJID, node, m) }
	mood("p1", "happy")
	devices("p2", "1")

	// bob's client advertises caps with mood+notify only and answers
	// a.test's disco#info query.
	info := capsinfo.Info{
		Identities: []capsinfo.Identity{{Category: "client", Type: "pc", Name: "remote test client"}},
		Features:   []string{nsDisco, nodeMood + "+notify"},
	}
	ver, err := info.Ver("sha-1")
	if err != nil {
		t.Fatal(err)
	}
	cs := capsinfo.Caps{Hash: "sha-1", Node: "https://kiez.test/client", Ver: ver}
	bob.Answer(func(st *stanza.Stanza) bool {
		return st.Type == stanza.Get && st.HasChild(xml.Name{Space: nsDisco, Local: "query"})
	}, func(q *stanza.Stanza) *stanza.Stanza {
		return q.ResultReply(info.Query(cs.DiscoNode()))
	})
	p := &stanza.Stanza{Kind: stanza.Presence}
	p.AppendChild(cs.TokenReader())
	bob.Send(p)
	// b.test asks too, for its own use; a.test's query comes over s2s.
	bob.Expect(func(st *stanza.Stanza) bool {
		return st.Kind == stanza.IQKind && st.From.Equal(jid.MustParse("a.test")) && st.HasChild(xml.Name{Space: nsDisco, Local: "query"})
	})
	// The last mood once a.test knows bob's caps; no device list.
	bob.ExpectNoneUntil(event(nodeDevices, ""), event(nodeMood, "happy"))

	// Live events: a device list (not wanted), then a mood.
	devices("p3", "2")
	mood("p4", "sad")
	bob.ExpectNoneUntil(event(nodeDevices, ""), event(nodeMood, "sad"))

	// carol, another account of a.test, and bob share presence: once
	// bob's presence (with the caps a.test knows) reaches her, he gets
	// her last mood, and not alice's, which he has, again.
	carolJID := jid.MustParse("carol@a.test")
	cs2, err := login(t, da.bound.C2S[0], false, "carol@a.test", "password")
	if err != nil {
		t.Fatal(err)
	}
	carol := servertest.NewClient(t, cs2)
	carol.Send(&stanza.Stanza{Kind: stanza.Presence})
	carol.Sync()
	moodOf(carol, "c1", "calm")
	subscribeBoth(bob, carol, bobJID, carolJID)
	bob.ExpectNoneUntil(event(nodeMood, ""), eventOf(carolJID, nodeMood, "calm"))
}

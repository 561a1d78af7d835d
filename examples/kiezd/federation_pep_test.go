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
// publishes, and none of her device lists.
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
	presence := func(typ string, from jid.JID) func(*stanza.Stanza) bool {
		return func(st *stanza.Stanza) bool {
			return st.Kind == stanza.Presence && st.Type == typ && st.From.Bare().Equal(from)
		}
	}
	for _, h := range []struct {
		from, to       *servertest.Client
		fromJID, toJID jid.JID
	}{{alice, bob, aliceJID, bobJID}, {bob, alice, bobJID, aliceJID}} {
		h.from.Send(&stanza.Stanza{Kind: stanza.Presence, Type: "subscribe", To: h.toJID})
		h.to.Expect(presence("subscribe", h.fromJID))
		h.to.Send(&stanza.Stanza{Kind: stanza.Presence, Type: "subscribed", To: h.fromJID})
		h.from.Expect(presence("subscribed", h.toJID))
		h.from.Expect(presence("", h.toJID))
	}

	elem := func(space, local string, attrs []xml.Attr, children ...xml.TokenReader) xml.TokenReader {
		return stanza.Elem(xml.Name{Space: space, Local: local}, attrs, children...)
	}
	publish := func(id, node string, payload xml.TokenReader) {
		t.Helper()
		iq := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set, ID: id}
		iq.AppendChild(elem(nsPubSub, "pubsub", nil, elem(nsPubSub, "publish", []xml.Attr{stanza.Attr("node", node)},
			elem(nsPubSub, "item", []xml.Attr{stanza.Attr("id", "current")}, payload))))
		alice.Send(iq)
		if r := alice.Expect(servertest.ByID(id)); r.Type != stanza.Result {
			t.Fatalf("publishing on %s: %v", node, r)
		}
	}
	mood := func(id, m string) {
		publish(id, nodeMood, elem(nodeMood, "mood", nil, elem(nodeMood, m, nil)))
	}
	devices := func(id, dev string) {
		publish(id, nodeDevices, elem("eu.siacs.conversations.axolotl", "list", nil,
			elem("eu.siacs.conversations.axolotl", "device", []xml.Attr{stanza.Attr("id", dev)})))
	}
	// event matches an event from alice about node; with m, a mood of m.
	event := func(node, m string) func(*stanza.Stanza) bool {
		return func(st *stanza.Stanza) bool {
			if st.Kind != stanza.Message || !st.From.Equal(aliceJID) {
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
}

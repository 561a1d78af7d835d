package main

import (
	"encoding/xml"
	"os"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// federatedConfig writes a configuration for domain, listening for s2s
// on addr and reaching peer (and its group chat service) at peerAddr,
// with an account user.
func federatedConfig(t *testing.T, domain, addr, peer, peerAddr, user string) string {
	t.Helper()
	file, _ := testConfig(t, "\n[log]\nlevel = \"debug\"\n\n[s2s]\nlisten = [\""+addr+"\"]\n\n[s2s.hosts]\n\""+peer+"\" = \""+peerAddr+"\"\n\"conference."+peer+"\" = \""+peerAddr+"\"\n")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), `domains = ["localhost"]`, `domains = ["`+domain+`"]`, 1)
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", user); code != 0 {
		t.Fatal(stderr)
	}
	return file
}

// TestFederation runs two kiezd, a.test and b.test, on loopback with
// their self-signed certificates (so they authenticate each other with
// dialback, over TLS): a subscription handshake both ways with presence,
// messages both ways, both archives, and offline delivery of a remote
// sender's message, a remote user in a room, and a blocked remote
// contact stopped.
func TestFederation(t *testing.T) {
	addrA, addrB := freePort(t), freePort(t)
	fileA := federatedConfig(t, "a.test", addrA, "b.test", addrB, "alice@a.test")
	fileB := federatedConfig(t, "b.test", addrB, "a.test", addrA, "bob@b.test")
	da := startServe(t, nil, "-config", fileA)
	db := startServe(t, nil, "-config", fileB)
	if da.ended || db.ended {
		t.Fatalf("kiezd did not start:\n%s\n%s", da.stderr, db.stderr)
	}
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
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a.test:\n%s\nb.test:\n%s", da.stderr, db.stderr)
		}
	})
	alice.Send(&stanza.Stanza{Kind: stanza.Presence})
	bob.Send(&stanza.Stanza{Kind: stanza.Presence})
	alice.Sync()
	bob.Sync()

	subscribeBoth(alice, bob, aliceJID, bobJID)
	send := chat
	send(alice, bobJID, "m1", "hello from a.test")
	bob.Expect(servertest.Body("hello from a.test"))
	send(bob, aliceJID, "m2", "hello from b.test")
	alice.Expect(servertest.Body("hello from b.test"))
	// The stream a.test opened is bidirectional (XEP-0288): b.test sent
	// its answers on it and opened none of its own.
	if !strings.Contains(da.stderr.String(), "bidi=true") || strings.Contains(db.stderr.String(), "outgoing stream established") {
		t.Errorf("not one bidirectional stream:\na.test:\n%s\nb.test:\n%s", da.stderr, db.stderr)
	}

	// Both archives hold both messages.
	wantArchived(t, alice, bob)

	// Bob joins alice's room at conference.a.test (its own streams,
	// from and to the service's domain) and talks there.
	const room = "lounge@conference.a.test"
	remoteOccupant(t, alice, bob, room)

	// Bob goes offline; alice's message waits in his offline storage.
	// Alice sees him leave the room: b.test sends that unavailable
	// presence (to where bob sent directed presence) once his session
	// has left, so the message cannot reach it.
	logout(bs)
	alice.Expect(func(st *stanza.Stanza) bool {
		return st.Type == "unavailable" && mucFrom(stanza.Presence, room+"/bob")(st)
	})
	send(alice, bobJID, "m3", "while you were away")
	// b.test reads its stream from a.test in order: once it answers this
	// iq, the message is stored.
	wantResultIQ(t, textIQ(t, alice, "after-m3", `<iq type='get' id='after-m3' to='b.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`))
	bs, err = login(t, db.bound.C2S[0], false, "bob@b.test", "password")
	if err != nil {
		t.Fatal(err)
	}
	bob = servertest.NewClient(t, bs)
	bob.Send(&stanza.Stanza{Kind: stanza.Presence})
	got := bob.Expect(servertest.Body("while you were away"))
	if !got.From.Bare().Equal(aliceJID) || !got.HasChild(xml.Name{Space: "urn:xmpp:delay", Local: "delay"}) {
		t.Errorf("offline message from %s, delay stamp %v", got.From, got.HasChild(xml.Name{Space: "urn:xmpp:delay", Local: "delay"}))
	}

	// Alice blocks bob (XEP-0191): his messages are refused.
	wantResultIQ(t, textIQ(t, alice, "block", `<iq type='set' id='block'><block xmlns='urn:xmpp:blocking'><item jid='bob@b.test'/></block></iq>`))
	send(bob, aliceJID, "m4", "are you there?")
	if e := bob.Expect(servertest.ByID("m4")); e.Type != "error" {
		t.Fatalf("to a user who blocks him: %s", stanzaText(e))
	}
	alice.SyncNone(servertest.Body("are you there?"))
}

// remoteOccupant has alice create room, and bob, a user of another
// server, join it: each of them says something there, which both get.
func remoteOccupant(t *testing.T, alice, bob *servertest.Client, room string) {
	t.Helper()
	mucCreate(t, alice, room, "alice")
	if self := mucJoin(t, bob, room, "bob"); self.Type == stanza.Error {
		t.Fatalf("bob's join: %s", stanzaText(self))
	}
	alice.Expect(mucFrom(stanza.Presence, room+"/bob"))
	mucSay(t, bob, room, "hi room")
	alice.Expect(mucFrom(stanza.Message, room+"/bob", "hi room"))
	bob.Expect(mucFrom(stanza.Message, room+"/bob", "hi room"))
	mucSay(t, alice, room, "welcome")
	bob.Expect(mucFrom(stanza.Message, room+"/alice", "welcome"))
	alice.Expect(mucFrom(stanza.Message, room+"/alice", "welcome"))
}

// subscribeBoth runs the subscription handshake both ways between the
// clients a and b of the users aJID and bJID; each approval brings the
// approver's presence.
func subscribeBoth(a, b *servertest.Client, aJID, bJID jid.JID) {
	presence := func(typ string, from jid.JID) func(*stanza.Stanza) bool {
		return func(st *stanza.Stanza) bool {
			return st.Kind == stanza.Presence && st.Type == typ && st.From.Bare().Equal(from)
		}
	}
	for _, h := range []struct {
		from, to       *servertest.Client
		fromJID, toJID jid.JID
	}{{a, b, aJID, bJID}, {b, a, bJID, aJID}} {
		h.from.Send(&stanza.Stanza{Kind: stanza.Presence, Type: "subscribe", To: h.toJID})
		h.to.Expect(presence("subscribe", h.fromJID))
		h.to.Send(&stanza.Stanza{Kind: stanza.Presence, Type: "subscribed", To: h.fromJID})
		h.from.Expect(presence("subscribed", h.toJID))
		h.from.Expect(presence("", h.toJID))
	}
}

// chat sends a chat message with body from c.
func chat(c *servertest.Client, to jid.JID, id, body string) {
	msg := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: to, ID: id}
	msg.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, body))
	c.Send(msg)
}

// wantArchived checks that the archive (MAM) of each client's account
// holds the two messages "hello from a.test" and "hello from b.test", in
// that order.
func wantArchived(t *testing.T, clients ...*servertest.Client) {
	t.Helper()
	for _, c := range clients {
		q := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set, ID: "mam"}
		q.AppendChild(stanza.Elem(xml.Name{Space: "urn:xmpp:mam:2", Local: "query"}, []xml.Attr{stanza.Attr("queryid", "q")}))
		c.Send(q)
		var bodies []string
		for range 2 {
			res := c.Expect(func(st *stanza.Stanza) bool {
				return st.Kind == stanza.Message && st.HasChild(xml.Name{Space: "urn:xmpp:mam:2", Local: "result"})
			})
			for _, tok := range res.Inner {
				if cd, ok := tok.(xml.CharData); ok && strings.HasPrefix(string(cd), "hello from") {
					bodies = append(bodies, string(cd))
				}
			}
		}
		if fin := c.Expect(servertest.ByID("mam")); fin.Type != stanza.Result {
			t.Fatalf("archive query: %s", fin.Type)
		}
		if strings.Join(bodies, ",") != "hello from a.test,hello from b.test" {
			t.Errorf("archive holds %q", bodies)
		}
	}
}

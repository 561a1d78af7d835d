package server_test

import (
	"encoding/xml"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

func message(to jid.JID, id, body string) *stanza.Stanza {
	return &stanza.Stanza{
		Kind: stanza.Message, ID: id, Type: "chat", To: to,
		Inner: []xml.Token{
			xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "body"}},
			xml.CharData(body),
			xml.EndElement{Name: xml.Name{Space: stanza.NSClient, Local: "body"}},
		},
	}
}

func presence() *stanza.Stanza { return &stanza.Stanza{Kind: stanza.Presence} }

func TestMessageBetweenTwoSessions(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	alice := srv.AddUser(t, "alice", "pw-alice")
	bob := srv.AddUser(t, "bob", "pw-bob")
	a := srv.Connect(t, alice, "pw-alice")
	b := srv.Connect(t, bob, "pw-bob")
	a.Send(presence())
	b.Send(presence())
	b.Sync()
	// Spoofed from: the server must stamp the bound full JID.
	m := message(bob, "m1", "hello bob")
	m.From = jid.MustParse("mallory@localhost/evil")
	a.Send(m)
	got := b.Expect(servertest.Body("hello bob"))
	if !got.From.Equal(a.LocalAddr()) {
		t.Fatalf("from = %s, want %s", got.From, a.LocalAddr())
	}
}

func serverConfig() server.Config { return server.Config{} }

func memoryStore() *memory.Store { return memory.New() }

func withRes(j jid.JID, res string) jid.JID {
	r, err := j.WithResource(res)
	if err != nil {
		panic(err)
	}
	return r
}

package main

import (
	"encoding/xml"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

func message(to jid.JID, typ, body string) *stanza.Stanza {
	m := &stanza.Stanza{Kind: stanza.Message, Type: typ, To: to}
	if body != "" {
		m.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, body))
	}
	return m
}

func start(t *testing.T) (*servertest.Client, jid.JID) {
	t.Helper()
	echo, err := New(Options{}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{echo}})
	alice := srv.AddUser(t, "alice", "pw-alice")
	return srv.Connect(t, alice, "pw-alice"), jid.MustParse("echo." + srv.Domain)
}

func TestEcho(t *testing.T) {
	c, echo := start(t)
	for _, typ := range []string{"chat", ""} {
		body := "hello <echo> & " + typ
		c.Send(message(echo, typ, body))
		got := c.Expect(servertest.Body(body))
		if !got.From.Equal(echo) || !got.To.Equal(c.LocalAddr()) {
			t.Fatalf("echo from %s to %s, want from %s to %s", got.From, got.To, echo, c.LocalAddr())
		}
		if got.Type != typ {
			t.Fatalf("echo type %q, want %q", got.Type, typ)
		}
	}
}

func TestNoEcho(t *testing.T) {
	c, echo := start(t)
	c.Send(message(echo, "chat", "")) // a chat state, say: no body
	c.Send(message(echo, "error", "an error"))
	c.Send(message(echo, "chat", "marker"))
	// Stanzas are handled in order, so the marker's echo must be the
	// first message back, and once it is here nothing else is on its way.
	c.Expect(func(st *stanza.Stanza) bool {
		if st.Kind != stanza.Message {
			return false
		}
		if body, _ := st.ChildText(xml.Name{Local: "body"}); body != "marker" || st.IsError() {
			t.Fatalf("unexpected message type %q with body %q", st.Type, body)
		}
		return true
	})
	c.ExpectNone(100*time.Millisecond, func(st *stanza.Stanza) bool { return st.Kind == stanza.Message })
}

func TestIQNotAnswered(t *testing.T) {
	c, echo := start(t)
	iq := &stanza.Stanza{Kind: stanza.IQKind, ID: "q1", Type: stanza.Get, To: echo}
	iq.AppendChild(stanza.Elem(xml.Name{Space: "jabber:iq:version", Local: "query"}, nil))
	c.Send(iq)
	res := c.Expect(servertest.ByID("q1"))
	if !res.IsError() || !res.HasChild(xml.Name{Local: "error"}) {
		t.Fatalf("iq to the service answered with type %q, want an error", res.Type)
	}
	_, r, _ := res.Child(xml.Name{Local: "error"})
	var e mstanza.Error
	if err := xml.NewTokenDecoder(r).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if e.Condition != mstanza.ServiceUnavailable {
		t.Fatalf("condition %q, want %q", e.Condition, mstanza.ServiceUnavailable)
	}
}

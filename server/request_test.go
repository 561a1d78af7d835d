package server_test

import (
	"context"
	"encoding/xml"
	"errors"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// asker is a module that keeps its Host to send requests.
type asker struct{ host server.Host }

func (*asker) Name() string { return "asker" }

func (a *asker) Init(ctx context.Context, h server.Host) error {
	a.host = h
	return nil
}

var askName = xml.Name{Space: "urn:kiez:test:ask", Local: "ask"}

type answer struct {
	st  *stanza.Stanza
	err error
}

// ask sends an iq get from the server to to in the background.
func (a *asker) ask(ctx context.Context, to jid.JID) <-chan answer {
	out := make(chan answer, 1)
	q := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Get, From: jid.MustParse("localhost"), To: to}
	q.AppendChild(stanza.Elem(askName, nil))
	go func() {
		st, err := a.host.Request(ctx, q)
		out <- answer{st, err}
	}()
	return out
}

// Host.Request returns a client's answer, ignores an answer from anyone
// else, ends with the context when nobody answers, and returns the
// server's error for an address that is gone.
func TestHostRequest(t *testing.T) {
	mod := &asker{}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{mod}})
	srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	// Alice answers by hand: a raw client (mellium's answers unknown
	// requests itself).
	a := dialSM(t, srv.Addr)
	a.auth("alice", "pw")
	a.bind("desk")
	desk := jid.MustParse("alice@localhost/desk")
	b := srv.Connect(t, bob, "pw")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // hang guard
	defer cancel()
	askRE := `<iq[^>]* id=['"]([^'"]+)['"][^>]*><ask xmlns=['"]urn:kiez:test:ask['"]/?>`

	// Answered, after bob tried to answer in alice's place.
	got := mod.ask(ctx, desk)
	id := a.await(askRE)[1]
	forged := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Result, ID: id, To: jid.MustParse("localhost")}
	b.Send(forged)
	b.Sync()
	a.send(`<iq type='result' id='` + id + `' to='localhost'><answer xmlns='urn:kiez:test:ask'/></iq>`)
	r := <-got
	if r.err != nil || r.st.Type != stanza.Result || !r.st.HasChild(xml.Name{Space: askName.Space, Local: "answer"}) || !r.st.From.Equal(desk) {
		t.Fatalf("answered request: %v, %v", r.st, r.err)
	}

	// Not answered: the context ends it; a late answer is ignored.
	short, stop := context.WithCancel(ctx)
	got = mod.ask(short, desk)
	id = a.await(askRE)[1]
	stop()
	if r := <-got; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("unanswered request: %v, %v; want context.Canceled", r.st, r.err)
	}
	a.send(`<iq type='result' id='` + id + `' to='localhost'/>`)

	// Gone: the server answers with an error.
	r = <-mod.ask(ctx, jid.MustParse("alice@localhost/gone"))
	if r.err != nil || r.st.Type != stanza.Error || errorCondition(r.st) != "service-unavailable" {
		t.Fatalf("request to a gone resource: %v, %v", r.st, r.err)
	}
}

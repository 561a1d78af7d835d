package push_test

import (
	"context"
	"encoding/xml"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/push"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// probe is a module that lends the test the Host and tells it when a
// session ends.
type probe struct {
	host  server.Host
	ended chan jid.JID
}

func (*probe) Name() string { return "probe" }
func (p *probe) Init(ctx context.Context, h server.Host) error {
	p.host = h
	return nil
}
func (p *probe) SessionEnded(ctx context.Context, s *server.Session) { p.ended <- s.JID() }

type env struct {
	srv   *servertest.Server
	store *memory.Store
	push  *push.Module
	probe *probe
	app   *servertest.Client // the app server: a second account
	alice jid.JID
	bob   *servertest.Client
	smID  string // the stream management id of alice's last raw login
}

func start(t *testing.T, opts push.Options, appAnswer func(iq *stanza.Stanza) *stanza.Stanza) *env {
	t.Helper()
	store := memory.New()
	m, err := push.New(opts, push.Deps{Store: store, Roster: store})
	if err != nil {
		t.Fatal(err)
	}
	p := &probe{ended: make(chan jid.JID, 16)}
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{m, p}})
	e := &env{srv: srv, store: store, push: m, probe: p}
	e.alice = srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	srv.AddUser(t, "app", "pw")
	e.app = srv.Connect(t, jid.MustParse("app@localhost/push"), "pw")
	e.app.Answer(isPublish, appAnswer)
	e.bob = srv.Connect(t, jid.MustParse("bob@localhost/pc"), "pw")
	return e
}

func isPublish(st *stanza.Stanza) bool {
	return st.Kind == stanza.IQKind && st.HasChild(xml.Name{Space: push.NSPubSub, Local: "pubsub"})
}

func ok(iq *stanza.Stanza) *stanza.Stanza { return iq.ResultReply(nil) }

const enableXML = `<iq type='set' id='en1'><enable xmlns='urn:xmpp:push:0' jid='app@localhost/push' node='n1'>` +
	`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
	`<field var='secret'><value>s3cr3t</value></field></x></enable></iq>`

// rawAlice logs alice in on a raw stream, enables push and stream
// management with resumption, and returns the raw client and its TCP
// connection (closing it drops the stream as a dead network would).
func (e *env) rawAlice(t *testing.T) (*servertest.Raw, net.Conn) {
	t.Helper()
	return e.rawLogin(t, enableXML)
}

// rawLogin is rawAlice with the iqs of enable (each answered with a
// result) instead of the usual registration.
func (e *env) rawLogin(t *testing.T, enable ...string) (*servertest.Raw, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", e.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := servertest.NewRaw(t, c)
	if got := r.AuthPlain("alice", "pw"); !strings.Contains(got, "<success") {
		t.Fatalf("auth: %s", got)
	}
	r.Send(servertest.RawHeader)
	r.Expect("</stream:features>")
	if got := r.IQ(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>`); !strings.Contains(got, "result") {
		t.Fatalf("bind: %s", got)
	}
	r.Send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	enabled := r.Expect("resume='true'")
	_, id, _ := strings.Cut(enabled, "id='")
	e.smID, _, _ = strings.Cut(id, "'")
	for _, iq := range enable {
		if got := r.IQ(iq); !strings.Contains(got, `type="result"`) && !strings.Contains(got, `type='result'`) {
			t.Fatalf("push enable: %s", got)
		}
	}
	r.Send(`<presence/>`)
	// The stream is read in order: once this is answered, the presence
	// was handled and alice is available.
	r.IQ(`<iq type='get' id='s1'><query xmlns='urn:kiez:test:nothing'/></iq>`)
	return r, c
}

// await waits, without a time limit of its own beyond a generous guard,
// until cond holds.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	guard := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(guard) {
			t.Fatalf("still waiting for %s: hung?", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func message(to jid.JID, body string) *stanza.Stanza {
	st := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: to}
	st.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, body))
	return st
}

// checkNotification checks a notification from alice to node n1 with the
// publish options, message-count count, and no sender or body.
func checkNotification(t *testing.T, st *stanza.Stanza, count string) {
	t.Helper()
	out := string(stanza.Marshal(st))
	if !st.From.Equal(jid.MustParse("alice@localhost")) {
		t.Errorf("notification from %s, want alice's bare JID", st.From)
	}
	for _, want := range []string{`node="n1"`, push.NSSummary, `var="message-count"><value>` + count + `</value>`, "s3cr3t", push.NSPublishOpts} {
		if !strings.Contains(out, want) {
			t.Errorf("notification lacks %q: %s", want, out)
		}
	}
	for _, bad := range []string{"bob", "wherefore", "last-message-body", "last-message-sender"} {
		if strings.Contains(out, bad) {
			t.Errorf("notification carries %q: %s", bad, out)
		}
	}
}

// A message to a session hibernated by stream management wakes the
// device: the app server gets a notification with a count, no sender and
// no body. A chat state alone does not.
func TestPushHibernated(t *testing.T) {
	e := start(t, push.Options{}, ok)
	_, conn := e.rawAlice(t)
	conn.Close()
	await(t, "alice's session to hibernate", func() bool {
		s := e.probe.host.Sessions(e.alice)
		return len(s) == 1 && s[0].Hibernated()
	})
	cs := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: e.alice}
	cs.AppendChild(stanza.Elem(xml.Name{Space: "http://jabber.org/protocol/chatstates", Local: "composing"}, nil))
	e.bob.Send(cs)
	e.bob.Send(message(e.alice, "wherefore art thou"))
	checkNotification(t, e.app.Expect(isPublish), "1")
	e.app.SyncNone(isPublish)
}

// A message to an account with no session at all reaches the app server
// too; the registration survives the session.
func TestPushOffline(t *testing.T) {
	e := start(t, push.Options{}, ok)
	r, _ := e.rawAlice(t)
	r.Send(`</stream:stream>`)
	if j := <-e.probe.ended; !j.Equal(jid.MustParse("alice@localhost/phone")) {
		t.Fatalf("ended %s", j)
	}
	e.bob.Send(message(e.alice, "wherefore art thou"))
	checkNotification(t, e.app.Expect(isPublish), "1")
}

// A connected client gets its messages, also when it told the server it
// is inactive (XEP-0352): nothing is pushed.
func TestNoPushWhileConnected(t *testing.T) {
	e := start(t, push.Options{}, ok)
	r, _ := e.rawAlice(t)
	e.bob.Send(message(e.alice, "hello"))
	r.Expect("hello")
	r.Send(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	r.IQ(`<iq type='get' id='s2'><query xmlns='urn:kiez:test:nothing'/></iq>`)
	e.bob.Send(message(e.alice, "still there"))
	r.Expect("still there")
	e.app.SyncNone(isPublish)
}

// With MinInterval, a second message soon after the first is not pushed
// again; the options can add sender and body.
func TestPushRateLimitAndContent(t *testing.T) {
	e := start(t, push.Options{MinInterval: time.Hour, IncludeSender: true, IncludeBody: true}, ok)
	r, _ := e.rawAlice(t)
	r.Send(`</stream:stream>`)
	<-e.probe.ended
	e.bob.Send(message(e.alice, "one"))
	got := string(stanza.Marshal(e.app.Expect(isPublish)))
	for _, want := range []string{"bob@localhost", "<value>one</value>"} {
		if !strings.Contains(got, want) {
			t.Errorf("notification lacks %q: %s", want, got)
		}
	}
	e.bob.Send(message(e.alice, "two"))
	e.bob.Sync()
	e.app.SyncNone(isPublish)
}

// An app server that refuses a notification loses the registration;
// disable removes one; deleting the account removes them all.
func TestRegistrationLifecycle(t *testing.T) {
	refuse := func(iq *stanza.Stanza) *stanza.Stanza {
		return iq.ErrorReply(stanza.NewError("cancel", "item-not-found", ""))
	}
	e := start(t, push.Options{}, refuse)
	r, _ := e.rawAlice(t)
	regs, err := e.push.Registrations(context.Background(), e.alice)
	if err != nil || len(regs) != 1 || regs[0].Node != "n1" || regs[0].Options[0].Values[0] != "s3cr3t" {
		t.Fatalf("registrations %+v, %v", regs, err)
	}
	if got := r.IQ(`<iq type='set' id='d1'><disable xmlns='urn:xmpp:push:0' jid='app@localhost/push' node='other'/></iq>`); !strings.Contains(got, "result") {
		t.Fatalf("disable: %s", got)
	}
	r.Send(`</stream:stream>`)
	<-e.probe.ended
	e.bob.Send(message(e.alice, "x"))
	e.app.Expect(isPublish)
	await(t, "the refused registration to go", func() bool {
		regs, _ := e.push.Registrations(context.Background(), e.alice)
		return len(regs) == 0
	})

	r, _ = e.rawAlice(t)
	if got := r.IQ(`<iq type='set' id='bad'><enable xmlns='urn:xmpp:push:0' jid='app@localhost'/></iq>`); !strings.Contains(got, "bad-request") {
		t.Fatalf("enable without node: %s", got)
	}
	r.Send(`</stream:stream>`)
	<-e.probe.ended
	if err := e.srv.DeleteUser(context.Background(), e.alice); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Get(context.Background(), "alice@localhost", "push"); err == nil {
		t.Fatal("registrations left after the account was deleted")
	}
}

// A subscription request while alice is offline is pushed with
// pending-subscription-count and never names the requester, even with
// IncludeSender; the same contact asking again is not pushed again; the
// next message's notification counts both.
func TestPushSubscriptionRequest(t *testing.T) {
	e := start(t, push.Options{MinInterval: -1, IncludeSender: true, IncludeBody: true}, ok)
	r, _ := e.rawAlice(t)
	r.Send(`</stream:stream>`)
	<-e.probe.ended
	subscribe := &stanza.Stanza{Kind: stanza.Presence, Type: "subscribe", To: e.alice}
	e.bob.Send(subscribe)
	got := e.app.Expect(isPublish)
	checkNotification(t, got, "0")
	if out := string(stanza.Marshal(got)); !strings.Contains(out, `var="pending-subscription-count"><value>1</value>`) {
		t.Fatalf("no pending-subscription-count: %s", out)
	}
	await(t, "the push to be answered", func() bool { return e.push.InFlight() == 0 })
	e.bob.Send(subscribe.Clone())
	e.bob.Sync()
	e.app.SyncNone(isPublish)

	e.bob.Send(message(e.alice, "hi"))
	out := string(stanza.Marshal(e.app.Expect(isPublish)))
	for _, want := range []string{`var="message-count"><value>1</value>`, `var="pending-subscription-count"><value>1</value>`, `<value>hi</value>`} {
		if !strings.Contains(out, want) {
			t.Errorf("notification lacks %q: %s", want, out)
		}
	}
}

// A subscription request the presence module answers by itself (the
// contact has a subscription from alice already, or she pre-approved it)
// is not pushed for; one she must answer is.
func TestNoPushForAnsweredSubscriptionRequest(t *testing.T) {
	e := start(t, push.Options{MinInterval: -1}, ok)
	r, _ := e.rawAlice(t)
	r.Send(`</stream:stream>`)
	<-e.probe.ended
	ctx := context.Background()
	subscribe := &stanza.Stanza{Kind: stanza.Presence, Type: "subscribe", To: e.alice}
	for _, it := range []storage.RosterItem{
		{JID: "bob@localhost", Subscription: storage.SubFrom},
		{JID: "bob@localhost", Subscription: storage.SubBoth},
		{JID: "bob@localhost", Subscription: storage.SubNone, Approved: true},
	} {
		if _, err := e.store.SetRosterItem(ctx, "alice@localhost", it); err != nil {
			t.Fatal(err)
		}
		e.bob.Send(subscribe.Clone())
		e.bob.Sync()
		e.app.SyncNone(isPublish)
	}
	if _, err := e.store.SetRosterItem(ctx, "alice@localhost", storage.RosterItem{JID: "bob@localhost", Subscription: storage.SubNone}); err != nil {
		t.Fatal(err)
	}
	e.bob.Send(subscribe.Clone())
	if out := string(stanza.Marshal(e.app.Expect(isPublish))); !strings.Contains(out, `var="pending-subscription-count"><value>1</value>`) {
		t.Fatalf("notification: %s", out)
	}
}

// The counts start over when a session of the account is bound, even if
// nothing arrived while it was connected.
func TestPushCountResetOnBind(t *testing.T) {
	e := start(t, push.Options{MinInterval: -1}, ok)
	r, _ := e.rawAlice(t)
	r.Send(`</stream:stream>`)
	<-e.probe.ended
	e.bob.Send(message(e.alice, "one"))
	checkNotification(t, e.app.Expect(isPublish), "1")
	await(t, "the push to be answered", func() bool { return e.push.InFlight() == 0 })

	r, _ = e.rawAlice(t)
	r.Send(`</stream:stream>`)
	<-e.probe.ended
	e.bob.Send(message(e.alice, "two"))
	checkNotification(t, e.app.Expect(isPublish), "1")
}

// The counts start over when alice's hibernated session is resumed.
func TestPushCountResetOnResume(t *testing.T) {
	e := start(t, push.Options{MinInterval: -1}, ok)
	_, conn := e.rawAlice(t)
	hibernated := func() bool {
		s := e.probe.host.Sessions(e.alice)
		return len(s) == 1 && s[0].Hibernated()
	}
	conn.Close()
	await(t, "alice's session to hibernate", hibernated)
	e.bob.Send(message(e.alice, "one"))
	checkNotification(t, e.app.Expect(isPublish), "1")
	await(t, "the push to be answered", func() bool { return e.push.InFlight() == 0 })

	conn, err := net.Dial("tcp", e.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := servertest.NewRaw(t, conn)
	if got := r.AuthPlain("alice", "pw"); !strings.Contains(got, "<success") {
		t.Fatalf("auth: %s", got)
	}
	r.Send(servertest.RawHeader)
	r.Expect("</stream:features>")
	r.Send(`<resume xmlns='urn:xmpp:sm:3' previd='` + e.smID + `' h='0'/>`)
	r.Expect("<resumed")
	// Read in order after the resumption: once answered, the module
	// was told.
	r.IQ(`<iq type='get' id='s3'><query xmlns='urn:kiez:test:nothing'/></iq>`)
	conn.Close()
	await(t, "alice's session to hibernate again", hibernated)
	e.bob.Send(message(e.alice, "two"))
	checkNotification(t, e.app.Expect(isPublish), "1")
}

// A groupchat message to alice's hibernated session is pushed (as
// Prosody's mod_cloud_notify does); one to a resource she has no session
// at is not delivered and not pushed or counted.
func TestPushGroupchat(t *testing.T) {
	e := start(t, push.Options{MinInterval: -1}, ok)
	_, conn := e.rawAlice(t)
	conn.Close()
	await(t, "alice's session to hibernate", func() bool {
		s := e.probe.host.Sessions(e.alice)
		return len(s) == 1 && s[0].Hibernated()
	})
	groupchat := func(to string) *stanza.Stanza {
		st := message(jid.MustParse(to), "wherefore art thou")
		st.Type = "groupchat"
		return st
	}
	e.bob.Send(groupchat("alice@localhost/phone"))
	checkNotification(t, e.app.Expect(isPublish), "1")
	await(t, "the push to be answered", func() bool { return e.push.InFlight() == 0 })
	e.bob.Send(groupchat("alice@localhost/gone"))
	e.bob.Sync()
	e.app.SyncNone(isPublish)
	e.bob.Send(message(e.alice, "wherefore art thou"))
	checkNotification(t, e.app.Expect(isPublish), "2")
}

package main

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// TestUnresumedSessionMessageGoesOffline: a phone with stream management
// loses its connection without acknowledging a message; it never resumes.
// When the resumption time is over, kiezd's offline storage takes the
// message, and the next login receives it with a delay stamp.
//
// The test learns that the time is over from bob: the phone sent him
// directed presence, so the session's end sends him unavailable presence
// (RFC 6121 §4.6.3), after the server has handed the unacknowledged
// message on.
func TestUnresumedSessionMessageGoesOffline(t *testing.T) {
	onBothBackends(t, testUnresumedSessionMessageGoesOffline)
}

func testUnresumedSessionMessageGoesOffline(t *testing.T) {
	file, _ := testConfig(t, "\n[limits]\nresume_timeout = \"1s\"\n")
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", u); code != 0 {
			t.Fatal(stderr)
		}
	}
	d := startServe(t, nil, "-config", file)
	addr := d.bound.C2S[0].String()

	phone, err := rawLogin(addr, "alice", "localhost", "password", "phone")
	if err != nil {
		t.Fatal(err)
	}
	phone.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	enabled, err := phone.expect("enabled")
	if err != nil || enabled.attr("resume") != "true" || enabled.attr("id") == "" {
		t.Fatalf("enable: %v %+v", err, enabled)
	}
	phone.send(`<presence/>`)

	sess, err := login(t, d.bound.C2S[0], false, "bob@localhost", "password")
	if err != nil {
		t.Fatal(err)
	}
	bob := servertest.NewClient(t, sess)
	bob.Send(&stanza.Stanza{Kind: stanza.Presence})
	bob.Sync()
	fromPhone := func(typ string) func(*stanza.Stanza) bool {
		return func(st *stanza.Stanza) bool {
			return st.Kind == stanza.Presence && st.Type == typ && st.From.String() == "alice@localhost/phone"
		}
	}
	phone.send(`<presence to='%s'/>`, sess.LocalAddr().String())
	bob.Expect(fromPhone(""))
	msg := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: jid.MustParse("alice@localhost"), ID: "m1"}
	msg.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "are you there?"))
	bob.Send(msg)

	// The phone sees the message but the network drops before its ack.
	for {
		e, err := phone.next()
		if err != nil {
			t.Fatalf("waiting for the message on the phone: %v", err)
		}
		if e.XMLName.Local == "message" && strings.Contains(e.Inner, "are you there?") {
			break
		}
	}
	phone.close()

	// The resumption time is over once bob hears the phone is gone; the
	// message was not bounced to him before.
	isError := func(st *stanza.Stanza) bool { return st.Type == stanza.Error }
	bob.ExpectNoneUntil(isError, fromPhone("unavailable"))
	// The next login gets it from offline storage.
	laptop, err := rawLogin(addr, "alice", "localhost", "password", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	defer laptop.close()
	laptop.send(`<presence/>`)
	laptop.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		e, err := laptop.next()
		if err != nil {
			t.Fatalf("the unacknowledged message did not arrive at the next login: %v", err)
		}
		if e.XMLName.Local == "message" && strings.Contains(e.Inner, "are you there?") {
			if !strings.Contains(e.Inner, "urn:xmpp:delay") {
				t.Errorf("redelivered message without a delay stamp: %s", e.Inner)
			}
			break
		}
	}
	bob.SyncNone(isError)
}

package main

import (
	"encoding/xml"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// TestOfflineAndArchiveAcrossRestart: with kiezd's default modules, a
// message to an offline user survives a restart and arrives with its delay
// stamp; both users' archives hold it, and the delivered copy carries the
// recipient's archive id.
func TestOfflineAndArchiveAcrossRestart(t *testing.T) {
	onBothBackends(t, testOfflineAndArchiveAcrossRestart)
}

func testOfflineAndArchiveAcrossRestart(t *testing.T) {
	file, _ := testConfig(t, "")
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", u); code != 0 {
			t.Fatal(stderr)
		}
	}
	bob := jid.MustParse("bob@localhost")
	d := startServe(t, nil, "-config", file)
	sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password")
	if err != nil {
		t.Fatal(err)
	}
	a := servertest.NewClient(t, sess)
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	for _, body := range []string{"first", "second"} {
		msg := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: bob, ID: body}
		msg.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, body))
		a.Send(msg)
	}
	a.Sync()
	a.ExpectNone(100*time.Millisecond, func(st *stanza.Stanza) bool { return st.Type == stanza.Error })
	logout(sess)
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, d.stderr)
	}

	d = startServe(t, nil, "-config", file)
	sess, err = login(t, d.bound.C2S[0], false, "bob@localhost", "password")
	if err != nil {
		t.Fatal(err)
	}
	b := servertest.NewClient(t, sess)
	b.Send(&stanza.Stanza{Kind: stanza.Presence})
	var ids []string
	for _, body := range []string{"first", "second"} {
		got := b.Expect(servertest.Body(body))
		se, _, ok := got.Child(xml.Name{Space: "urn:xmpp:delay", Local: "delay"})
		if !ok || attrValue(se, "stamp") == "" || attrValue(se, "from") != "localhost" {
			t.Errorf("offline message %q without a delay stamp from the server", body)
		}
		sid, _, ok := got.Child(xml.Name{Space: "urn:xmpp:sid:0", Local: "stanza-id"})
		if !ok || attrValue(sid, "by") != "bob@localhost" {
			t.Errorf("offline message %q without bob's archive id", body)
		}
		ids = append(ids, attrValue(sid, "id"))
	}

	// Bob's archive returns both, with the ids the delivered copies had.
	q := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set, ID: "mam"}
	q.AppendChild(stanza.Elem(xml.Name{Space: "urn:xmpp:mam:2", Local: "query"}, []xml.Attr{stanza.Attr("queryid", "q1")}))
	b.Send(q)
	for i := range ids {
		res := b.Expect(func(st *stanza.Stanza) bool {
			return st.Kind == stanza.Message && st.HasChild(xml.Name{Space: "urn:xmpp:mam:2", Local: "result"})
		})
		se, _, _ := res.Child(xml.Name{Space: "urn:xmpp:mam:2", Local: "result"})
		if attrValue(se, "id") != ids[i] || attrValue(se, "queryid") != "q1" {
			t.Errorf("archive result %d: id %q queryid %q, want %q q1", i, attrValue(se, "id"), attrValue(se, "queryid"), ids[i])
		}
	}
	if fin := b.Expect(servertest.ByID("mam")); fin.Type != stanza.Result {
		t.Fatalf("archive query: %s", fin.Type)
	}
}

func attrValue(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

package main

import (
	"bytes"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// Issue 13: an account removed in-band and registered again under the
// same name starts empty everywhere and inherits nothing. The account
// first gets data in every module (auditSession: roster, vCard, private
// XML, PEP, block list, carbons, both archives, an upload) and more:
// archive preferences, a personal archive retention, the strangers
// setting, an invitation it created, and an offline message waiting for
// it. After <remove/> and a new registration, none of it is there: no
// roster item (and the old roster version is not taken as current), no
// vCard, private XML, PEP node, block list entry, archived message,
// offline message or file; archive preferences, retention and strangers
// setting are the defaults; the invitation is gone; it is no member of the
// contact's members-only room (its registered nick there is free) and no
// owner of the room the old account created (the contact, its admin,
// inherited it).
func TestReregisterStartsEmpty(t *testing.T) { onBothBackends(t, testReregisterStartsEmpty) }

func testReregisterStartsEmpty(t *testing.T) {
	file, _ := testConfig(t, "\n[registration]\npolicy = \"open\"\n\n[filter]\nallow = [\"127.0.0.1/32\"]\n")
	for _, u := range []string{auditUser, auditContact} {
		if code, _, stderr := kiezd(t, auditPassword+"\n", "-config", file, "adduser", u); code != 0 {
			t.Fatal(stderr)
		}
	}
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatal("serve exited")
	}
	auditSession(t, d)
	c2s := d.bound.C2S[0]

	// More of the account's own data, then an offline message for it.
	sess, err := login(t, c2s, false, auditUser+"/phone", auditPassword)
	if err != nil {
		t.Fatal(err)
	}
	a := servertest.NewClient(t, sess)
	rosterVer := attrOf(t, textIQ(t, a, "ros", `<iq type='get' id='ros'><query xmlns='jabber:iq:roster' ver=''/></iq>`), "ver")
	if rosterVer == "" {
		t.Fatal("no roster version")
	}
	wantResultIQ(t, textIQ(t, a, "prefs", `<iq type='set' id='prefs'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>`))
	setRetention := textIQ(t, a, "ret1", `<iq type='set' id='ret1' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:kiez:mam:retention' action='execute'/></iq>`)
	retSession := attrOf(t, setRetention, "sessionid")
	wantResultIQ(t, textIQ(t, a, "ret2", `<iq type='set' id='ret2' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:kiez:mam:retention' sessionid='`+retSession+`'>`+
		`<x xmlns='jabber:x:data' type='submit'><field var='retention'><value>7</value></field></x></command></iq>`))
	strangers := textIQ(t, a, "st1", `<iq type='set' id='st1' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:kiez:strangers' action='execute'/></iq>`)
	wantResultIQ(t, textIQ(t, a, "st2", `<iq type='set' id='st2' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:kiez:strangers' sessionid='`+attrOf(t, strangers, "sessionid")+`'>`+
		`<x xmlns='jabber:x:data' type='submit'><field var='refuse'><value>1</value></field></x></command></iq>`))
	invite := textIQ(t, a, "inv", `<iq type='set' id='inv' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:xmpp:invite#invite' action='execute'/></iq>`)
	token := regexp.MustCompile(`preauth=([A-Za-z0-9_-]+)`).FindStringSubmatch(invite)
	if token == nil {
		t.Fatalf("no invitation in %s", invite)
	}
	uploadURL := regexp.MustCompile(`https://[^<"]*auditupload-marker\.bin`).FindString(
		textIQ(t, a, "files", `<iq type='set' id='files' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:xmpp:http:upload:0#list' action='execute'/></iq>`))
	logout(sess)

	cs, err := login(t, c2s, false, auditContact+"/desk", auditPassword)
	if err != nil {
		t.Fatal(err)
	}
	c := servertest.NewClient(t, cs)
	c.SendRaw(`<message to='` + auditUser + `' type='chat' id='late'><body>AuditLateMarker</body></message>`)
	c.Sync()

	// Removed in-band, without initial presence (the offline message
	// stays stored until the removal).
	sess, err = login(t, c2s, false, auditUser+"/phone", auditPassword)
	if err != nil {
		t.Fatal(err)
	}
	a = servertest.NewClient(t, sess)
	wantResultIQ(t, textIQ(t, a, "rm", `<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>`))
	<-a.Done()
	for {
		// The deletion runs after the answer; the name is free once it
		// is done.
		r := dialRaw(t, c2s)
		got := r.IQ(`<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>auditee</username><password>` + auditPassword + `</password></query></iq>`)
		if strings.Contains(got, `type="result"`) {
			break
		}
		if !strings.Contains(got, "<conflict ") {
			t.Fatalf("registering again: %s", got)
		}
	}

	sess, err = login(t, c2s, false, auditUser+"/phone", auditPassword)
	if err != nil {
		t.Fatal(err)
	}
	a = servertest.NewClient(t, sess)
	empty := func(what, id, req string, unwanted ...string) {
		t.Helper()
		got := textIQ(t, a, id, req)
		for _, u := range unwanted {
			if strings.Contains(got, u) {
				t.Errorf("%s of the new account holds %q: %s", what, u, got)
			}
		}
	}
	ros := textIQ(t, a, "ros2", `<iq type='get' id='ros2'><query xmlns='jabber:iq:roster' ver='`+rosterVer+`'/></iq>`)
	if !strings.Contains(ros, "<query") || strings.Contains(ros, `ver="`+rosterVer+`"`) || strings.Contains(ros, "auditrosterpal") {
		t.Errorf("roster of the new account (old version %s): %s", rosterVer, ros)
	}
	empty("vCard", "vc", `<iq type='get' id='vc'><vCard xmlns='vcard-temp'/></iq>`, "AuditVcardMarker")
	empty("private XML", "pr", `<iq type='get' id='pr'><query xmlns='jabber:iq:private'><note xmlns='urn:example:auditnotes'/></query></iq>`, "AuditPrivateMarker")
	empty("PEP nodes", "pep", `<iq type='get' id='pep' to='`+auditUser+`'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`, "urn:example:auditpep")
	empty("block list", "bl", `<iq type='get' id='bl'><blocklist xmlns='urn:xmpp:blocking'/></iq>`, "auditblocked")
	empty("archive", "mam", `<iq type='set' id='mam'><query xmlns='urn:xmpp:mam:2' queryid='q'/></iq>`, "Audit")
	prefs := textIQ(t, a, "prefs2", `<iq type='get' id='prefs2'><prefs xmlns='urn:xmpp:mam:2'/></iq>`)
	if !strings.Contains(prefs, `default="always"`) {
		t.Errorf("archive preferences of the new account: %s, want default always", prefs)
	}
	ret := textIQ(t, a, "ret3", `<iq type='set' id='ret3' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:kiez:mam:retention' action='execute'/></iq>`)
	if !strings.Contains(ret, "now kept as long as the server keeps them") {
		t.Errorf("personal retention of the new account: %s, want the server's", ret)
	}
	st := textIQ(t, a, "st3", `<iq type='set' id='st3' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:kiez:strangers' action='execute'/></iq>`)
	if !strings.Contains(st, "<value>0</value>") {
		t.Errorf("strangers setting of the new account: %s, want off", st)
	}
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	a.SyncNone(func(s *stanza.Stanza) bool {
		var b bytes.Buffer
		s.WriteTo(&b)
		return strings.Contains(b.String(), "AuditLateMarker")
	})
	// No affiliation in any room: the contact's members-only room refuses
	// it and knows no nick of it; in the old account's room, handed to the
	// contact, it is nobody.
	if got := stanzaText(mucJoin(t, a, auditContactRoom, "AuditNickMember")); !strings.Contains(got, "<registration-required") {
		t.Errorf("the new account joins the old one's members-only room: %s", got)
	}
	if got := textIQ(t, a, "nick", `<iq type='get' id='nick' to='`+auditContactRoom+`'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>`); strings.Contains(got, "AuditNickMember") {
		t.Errorf("the new account has the old one's registered nick: %s", got)
	}
	if got := stanzaText(mucJoin(t, a, auditOwnedRoom, "Newcomer")); !strings.Contains(got, `affiliation="none"`) || !strings.Contains(got, `code="110"`) {
		t.Errorf("the new account in the old one's room: %s, want affiliation none", got)
	}
	// The contact, a stranger now, reaches the new account.
	c.SendRaw(`<message to='` + auditUser + `' type='chat' id='new'><body>AuditNewMarker</body></message>`)
	a.Expect(servertest.Body("AuditNewMarker"))
	// The invitation the old account made is gone.
	r := dialRaw(t, c2s)
	if got := r.IQ(`<iq type='set' id='pa'><preauth xmlns='urn:xmpp:pars:0' token='` + token[1] + `'/></iq>`); !strings.Contains(got, "<item-not-found ") {
		t.Errorf("the old account's invitation: %s", got)
	}
	// The file is gone.
	if uploadURL == "" {
		t.Fatal("no upload in the old account's file list")
	}
	resp, err := webClient(t, false).Get(uploadURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of the old account's file: %s, want 404", resp.Status)
	}
	logout(sess)
	logout(cs)
}

// textIQ sends an iq written as text and returns its answer as text.
func textIQ(t *testing.T, c *servertest.Client, id, text string) string {
	t.Helper()
	if err := c.SendRaw(text); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	c.Expect(servertest.ByID(id)).WriteTo(&b)
	return b.String()
}

func wantResultIQ(t *testing.T, got string) {
	t.Helper()
	if !strings.Contains(got, `type="result"`) {
		t.Fatalf("want a result: %s", got)
	}
}

// attrOf returns the first value of attribute name in text.
func attrOf(t *testing.T, text, name string) string {
	t.Helper()
	m := regexp.MustCompile(`\s` + name + `="([^"]*)"`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s in %s", name, text)
	}
	return m[1]
}

// dialRaw opens an unauthenticated TLS stream to a STARTTLS listener.
func dialRaw(t *testing.T, addr net.Addr) *servertest.Raw {
	t.Helper()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := servertest.NewRaw(t, conn)
	return r
}

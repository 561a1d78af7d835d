package main

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// registerStream opens a stream to addr and upgrades it with STARTTLS,
// for an in-band registration; it returns the client and the features
// offered on the TLS stream.
func registerStream(t *testing.T, addr string) (*rawClient, rawElem) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{conn: conn}
	if _, err := c.open("localhost"); err != nil {
		t.Fatal(err)
	}
	c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if _, err := c.expect("proceed"); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn = tc
	features, err := c.open("localhost")
	if err != nil {
		t.Fatal(err)
	}
	return c, features
}

// answer returns the type and inner XML of the next iq.
func (c *rawClient) answer(t *testing.T) (typ, inner string) {
	t.Helper()
	e, err := c.expect("iq")
	if err != nil {
		t.Fatal(err)
	}
	return e.attr("type"), e.Inner
}

// registerRaw registers user with password in-band (XEP-0077) on a new
// stream and returns the answer's type and inner XML.
func registerRaw(t *testing.T, addr, user, password string) (typ, inner string) {
	t.Helper()
	c, features := registerStream(t, addr)
	if !strings.Contains(features.Inner, "http://jabber.org/features/iq-register") {
		t.Errorf("no registration feature offered: %s", features.Inner)
	}
	c.send(`<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>%s</username><password>%s</password></query></iq>`, user, password)
	return c.answer(t)
}

// kiezd offers in-band registration as [registration] says: the default
// invite policy refuses a registration without an invitation; "open"
// creates the account, which then logs in; reserved names stay refused.
func TestRegistration(t *testing.T) { onBothBackends(t, testRegistration) }

func testRegistration(t *testing.T) {
	file, _ := testConfig(t, "")
	d := startServe(t, nil, "-config", file)
	if typ, inner := registerRaw(t, d.bound.C2S[0].String(), "mallory", "a long password"); typ != "error" || !strings.Contains(inner, "not-allowed") {
		t.Errorf("registration without an invitation: %s %s", typ, inner)
	}
	d.stop(t)

	open, _ := testConfig(t, "\n[registration]\npolicy = \"open\"\n")
	d = startServe(t, nil, "-config", open)
	if typ, inner := registerRaw(t, d.bound.C2S[0].String(), "newbie", "a long password"); typ != "result" {
		t.Fatalf("open registration: %s %s", typ, inner)
	}
	sess, err := login(t, d.bound.C2S[0], false, "newbie@localhost", "a long password")
	if err != nil {
		t.Fatalf("login after registering: %v", err)
	}
	logout(sess)
	if typ, inner := registerRaw(t, d.bound.C2S[0].String(), "admin", "a long password"); typ != "error" || !strings.Contains(inner, "not-acceptable") {
		t.Errorf("a reserved name: %s %s", typ, inner)
	}
	d.stop(t)
}

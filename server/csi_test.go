package server_test

import (
	"strings"
	"testing"
)

// loginCSI logs alice/one in with initial presence and bob/pc in, and
// returns both. Alice enables stream management without resumption, only
// so that the test can mark her stream: an iq would not do, its answer
// makes client state indication flush what it holds.
func loginCSI(t *testing.T) (a, b *smClient) {
	t.Helper()
	srv, _ := startSM(t, 0)
	a = dialSM(t, srv.Addr)
	a.auth("alice", "pw")
	a.bind("one")
	a.send(`<enable xmlns='urn:xmpp:sm:3'/>`)
	a.await(`<enabled xmlns='urn:xmpp:sm:3'/>`)
	a.send(`<presence/>`)
	b = dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")
	// Sync: alice's presence was handled once her ping is answered.
	a.sync("sync")
	return a, b
}

// sync sends an iq to the server, reads up to its answer and returns what
// came before the answer: every stanza the server had queued for the
// client when it handled the iq (unless client state indication holds
// them: the answer flushes those first).
func (c *smClient) sync(id string) string {
	c.t.Helper()
	c.send(`<iq type='get' id='` + id + `' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	before, _ := c.read(`(?s)<iq[^>]*\sid=['"]` + id + `['"].*?</iq>`)
	return before
}

// stanzas reports whether s holds a stanza.
func stanzas(s string) bool {
	return strings.Contains(s, "<message") || strings.Contains(s, "<presence") || strings.Contains(s, "<iq")
}

func TestCSIOrderAndDedup(t *testing.T) {
	a, b := loginCSI(t)
	a.send(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	a.sync("sync2")

	b.send(`<presence to='alice@localhost'><show>away</show></presence>`)
	b.send(`<message to='alice@localhost/one' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	b.send(`<presence to='alice@localhost'><show>dnd</show></presence>`)
	b.sync("b1") // all three reached alice's session
	if got := a.mark(); stanzas(got) {
		t.Fatalf("an inactive client got %q", got)
	}
	b.message("alice@localhost/one", "wake")
	got := a.until(`<body>wake</body>`)
	got += a.mark() // the replaced presence would come before the mark
	if strings.Contains(got, "away") {
		t.Errorf("the replaced presence was delivered: %q", got)
	}
	i1, i2, i3 := strings.Index(got, "<composing"), strings.Index(got, "dnd"), strings.Index(got, "<body>wake")
	if i1 < 0 || i2 < 0 || i3 < 0 || !(i1 < i2 && i2 < i3) {
		t.Fatalf("want chat state, latest presence, then the message; got %q", got)
	}

	// Still inactive: a presence is held again, and <active/> flushes it.
	b.send(`<presence to='alice@localhost'><show>xa</show></presence>`)
	b.sync("b2")
	if got := a.mark(); stanzas(got) {
		t.Fatalf("an inactive client got %q", got)
	}
	a.send(`<active xmlns='urn:xmpp:csi:0'/>`)
	a.await(`<show>xa</show>`)
	// Active: delivered at once.
	b.send(`<presence to='alice@localhost'><show>chat</show></presence>`)
	a.await(`<show>chat</show>`)
}

// Held stanzas are not sent, so stream management does not count them
// until they are written.
func TestCSIWithSM(t *testing.T) {
	srv, _ := startSM(t, 0)
	a := dialSM(t, srv.Addr)
	a.login("alice", "one")
	a.send(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	a.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	a.await(`<a xmlns='urn:xmpp:sm:3' h='1'/>`)
	b := dialSM(t, srv.Addr)
	b.auth("bob", "pw")
	b.bind("pc")
	b.send(`<presence to='alice@localhost'><show>away</show></presence>`)
	b.sync("b1")
	if got := a.mark(); stanzas(got) {
		t.Fatalf("an inactive client got %q", got)
	}
	// Acknowledging one stanza now would be too many: none was sent.
	a.send(`<active xmlns='urn:xmpp:csi:0'/>`)
	a.await(`<show>away</show>`)
	a.await(`<r xmlns='urn:xmpp:sm:3'/>`)
	a.send(`<a xmlns='urn:xmpp:sm:3' h='1'/><r xmlns='urn:xmpp:sm:3'/>`)
	a.await(`<a xmlns='urn:xmpp:sm:3' h='1'/>`)
}

func TestCSIUnknownElement(t *testing.T) {
	a, _ := loginCSI(t)
	a.send(`<sleepy xmlns='urn:xmpp:csi:0'/>`)
	got := a.expectClosed()
	if !strings.Contains(a.pend+got, "<unsupported-stanza-type ") {
		t.Fatalf("got %q", a.pend+got)
	}
}

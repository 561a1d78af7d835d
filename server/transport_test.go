package server

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/stanza"
)

// TestTransportContentNamespace: a stream with another content namespace
// (jabber:server, as server-to-server streams will have) reads its
// stanzas into jabber:client, the server's namespace for stanzas, and
// writes them back in its own, nested forwarded stanzas included, without
// declaring jabber:client anywhere.
func TestTransportContentNamespace(t *testing.T) {
	const in = `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>` +
		`<message from='a@example.net' to='b@localhost' type='chat'><body>hi</body>` +
		`<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' to='c@localhost'><body>inner</body></message></forwarded></message>`
	tr := newTCPStream(bufio.NewReader(strings.NewReader(in)), stanza.NSServer, 4096, 16)
	if _, err := tr.readOpen(); err != nil {
		t.Fatal(err)
	}
	start, err := tr.next()
	if err != nil {
		t.Fatal(err)
	}
	if start.Name.Space != nsClient {
		t.Errorf("stanza read in %q, want jabber:client", start.Name.Space)
	}
	st, err := tr.readStanza(start)
	if err != nil {
		t.Fatal(err)
	}
	body, ok := st.ChildElement(xml.Name{Space: nsClient, Local: "body"})
	if !ok || body.Text() != "hi" {
		t.Fatalf("body in jabber:client not found in %v", st.Inner)
	}

	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	tr.writeOpen(w, "id1", "localhost")
	if err := tr.writeStanza(w, st); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	got := out.String()
	if !strings.Contains(got, `xmlns='jabber:server'`) || strings.Contains(got, "jabber:client") {
		t.Errorf("written on a jabber:server stream: %q", got)
	}
	// Read back on a jabber:client stream, the same stanza is written as
	// it came, but in jabber:client.
	var cl bytes.Buffer
	st.WriteTo(&cl)
	if want := strings.ReplaceAll(got[strings.Index(got, "<message"):], "jabber:server", "jabber:client"); cl.String() != want {
		t.Errorf("on jabber:client: %q\nwant %q", cl.String(), want)
	}

	// A client stream refuses a jabber:server header.
	tc := newTCPStream(bufio.NewReader(strings.NewReader(in)), nsClient, 4096, 16)
	if _, err := tc.readOpen(); err == nil || !strings.Contains(err.Error(), "invalid-namespace") {
		t.Errorf("jabber:server header on a client stream: %v", err)
	}
}

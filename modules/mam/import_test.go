package mam_test

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// TestImport: the archive comes back from an export with its messages'
// ids, times and peers, and the preferences with it.
func TestImport(t *testing.T) { each(t, testImport) }

func testImport(t *testing.T, open func(*testing.T) backend) {
	e := start(t, open, mam.Options{})
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	prefs := stanza.Elem(xml.Name{Space: mam.NS, Local: "prefs"}, []xml.Attr{stanza.Attr("default", "always")},
		stanza.Elem(xml.Name{Space: mam.NS, Local: "never"}, nil, stanza.TextElem(xml.Name{Space: mam.NS, Local: "jid"}, "eve@example.org")))
	modtest.MustResult(t, modtest.Do(t, alice, modtest.IQ("p", stanza.Set, jid.JID{}, prefs)), jid.JID{})
	aliceJID, bobJID := jid.MustParse("alice@localhost"), jid.MustParse("bob@localhost")
	alice.Send(chat(bobJID, "1", "a < b & c"))
	alice.Sync()
	bob.Send(chat(aliceJID, "2", "from bob"))
	bob.Sync()
	alice.Expect(func(st *stanza.Stanza) bool { return st.ID == "2" })
	ctx := context.Background()
	old, err := e.store.QueryArchive(ctx, "alice@localhost", storage.ArchiveQuery{Max: 10})
	if err != nil || len(old.Messages) != 2 {
		t.Fatalf("archive: %+v, %v", old, err)
	}

	before, after, report := e.srv.ReImport(t, aliceJID)
	if before != after || report.Elements != 1 {
		t.Fatalf("export after the import (%+v):\n%s\ndiffers from the one before:\n%s", report, after, before)
	}
	if !strings.Contains(after, `<jid xmlns="urn:xmpp:mam:2">eve@example.org</jid>`) {
		t.Fatalf("preferences lost:\n%s", after)
	}
	got, err := e.store.QueryArchive(ctx, "alice@localhost", storage.ArchiveQuery{Max: 10})
	if err != nil || len(got.Messages) != 2 {
		t.Fatalf("archive after the import: %+v, %v", got, err)
	}
	for i, m := range got.Messages {
		if o := old.Messages[i]; m.ID != o.ID || m.With != o.With {
			t.Errorf("message %d: id %d with %s; was %d with %s", i, m.ID, m.With, o.ID, o.With)
		}
	}
}

// TestImportForeign: an archive from another server, with ids of its own
// and stamps only, is imported at the stamps' times.
func TestImportForeign(t *testing.T) {
	e := start(t, backends[0].open, mam.Options{})
	doc := `<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='carol' password='pw'>` +
		`<archive xmlns='urn:xmpp:pie:0#mam'><result xmlns='urn:xmpp:mam:2' id='28482-98726-73623'><forwarded xmlns='urn:xmpp:forward:0'>` +
		`<delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/><message xmlns='jabber:client' from='witch@shakespeare.lit' to='carol@localhost'><body>Hail to thee</body></message>` +
		`</forwarded></result></archive></user></host></server-data>`
	r, err := e.srv.ImportUsers(t.Context(), strings.NewReader(doc), server.ImportOptions{})
	if err != nil || r.Failed() != nil {
		t.Fatalf("import: %v, %v", err, r.Failed())
	}
	got, err := e.store.QueryArchive(t.Context(), "carol@localhost", storage.ArchiveQuery{Max: 10})
	if err != nil || len(got.Messages) != 1 || got.Messages[0].With != "witch@shakespeare.lit" ||
		!got.Messages[0].Time().Equal(time.Date(2010, 7, 10, 23, 8, 25, 0, time.UTC)) {
		t.Fatalf("archive: %+v, %v", got, err)
	}
}

package roster_test

import (
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage"
)

// TestImport: the roster comes back from an export with every item's
// name, groups and subscription state, pending requests included.
func TestImport(t *testing.T) {
	srv, _, store := start(t, roster.Options{})
	alice := jid.MustParse("alice@" + srv.Domain)
	items := []storage.RosterItem{
		{JID: "both@example.org", Name: "Both & co", Groups: []string{"Friends", "Work"}, Subscription: storage.SubBoth},
		{JID: "from@example.org", Subscription: storage.SubFrom, Ask: true},
		{JID: "to@example.org", Subscription: storage.SubTo, PendingIn: true},
		{JID: "approved@example.org", Subscription: storage.SubNone, Approved: true},
		{JID: "stranger@example.org", Subscription: storage.SubNone, PendingIn: true, Hidden: true},
	}
	for _, it := range items {
		if _, err := store.SetRosterItem(t.Context(), alice.String(), it); err != nil {
			t.Fatal(err)
		}
	}
	before, after, report := srv.ReImport(t, alice)
	if before != after {
		t.Fatalf("export after the import:\n%s\ndiffers from the one before:\n%s", after, before)
	}
	if report.Elements != 3 || !strings.Contains(before, `from="stranger@example.org" to="alice@localhost" type="subscribe"`) {
		t.Fatalf("report %+v of\n%s", report, before)
	}
	got, _, err := store.Roster(t.Context(), alice.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(items) {
		t.Fatalf("roster after the import: %+v", got)
	}
	for _, it := range got {
		for _, want := range items {
			if want.JID == it.JID && (want.Name != it.Name || want.Subscription != it.Subscription || want.Ask != it.Ask ||
				want.Approved != it.Approved || want.PendingIn != it.PendingIn || want.Hidden != it.Hidden ||
				strings.Join(want.Groups, ",") != strings.Join(it.Groups, ",")) {
				t.Errorf("item %s: %+v, want %+v", it.JID, it, want)
			}
		}
	}
}

// TestImportProsody: the roster as Prosody's prosody-migrator writes it
// (0.12): single-quoted attributes, the roster version, an ask without a
// subscription, and a pending request as a <presence/> without a
// namespace of its own, which puts it in XEP-0227's.
func TestImportProsody(t *testing.T) {
	srv, _, store := start(t, roster.Options{})
	doc := `<server-data xmlns='urn:xmpp:pie:0'><host jid='` + srv.Domain + `'><user name='erin'>` +
		`<query version='4' xmlns='jabber:iq:roster'><item name='Carol &amp; co' jid='carol@example.org' subscription='none'><group>Work</group><group>Friends</group></item>` +
		`<item jid='bob@example.org' subscription='to'/><item jid='dave@example.org' ask='subscribe' subscription='none'/></query>` +
		`<presence from='frank@example.org' type='subscribe'/></user></host></server-data>`
	r, err := srv.ImportUsers(t.Context(), strings.NewReader(doc), server.ImportOptions{NoCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Failed(); err != nil || len(r.Users) != 1 || r.Users[0].Elements != 2 || len(r.Users[0].Unknown) != 0 {
		t.Fatalf("import: %v %+v", err, r.Users)
	}
	got, _, err := store.Roster(t.Context(), "erin@"+srv.Domain)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]storage.RosterItem{
		"carol@example.org": {Name: "Carol & co", Subscription: storage.SubNone, Groups: []string{"Work", "Friends"}},
		"bob@example.org":   {Subscription: storage.SubTo},
		"dave@example.org":  {Subscription: storage.SubNone, Ask: true},
		"frank@example.org": {Subscription: storage.SubNone, PendingIn: true, Hidden: true},
	}
	if len(got) != len(want) {
		t.Fatalf("roster: %+v", got)
	}
	for _, it := range got {
		w := want[it.JID]
		if w.Name != it.Name || w.Subscription != it.Subscription || w.Ask != it.Ask || w.PendingIn != it.PendingIn ||
			w.Hidden != it.Hidden || strings.Join(w.Groups, ",") != strings.Join(it.Groups, ",") {
			t.Errorf("item %s: %+v, want %+v", it.JID, it, w)
		}
	}
}

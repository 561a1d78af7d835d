package roster_test

import (
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/roster"
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

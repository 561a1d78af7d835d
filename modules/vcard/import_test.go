package vcard_test

import (
	"encoding/xml"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/vcard"
)

// TestImport: the vCard, photo included, comes back from an export.
func TestImport(t *testing.T) {
	st := memoryStore(t)
	srv, alice, bob := start(t, st, vcard.Options{MaxSize: 8 << 10})
	a := srv.Connect(t, alice, "pw-alice")
	modtest.MustResult(t, modtest.Do(t, a, setIQ(t, "a", jid.JID{}, card("Alice", 2000))), jid.JID{})
	before, after, report := srv.ReImport(t, alice)
	if before != after || report.Elements != 1 {
		t.Fatalf("export after the import (%+v):\n%s\ndiffers from the one before:\n%s", report, after, before)
	}
	b := srv.Connect(t, bob, "pw-bob")
	if got, want := vCardOf(t, modtest.Do(t, b, getIQ("get", alice))), serialise(t, element(t, card("Alice", 2000), xml.Name{})); got != want {
		t.Fatalf("vCard after the import\n%.300s\nwant\n%.300s", got, want)
	}
}

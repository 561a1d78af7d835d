package private_test

import (
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/private"
	"github.com/kiez-im/kiez/stanza"
)

// TestImport: every private XML item comes back from an export.
func TestImport(t *testing.T) {
	st := memoryStore(t)
	srv, alice, _ := start(t, st, private.Options{})
	a := srv.Connect(t, alice, "pw-alice")
	for i, item := range []string{notes, `<prefs xmlns='urn:example:prefs' theme='dark'><font size='12'/></prefs>`} {
		q := `<query xmlns='jabber:iq:private'>` + item + `</query>`
		modtest.MustResult(t, modtest.Do(t, a, modtest.IQ("set"+string(rune('0'+i)), stanza.Set, jid.JID{}, stanza.Tokens(elements(t, q)...))), jid.JID{})
	}
	before, after, report := srv.ReImport(t, alice)
	if before != after || report.Elements != 1 {
		t.Fatalf("export after the import (%+v):\n%s\ndiffers from the one before:\n%s", report, after, before)
	}
	keys, err := st.Keys(t.Context(), alice.String())
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys after the import: %v, %v", keys, err)
	}
}

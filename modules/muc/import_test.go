package muc_test

import (
	"strings"
	"testing"

	"github.com/kiez-im/kiez/modules/muc"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage"
)

// TestImport: an account's affiliations come back in the rooms that
// exist; those in other rooms are reported as not carried.
func TestImport(t *testing.T) {
	e := start(t, muc.Options{})
	room := roomJID("home")
	e.create(t, e.a, room, "Alice")
	e.configure(t, e.a, room, map[string][]string{"muc#roomconfig_persistentroom": {"1"}})
	doc := `<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='dave' password='pw'>` +
		`<rooms xmlns='urn:kiez:muc:export'><room jid='home@conference.localhost' affiliation='member' nick='Dave'/>` +
		`<room jid='elsewhere@conference.localhost' affiliation='admin'/></rooms></user></host></server-data>`
	r, err := e.srv.ImportUsers(t.Context(), strings.NewReader(doc), server.ImportOptions{})
	if err != nil || r.Failed() != nil {
		t.Fatalf("import: %v, %v", err, r.Failed())
	}
	u := r.Users[0]
	if len(u.Notes) != 1 || !strings.Contains(u.Notes[0], "1 room affiliations in rooms not on this server") || len(u.Unknown) != 0 {
		t.Fatalf("report: %+v", u)
	}
	a, err := e.store.Affiliation(t.Context(), room.String(), "dave@localhost")
	if err != nil || a.Affiliation != storage.AffMember || a.Nick != "Dave" {
		t.Fatalf("imported %+v, %v", a, err)
	}
}

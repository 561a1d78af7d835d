package servertest

import (
	"bytes"
	"encoding/xml"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
)

// ReImport exports user (with its credentials), deletes the account,
// imports the export and exports the account again. It returns both
// exports, which are the same document when every data owner restores
// what it exports, and what the import did for the user; it fails the
// test if the import does not import the user.
func (s *Server) ReImport(t testing.TB, user jid.JID) (before, after string, report server.UserImport) {
	t.Helper()
	export := func() string {
		var buf bytes.Buffer
		if err := s.ExportUser(t.Context(), user, xml.NewEncoder(&buf)); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	before = export()
	if err := s.DeleteUser(t.Context(), user); err != nil {
		t.Fatal(err)
	}
	r, err := s.ImportUsers(t.Context(), bytes.NewReader([]byte(before)), server.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Failed(); err != nil {
		t.Fatal(err)
	}
	if len(r.Users) != 1 {
		t.Fatalf("import of %s: %+v", user, r.Users)
	}
	return before, export(), r.Users[0]
}

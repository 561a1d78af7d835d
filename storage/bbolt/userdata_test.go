package bbolt_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// DeleteUserData and DeleteAccount leave no byte naming the user in the
// file, whatever kinds of data the user had, and leave others' data.
func TestDeleteUserDataRawWalk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	ctx := t.Context()
	const gone, kept = "deletedalice@example.org", "keptbob@example.org"
	for _, u := range []string{gone, kept} {
		if err := s.CreateAccount(ctx, testAccount(u)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetRosterItem(ctx, u, storage.RosterItem{JID: "friend-of-" + u[:4] + "@example.net"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, u, "vcard", []byte("<vCard>"+u+"</vCard>")); err != nil {
			t.Fatal(err)
		}
		if err := s.PushOffline(ctx, u, storage.OfflineMessage{Stored: time.Now(), Data: []byte("<message to='" + u + "'/>")}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendArchive(ctx, u, time.Now(), "peer-of-"+u[:4]+"@example.net/x", []byte("<message to='"+u+"'/>")); err != nil {
			t.Fatal(err)
		}
		pepItem := storage.PEPItem{ID: "item-of-" + u[:4], Payload: []byte("<nick>" + u + "</nick>"), Published: time.Now()}
		if _, _, err := s.PublishPEPItem(ctx, u, "urn:node-of-"+u[:4], []byte("<config of "+u+"/>"), pepItem, storage.PEPLimits{}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreatePEPNode(ctx, u, storage.PEPNode{Name: "urn:empty-node-of-" + u[:4]}, storage.PEPLimits{}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRoom(ctx, storage.MUCRoom{JID: "room@conference.example.org"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAffiliation(ctx, storage.MUCAffiliation{Room: "room@conference.example.org", JID: u, Affiliation: storage.AffMember, Nick: "nick-of-" + u[:4]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteUserData(ctx, gone); err != nil {
		t.Fatalf("DeleteUserData: %v", err)
	}
	if err := s.DeleteAccount(ctx, gone); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	mustClose(t, s)
	all := everything(t, path)
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"deletedalice", false},
		{"friend-of-dele", false},
		{"peer-of-dele", false},
		{"item-of-dele", false},
		{"node-of-dele", false},
		{"nick-of-dele", false},
		{"keptbob", true},
		{"friend-of-kept", true},
		{"peer-of-kept", true},
		{"item-of-kept", true},
		{"node-of-kept", true},
		{"nick-of-kept", true},
	} {
		if got := containsAnywhere(all, tt.s); got != tt.want {
			t.Errorf("%q appears in the database: %v, want %v", tt.s, got, tt.want)
		}
	}
}

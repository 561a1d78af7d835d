package storagetest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// TestUserData checks an implementation of storage.UserDataDeleter: it
// stores data for two users in every per-user storage interface the
// backend also implements (Roster, KV, Offline, Archive, PEP, MUC),
// deletes the first user's data, and checks that nothing of it is left
// while the second user's data is intact. A MUC room both users are
// affiliated with is not user data and stays. newStore must return a
// fresh, empty backend each time it is called.
func TestUserData(t *testing.T, newStore func(t *testing.T) storage.UserDataDeleter) {
	t.Run("DeleteEverything", func(t *testing.T) {
		s := newStore(t)
		const gone, kept = "gone@example.org", "kept@example.org"
		for _, u := range []string{gone, kept} {
			fillUserData(t, s, u)
		}
		if err := s.DeleteUserData(t.Context(), gone); err != nil {
			t.Fatalf("DeleteUserData: %v", err)
		}
		if left := userDataLeft(t, s, gone); len(left) > 0 {
			t.Errorf("after DeleteUserData(%q), still stored: %v", gone, left)
		}
		if left := userDataLeft(t, s, kept); len(left) != kinds(s) {
			t.Errorf("another user's data was touched: %s has only %v left", kept, left)
		}
	})
	t.Run("Nothing", func(t *testing.T) {
		s := newStore(t)
		if err := s.DeleteUserData(t.Context(), "nobody@example.org"); err != nil {
			t.Errorf("DeleteUserData of a user without data: %v", err)
		}
	})
}

// kinds counts the per-user storage interfaces b implements.
func kinds(b any) int {
	n := 0
	if _, ok := b.(storage.Roster); ok {
		n++
	}
	if _, ok := b.(storage.KV); ok {
		n++
	}
	if _, ok := b.(storage.Offline); ok {
		n++
	}
	if _, ok := b.(storage.Archive); ok {
		n++
	}
	if _, ok := b.(storage.PEP); ok {
		n++
	}
	if _, ok := b.(storage.MUC); ok {
		n++
	}
	return n
}

// fillUserData stores something for user in every per-user store b has.
func fillUserData(t *testing.T, b any, user string) {
	t.Helper()
	ctx := t.Context()
	if r, ok := b.(storage.Roster); ok {
		if _, err := r.SetRosterItem(ctx, user, storage.RosterItem{JID: "contact@example.net", Subscription: storage.SubBoth}); err != nil {
			t.Fatalf("SetRosterItem: %v", err)
		}
	}
	if kv, ok := b.(storage.KV); ok {
		if err := kv.Put(ctx, user, "vcard", []byte("<vCard/>")); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	if o, ok := b.(storage.Offline); ok {
		if err := o.PushOffline(ctx, user, storage.OfflineMessage{Stored: time.Now(), Data: []byte("<message/>")}, 0); err != nil {
			t.Fatalf("PushOffline: %v", err)
		}
	}
	if a, ok := b.(storage.Archive); ok {
		if _, err := a.AppendArchive(ctx, user, time.Now(), "contact@example.net", []byte("<message/>")); err != nil {
			t.Fatalf("AppendArchive: %v", err)
		}
	}
	if p, ok := b.(storage.PEP); ok {
		item := storage.PEPItem{ID: "current", Payload: []byte("<nick/>"), Published: time.Now()}
		if _, _, err := p.PublishPEPItem(ctx, user, "http://jabber.org/protocol/nick", nil, item, storage.PEPLimits{}); err != nil {
			t.Fatalf("PublishPEPItem: %v", err)
		}
		if err := p.CreatePEPNode(ctx, user, storage.PEPNode{Name: "urn:xmpp:bookmarks:1"}, storage.PEPLimits{}); err != nil {
			t.Fatalf("CreatePEPNode: %v", err)
		}
	}
	if m, ok := b.(storage.MUC); ok {
		local, _, _ := strings.Cut(user, "@")
		for _, room := range []string{userDataRoom, "own-" + local + "@conference.example.org"} {
			if err := m.PutRoom(ctx, storage.MUCRoom{JID: room, Created: time.Now(), LastActive: time.Now()}); err != nil {
				t.Fatalf("PutRoom: %v", err)
			}
			a := storage.MUCAffiliation{Room: room, JID: user, Affiliation: storage.AffMember, Nick: "nick"}
			if err := m.SetAffiliation(ctx, a); err != nil {
				t.Fatalf("SetAffiliation: %v", err)
			}
		}
	}
}

// userDataRoom is a MUC room every user of TestUserData is a member of.
const userDataRoom = "shared@conference.example.org"

// userDataLeft names the stores of b that hold data for user.
func userDataLeft(t *testing.T, b any, user string) []string {
	t.Helper()
	ctx := t.Context()
	var left []string
	if r, ok := b.(storage.Roster); ok {
		items, ver, err := r.Roster(ctx, user)
		if err != nil {
			t.Fatalf("Roster: %v", err)
		}
		if len(items) > 0 || ver != "" {
			left = append(left, "roster")
		}
	}
	if kv, ok := b.(storage.KV); ok {
		keys, err := kv.Keys(ctx, user)
		if err != nil {
			t.Fatalf("Keys: %v", err)
		}
		if len(keys) > 0 {
			left = append(left, "kv")
		}
	}
	if o, ok := b.(storage.Offline); ok {
		n, err := o.CountOffline(ctx, user)
		if err != nil {
			t.Fatalf("CountOffline: %v", err)
		}
		if n > 0 {
			left = append(left, "offline")
		}
	}
	if a, ok := b.(storage.Archive); ok {
		st, err := a.ArchiveStats(ctx, user)
		if err != nil {
			t.Fatalf("ArchiveStats: %v", err)
		}
		if st.Count > 0 {
			left = append(left, "archive")
		}
	}
	if p, ok := b.(storage.PEP); ok {
		nodes, err := p.PEPNodes(ctx, user)
		if err != nil {
			t.Fatalf("PEPNodes: %v", err)
		}
		if len(nodes) > 0 {
			left = append(left, "pep")
		}
	}
	if m, ok := b.(storage.MUC); ok {
		affs, err := m.UserAffiliations(ctx, user)
		if err != nil {
			t.Fatalf("UserAffiliations: %v", err)
		}
		if _, err := m.Affiliation(ctx, userDataRoom, user); err == nil || len(affs) > 0 {
			left = append(left, "muc")
		}
		if _, err := m.Room(ctx, userDataRoom); err != nil {
			t.Errorf("the room %s: %v", userDataRoom, err)
		}
	}
	return left
}

// TestSecrets checks an implementation of storage.Secrets. newStore must
// return a fresh, empty backend each time it is called.
func TestSecrets(t *testing.T, newStore func(t *testing.T) storage.Secrets) {
	s := newStore(t)
	ctx := t.Context()
	a, err := s.Secret(ctx, "a", 32)
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if len(a) != 32 || bytes.Equal(a, make([]byte, 32)) {
		t.Fatalf("Secret(a, 32) = %x: want 32 random bytes", a)
	}
	a2, err := s.Secret(ctx, "a", 32)
	if err != nil || !bytes.Equal(a, a2) {
		t.Errorf("second Secret(a) = %x, %v; want the first one, %x", a2, err, a)
	}
	a2[0] ^= 0xff
	if a3, _ := s.Secret(ctx, "a", 32); !bytes.Equal(a3, a) {
		t.Errorf("changing a returned secret changed the stored one")
	}
	b, err := s.Secret(ctx, "b", 32)
	if err != nil || bytes.Equal(a, b) {
		t.Errorf("Secret(b) = %x, %v: want a different secret from a", b, err)
	}
	if _, err := s.Secret(ctx, "a", 16); err == nil {
		t.Errorf("Secret(a, 16) of a 32-byte secret: no error")
	}
	if _, err := s.Secret(ctx, "", 16); err == nil {
		t.Errorf("Secret with an empty name: no error")
	}
	if other, err := newStore(t).Secret(ctx, "a", 32); err != nil || bytes.Equal(other, a) {
		t.Errorf("a new store's secret a = %x, %v: want a fresh random one", other, err)
	}
}

package bbolt_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
)

const (
	mucTestRoom  = "lounge@conference.example.org"
	mucTestRoom2 = "dev@conference.example.org"
)

func mucSet(t *testing.T, s *bbolt.Store, a storage.MUCAffiliation) {
	t.Helper()
	if err := s.SetAffiliation(t.Context(), a); err != nil {
		t.Fatalf("SetAffiliation(%+v): %v", a, err)
	}
}

func mucPut(t *testing.T, s *bbolt.Store, room, config string) {
	t.Helper()
	r := storage.MUCRoom{JID: room, Config: []byte(config), Created: time.Now(), LastActive: time.Now()}
	if err := s.PutRoom(t.Context(), r); err != nil {
		t.Fatalf("PutRoom(%q): %v", room, err)
	}
}

// Rooms and entries survive closing and opening the file, with the
// by-user index.
func TestMUCReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	mucPut(t, s, mucTestRoom, "<config/>")
	a := storage.MUCAffiliation{Room: mucTestRoom, JID: "alice@example.org", Affiliation: storage.AffOwner, Nick: "alice", Reason: "founder"}
	mucSet(t, s, a)
	mustClose(t, s)

	s = open(t, path)
	r, err := s.Room(ctx, mucTestRoom)
	if err != nil || string(r.Config) != "<config/>" || !r.Created.Equal(storage.Day(time.Now())) {
		t.Errorf("Room after reopening = %+v, %v", r, err)
	}
	if got, err := s.UserAffiliations(ctx, a.JID); err != nil || !slices.Equal(got, []storage.MUCAffiliation{a}) {
		t.Errorf("UserAffiliations after reopening = %+v, %v; want %+v", got, err, a)
	}
}

// Deleted rooms, entries set to none and the entries of a deleted user
// leave no byte naming them in the file, the by-user index included, and
// others' entries stay.
func TestMUCRawWalk(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	const (
		gone      = "deletedalice@example.org"
		unset     = "unsetcarol@example.org"
		kept      = "keptbob@example.org"
		goneRoom  = "deletedroom@conference.example.org"
		keptRoom  = "keptroom@conference.example.org"
		bannedDom = "banneddomain.example"
	)
	mucPut(t, s, goneRoom, "<config of deletedroom/>")
	mucPut(t, s, keptRoom, "<config of keptroom/>")
	for _, room := range []string{goneRoom, keptRoom} {
		mucSet(t, s, storage.MUCAffiliation{Room: room, JID: gone, Affiliation: storage.AffOwner, Nick: "nick-of-dele", Reason: "reason-of-dele"})
		mucSet(t, s, storage.MUCAffiliation{Room: room, JID: kept, Affiliation: storage.AffMember, Nick: "nick-of-kept"})
		mucSet(t, s, storage.MUCAffiliation{Room: room, JID: unset, Nick: "nick-of-unset"})
		mucSet(t, s, storage.MUCAffiliation{Room: room, JID: bannedDom, Affiliation: storage.AffOutcast})
	}
	if err := s.DeleteRoom(ctx, goneRoom); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	mucSet(t, s, storage.MUCAffiliation{Room: keptRoom, JID: unset})
	if err := s.DeleteUserData(ctx, gone); err != nil {
		t.Fatalf("DeleteUserData: %v", err)
	}
	// Only in the deleted room: the domain's index bucket is gone too.
	if got, err := s.UserAffiliations(ctx, bannedDom); err != nil || len(got) != 1 {
		t.Errorf("UserAffiliations(%q) = %+v, %v; want the kept room's entry", bannedDom, got, err)
	}
	mustClose(t, s)
	all := everything(t, path)
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"deletedalice", false},
		{"nick-of-dele", false},
		{"reason-of-dele", false},
		{"deletedroom", false},
		{"unsetcarol", false},
		{"nick-of-unset", false},
		{"keptbob", true},
		{"nick-of-kept", true},
		{"keptroom", true},
		{bannedDom, true},
	} {
		if got := containsAnywhere(all, tt.s); got != tt.want {
			t.Errorf("%q appears in the database: %v, want %v", tt.s, got, tt.want)
		}
	}
}

// Damaged records and a damaged index give errors wrapping ErrCorrupt,
// never a panic; deleting the room or the user still works, and other
// rooms and users are unaffected.
func TestMUCCorrupt(t *testing.T) {
	const user, other = "alice@example.org", "bob@example.org"
	for _, tt := range []struct {
		name string
		// damage changes the "muc" bucket.
		damage func(muc *bolt.Bucket) error
		// roomBad is whether Room fails, affsBad whether Affiliations
		// fails, and userBad whether UserAffiliations of user fails.
		roomBad, affsBad, userBad bool
	}{
		{"room record", func(m *bolt.Bucket) error {
			return m.Bucket([]byte("rooms")).Put([]byte(mucTestRoom), []byte{9, 9})
		}, true, false, false},
		{"entry record", func(m *bolt.Bucket) error {
			return m.Bucket([]byte("affs")).Bucket([]byte(mucTestRoom)).Put([]byte(user), []byte{1, 7, 0})
		}, false, true, true},
		{"empty entry", func(m *bolt.Bucket) error {
			return m.Bucket([]byte("affs")).Bucket([]byte(mucTestRoom)).Put([]byte(user), []byte{1, 0, 0})
		}, false, true, true},
		{"index without entry", func(m *bolt.Bucket) error {
			return m.Bucket([]byte("affs")).Bucket([]byte(mucTestRoom)).Delete([]byte(user))
		}, false, false, true},
		{"bucket in the index", func(m *bolt.Bucket) error {
			u := m.Bucket([]byte("users")).Bucket([]byte(user))
			if err := u.Delete([]byte(mucTestRoom)); err != nil {
				return err
			}
			_, err := u.CreateBucket([]byte(mucTestRoom))
			return err
		}, false, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "kiez.db")
			s := open(t, path)
			for _, room := range []string{mucTestRoom, mucTestRoom2} {
				mucPut(t, s, room, "<c/>")
				for _, u := range []string{user, other} {
					mucSet(t, s, storage.MUCAffiliation{Room: room, JID: u, Affiliation: storage.AffMember})
				}
			}
			mustClose(t, s)
			rawUpdate(t, path, func(tx *bolt.Tx) error { return tt.damage(tx.Bucket([]byte("muc"))) })
			s = open(t, path)
			check := func(what string, bad bool, err error) {
				t.Helper()
				switch {
				case bad && (!errors.Is(err, bbolt.ErrCorrupt) || errors.Is(err, storage.ErrNotFound)):
					t.Errorf("%s = %v, want ErrCorrupt", what, err)
				case !bad && err != nil:
					t.Errorf("%s: %v", what, err)
				}
			}
			_, err := s.Room(ctx, mucTestRoom)
			check("Room", tt.roomBad, err)
			_, err = s.Affiliations(ctx, mucTestRoom)
			check("Affiliations", tt.affsBad, err)
			_, err = s.UserAffiliations(ctx, user)
			check("UserAffiliations", tt.userBad, err)
			if got, err := s.UserAffiliations(ctx, other); err != nil || len(got) != 2 {
				t.Errorf("another user's entries: %+v, %v", got, err)
			}
			if got, err := s.Affiliations(ctx, mucTestRoom2); err != nil || len(got) != 2 {
				t.Errorf("another room's entries: %+v, %v", got, err)
			}
			if _, err := s.Rooms(ctx, ""); err != nil {
				t.Errorf("Rooms: %v", err)
			}

			rooms, err := s.DeleteUserAffiliations(ctx, user)
			if err != nil || !slices.Equal(rooms, []string{mucTestRoom2, mucTestRoom}) {
				t.Errorf("DeleteUserAffiliations of a damaged user = %q, %v", rooms, err)
			}
			if got, err := s.UserAffiliations(ctx, user); err != nil || got != nil {
				t.Errorf("after DeleteUserAffiliations: %+v, %v", got, err)
			}
			if err := s.DeleteRoom(ctx, mucTestRoom); err != nil {
				t.Fatalf("DeleteRoom of a damaged room: %v", err)
			}
			if _, err := s.Room(ctx, mucTestRoom); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Room after DeleteRoom = %v, want ErrNotFound", err)
			}
			mucPut(t, s, mucTestRoom, "<c/>")
			mucSet(t, s, storage.MUCAffiliation{Room: mucTestRoom, JID: user, Nick: "again"})
			if got, err := s.UserAffiliations(ctx, user); err != nil || len(got) != 1 {
				t.Errorf("a new entry after the damage was deleted: %+v, %v", got, err)
			}
		})
	}
}

// Open makes the MUC buckets of a file that lacks them, one written
// before the MUC store or damaged by hand.
func TestMUCBucketsMissing(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	mucPut(t, s, mucTestRoom, "<c/>")
	mustClose(t, s)
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("muc")).DeleteBucket([]byte("users"))
	})
	s = open(t, path)
	if _, err := s.Room(ctx, mucTestRoom); err != nil {
		t.Errorf("Room after Open made the index again: %v", err)
	}
	mucSet(t, s, storage.MUCAffiliation{Room: mucTestRoom, JID: "alice@example.org", Affiliation: storage.AffMember})
	mustClose(t, s)
	rawUpdate(t, path, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("muc")) })
	s = open(t, path)
	if rooms, err := s.Rooms(ctx, ""); err != nil || rooms != nil {
		t.Errorf("Rooms after Open made the buckets again = %q, %v", rooms, err)
	}
	mucPut(t, s, mucTestRoom, "<c/>")
}

package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// TestMUC checks an implementation of storage.MUC. newStore must return a
// fresh, empty store each time it is called; it may use t to register
// cleanup. Every subtest gets its own store.
func TestMUC(t *testing.T, newStore func(t *testing.T) storage.MUC) {
	tests := []struct {
		name string
		test func(t *testing.T, s storage.MUC)
	}{
		{"Empty", testMUCEmpty},
		{"PutRoom", testMUCPutRoom},
		{"ReplaceRoom", testMUCReplaceRoom},
		{"Rooms", testMUCRooms},
		{"DeleteRoom", testMUCDeleteRoom},
		{"SetAffiliation", testMUCSetAffiliation},
		{"RoomMustExist", testMUCRoomMustExist},
		{"Affiliations", testMUCAffiliations},
		{"UserAffiliations", testMUCUserAffiliations},
		{"DeleteUserAffiliations", testMUCDeleteUserAffiliations},
		{"Domains", testMUCDomains},
		{"Prefixes", testMUCPrefixes},
		{"Copies", testMUCCopies},
		{"Invalid", testMUCInvalid},
		{"Concurrent", testMUCConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, newStore(t))
		})
	}
}

const (
	mRoom    = "lounge@conference.example.org"
	mRoom2   = "dev@conference.example.org"
	mRoom3   = "talk@muc.example.net"
	mService = "conference.example.org"
	mUser    = "alice@example.org"
	mUser2   = "bob@example.org"
	mUser3   = "carol@example.net"
)

// mucDay is a time of day the tests store; rooms keep only its day.
var mucDay = time.Date(2025, 6, 1, 23, 30, 15, 500, time.FixedZone("UTC+2", 2*3600))

func mustPutRoom(t *testing.T, s storage.MUC, r storage.MUCRoom) {
	t.Helper()
	if err := s.PutRoom(t.Context(), r); err != nil {
		t.Fatalf("PutRoom(%q): %v", r.JID, err)
	}
}

// mustRooms stores an empty room for each of rooms.
func mustRooms(t *testing.T, s storage.MUC, rooms ...string) {
	t.Helper()
	for _, r := range rooms {
		mustPutRoom(t, s, storage.MUCRoom{JID: r, Config: []byte("<x/>"), Created: mucDay, LastActive: mucDay})
	}
}

func mustSetAff(t *testing.T, s storage.MUC, a storage.MUCAffiliation) {
	t.Helper()
	if err := s.SetAffiliation(t.Context(), a); err != nil {
		t.Fatalf("SetAffiliation(%+v): %v", a, err)
	}
}

func mustAffs(t *testing.T, s storage.MUC, room string) []storage.MUCAffiliation {
	t.Helper()
	affs, err := s.Affiliations(t.Context(), room)
	if err != nil {
		t.Fatalf("Affiliations(%q): %v", room, err)
	}
	return affs
}

func mustUserAffs(t *testing.T, s storage.MUC, jid string) []storage.MUCAffiliation {
	t.Helper()
	affs, err := s.UserAffiliations(t.Context(), jid)
	if err != nil {
		t.Fatalf("UserAffiliations(%q): %v", jid, err)
	}
	return affs
}

// checkAffs fails unless got is want, in order.
func checkAffs(t *testing.T, what string, got []storage.MUCAffiliation, want ...storage.MUCAffiliation) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// checkRoomList fails unless s.Rooms(service) is want.
func checkRoomList(t *testing.T, s storage.MUC, service string, want ...string) {
	t.Helper()
	got, err := s.Rooms(t.Context(), service)
	if err != nil {
		t.Fatalf("Rooms(%q): %v", service, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Rooms(%q) = %q, want %q", service, got, want)
	}
}

func checkNoAffiliation(t *testing.T, s storage.MUC, room, jid string) {
	t.Helper()
	if a, err := s.Affiliation(t.Context(), room, jid); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Affiliation(%q, %q) = %+v, %v; want ErrNotFound", room, jid, a, err)
	}
}

func testMUCEmpty(t *testing.T, s storage.MUC) {
	ctx := t.Context()
	if r, err := s.Room(ctx, mRoom); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Room of a new store = %+v, %v; want ErrNotFound", r, err)
	}
	checkRoomList(t, s, "")
	checkRoomList(t, s, mService)
	checkNoAffiliation(t, s, mRoom, mUser)
	if affs, err := s.Affiliations(ctx, mRoom); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Affiliations of a missing room = %+v, %v; want ErrNotFound", affs, err)
	}
	if affs := mustUserAffs(t, s, mUser); len(affs) != 0 {
		t.Errorf("UserAffiliations of a new store = %+v", affs)
	}
	if rooms, err := s.DeleteUserAffiliations(ctx, mUser); err != nil || len(rooms) != 0 {
		t.Errorf("DeleteUserAffiliations of a new store = %q, %v; want none", rooms, err)
	}
	if err := s.DeleteRoom(ctx, mRoom); err != nil {
		t.Errorf("DeleteRoom of a missing room: %v", err)
	}
}

func testMUCPutRoom(t *testing.T, s storage.MUC) {
	ctx := t.Context()
	in := storage.MUCRoom{JID: mRoom, Config: []byte("<config name='Lounge'/>"), Created: mucDay, LastActive: mucDay.Add(50 * time.Hour)}
	mustPutRoom(t, s, in)
	got, err := s.Room(ctx, mRoom)
	if err != nil {
		t.Fatalf("Room: %v", err)
	}
	want := storage.MUCRoom{
		JID:        mRoom,
		Config:     in.Config,
		Created:    time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC),
		LastActive: time.Date(2025, 6, 3, 0, 0, 0, 0, time.UTC),
	}
	if got.JID != want.JID || !bytes.Equal(got.Config, want.Config) || got.Created != want.Created || got.LastActive != want.LastActive {
		t.Errorf("Room = %+v, want %+v (days in UTC, no time of day)", got, want)
	}
	if got.Created.Location() != time.UTC || got.LastActive.Location() != time.UTC {
		t.Errorf("Room days in %v and %v, want UTC", got.Created.Location(), got.LastActive.Location())
	}

	// A room without a config or days.
	mustPutRoom(t, s, storage.MUCRoom{JID: mRoom2})
	got, err = s.Room(ctx, mRoom2)
	if err != nil {
		t.Fatalf("Room: %v", err)
	}
	if len(got.Config) != 0 || !got.Created.IsZero() || !got.LastActive.IsZero() {
		t.Errorf("Room of an empty room = %+v, want no config and zero days", got)
	}
}

func testMUCReplaceRoom(t *testing.T, s storage.MUC) {
	ctx := t.Context()
	mustRooms(t, s, mRoom)
	a := storage.MUCAffiliation{Room: mRoom, JID: mUser, Affiliation: storage.AffOwner, Nick: "alice"}
	mustSetAff(t, s, a)
	later := mucDay.AddDate(0, 1, 0)
	mustPutRoom(t, s, storage.MUCRoom{JID: mRoom, Config: []byte("<new/>"), Created: mucDay, LastActive: later})
	got, err := s.Room(ctx, mRoom)
	if err != nil {
		t.Fatalf("Room: %v", err)
	}
	if string(got.Config) != "<new/>" || !got.LastActive.Equal(storage.Day(later)) {
		t.Errorf("replaced room = %+v, want the new config and day", got)
	}
	checkAffs(t, "affiliations after PutRoom replaced the room", mustAffs(t, s, mRoom), a)
	checkRoomList(t, s, "", mRoom)
}

func testMUCRooms(t *testing.T, s storage.MUC) {
	mustRooms(t, s, mRoom, mRoom3, mRoom2, "x@sub.conference.example.org", "y@ference.example.org")
	checkRoomList(t, s, "", mRoom2, mRoom, mRoom3, "x@sub.conference.example.org", "y@ference.example.org")
	checkRoomList(t, s, mService, mRoom2, mRoom)
	checkRoomList(t, s, "muc.example.net", mRoom3)
	checkRoomList(t, s, "example.org")
	checkRoomList(t, s, "conference.example")
}

func testMUCDeleteRoom(t *testing.T, s storage.MUC) {
	ctx := t.Context()
	mustRooms(t, s, mRoom, mRoom2)
	for _, room := range []string{mRoom, mRoom2} {
		mustSetAff(t, s, storage.MUCAffiliation{Room: room, JID: mUser, Affiliation: storage.AffOwner})
		mustSetAff(t, s, storage.MUCAffiliation{Room: room, JID: mUser2, Nick: "bob"})
	}
	if err := s.DeleteRoom(ctx, mRoom); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	if r, err := s.Room(ctx, mRoom); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Room after DeleteRoom = %+v, %v; want ErrNotFound", r, err)
	}
	checkRoomList(t, s, "", mRoom2)
	checkNoAffiliation(t, s, mRoom, mUser)
	checkAffs(t, "UserAffiliations of alice after DeleteRoom", mustUserAffs(t, s, mUser),
		storage.MUCAffiliation{Room: mRoom2, JID: mUser, Affiliation: storage.AffOwner})
	checkAffs(t, "UserAffiliations of bob after DeleteRoom", mustUserAffs(t, s, mUser2),
		storage.MUCAffiliation{Room: mRoom2, JID: mUser2, Nick: "bob"})

	// A room made again under the same JID starts without entries.
	mustRooms(t, s, mRoom)
	if affs := mustAffs(t, s, mRoom); len(affs) != 0 {
		t.Errorf("a room made again after DeleteRoom has entries %+v", affs)
	}
	if rooms, err := s.DeleteUserAffiliations(ctx, mUser); err != nil || !slices.Equal(rooms, []string{mRoom2}) {
		t.Errorf("DeleteUserAffiliations after DeleteRoom = %q, %v; want [%s]", rooms, err, mRoom2)
	}
	if err := s.DeleteRoom(ctx, mRoom); err != nil {
		t.Errorf("DeleteRoom again: %v", err)
	}
	if err := s.DeleteRoom(ctx, mRoom); err != nil {
		t.Errorf("DeleteRoom of a deleted room: %v", err)
	}
}

func testMUCSetAffiliation(t *testing.T, s storage.MUC) {
	ctx := t.Context()
	mustRooms(t, s, mRoom)
	a := storage.MUCAffiliation{Room: mRoom, JID: mUser, Affiliation: storage.AffMember, Nick: "alice", Reason: "a regular"}
	mustSetAff(t, s, a)
	if got, err := s.Affiliation(ctx, mRoom, mUser); err != nil || got != a {
		t.Errorf("Affiliation = %+v, %v; want %+v", got, err, a)
	}
	checkNoAffiliation(t, s, mRoom, mUser2)

	// Each field is replaced, not merged.
	for _, b := range []storage.MUCAffiliation{
		{Room: mRoom, JID: mUser, Affiliation: storage.AffAdmin},
		{Room: mRoom, JID: mUser, Affiliation: storage.AffOwner, Nick: "Alice"},
		{Room: mRoom, JID: mUser, Nick: "only a nick"},
		{Room: mRoom, JID: mUser, Affiliation: storage.AffOutcast, Reason: "spam"},
	} {
		mustSetAff(t, s, b)
		if got, err := s.Affiliation(ctx, mRoom, mUser); err != nil || got != b {
			t.Errorf("Affiliation after replacing = %+v, %v; want %+v", got, err, b)
		}
		checkAffs(t, "Affiliations after replacing", mustAffs(t, s, mRoom), b)
		checkAffs(t, "UserAffiliations after replacing", mustUserAffs(t, s, mUser), b)
	}

	// Neither an affiliation nor a nick deletes the entry, a reason or not.
	mustSetAff(t, s, storage.MUCAffiliation{Room: mRoom, JID: mUser2, Affiliation: storage.AffMember})
	mustSetAff(t, s, storage.MUCAffiliation{Room: mRoom, JID: mUser, Reason: "forgiven"})
	checkNoAffiliation(t, s, mRoom, mUser)
	checkAffs(t, "UserAffiliations after deleting the entry", mustUserAffs(t, s, mUser))
	checkAffs(t, "Affiliations after deleting an entry", mustAffs(t, s, mRoom),
		storage.MUCAffiliation{Room: mRoom, JID: mUser2, Affiliation: storage.AffMember})
	// Deleting a missing entry of an existing room is not an error.
	mustSetAff(t, s, storage.MUCAffiliation{Room: mRoom, JID: mUser3})
	if rooms, err := s.DeleteUserAffiliations(ctx, mUser); err != nil || len(rooms) != 0 {
		t.Errorf("DeleteUserAffiliations after deleting the only entry = %q, %v; want none", rooms, err)
	}
}

func testMUCRoomMustExist(t *testing.T, s storage.MUC) {
	ctx := t.Context()
	mustRooms(t, s, mRoom2)
	for _, a := range []storage.MUCAffiliation{
		{Room: mRoom, JID: mUser, Affiliation: storage.AffMember},
		{Room: mRoom, JID: mUser, Nick: "alice"},
	} {
		checkErrIs(t, fmt.Sprintf("SetAffiliation(%+v) in a missing room", a), s.SetAffiliation(ctx, a), storage.ErrNotFound)
	}
	checkNoAffiliation(t, s, mRoom, mUser)
	checkAffs(t, "UserAffiliations after refused writes", mustUserAffs(t, s, mUser))
	checkRoomList(t, s, "", mRoom2)
}

func testMUCAffiliations(t *testing.T, s storage.MUC) {
	mustRooms(t, s, mRoom, mRoom2)
	want := []storage.MUCAffiliation{
		{Room: mRoom, JID: "a@example.com", Affiliation: storage.AffOutcast, Reason: "troll"},
		{Room: mRoom, JID: mUser, Affiliation: storage.AffOwner, Nick: "alice"},
		{Room: mRoom, JID: mUser2, Affiliation: storage.AffAdmin},
		{Room: mRoom, JID: "zed@example.org", Nick: "zed"},
		{Room: mRoom, JID: mUser3, Affiliation: storage.AffMember, Nick: "carol"},
	}
	for _, i := range []int{3, 0, 4, 2, 1} {
		mustSetAff(t, s, want[i])
	}
	mustSetAff(t, s, storage.MUCAffiliation{Room: mRoom2, JID: mUser, Affiliation: storage.AffMember})
	slices.SortFunc(want, func(a, b storage.MUCAffiliation) int { return strings.Compare(a.JID, b.JID) })
	checkAffs(t, "Affiliations", mustAffs(t, s, mRoom), want...)
	checkAffs(t, "Affiliations of the other room", mustAffs(t, s, mRoom2),
		storage.MUCAffiliation{Room: mRoom2, JID: mUser, Affiliation: storage.AffMember})
}

func testMUCUserAffiliations(t *testing.T, s storage.MUC) {
	mustRooms(t, s, mRoom, mRoom2, mRoom3)
	want := []storage.MUCAffiliation{
		{Room: mRoom2, JID: mUser, Affiliation: storage.AffOwner, Nick: "al"},
		{Room: mRoom, JID: mUser, Affiliation: storage.AffMember, Reason: "invited"},
		{Room: mRoom3, JID: mUser, Nick: "alice"},
	}
	for _, i := range []int{2, 0, 1} {
		mustSetAff(t, s, want[i])
	}
	mustSetAff(t, s, storage.MUCAffiliation{Room: mRoom, JID: mUser2, Affiliation: storage.AffAdmin})
	checkAffs(t, "UserAffiliations", mustUserAffs(t, s, mUser), want...)
	checkAffs(t, "UserAffiliations of bob", mustUserAffs(t, s, mUser2),
		storage.MUCAffiliation{Room: mRoom, JID: mUser2, Affiliation: storage.AffAdmin})
	checkAffs(t, "UserAffiliations of a stranger", mustUserAffs(t, s, mUser3))
}

func testMUCDeleteUserAffiliations(t *testing.T, s storage.MUC) {
	ctx := t.Context()
	mustRooms(t, s, mRoom, mRoom2, mRoom3)
	for _, room := range []string{mRoom3, mRoom, mRoom2} {
		mustSetAff(t, s, storage.MUCAffiliation{Room: room, JID: mUser, Affiliation: storage.AffMember, Nick: "alice"})
	}
	bob := []storage.MUCAffiliation{
		{Room: mRoom2, JID: mUser2, Affiliation: storage.AffOwner},
		{Room: mRoom, JID: mUser2, Nick: "bob"},
	}
	for _, a := range bob {
		mustSetAff(t, s, a)
	}
	rooms, err := s.DeleteUserAffiliations(ctx, mUser)
	if err != nil {
		t.Fatalf("DeleteUserAffiliations: %v", err)
	}
	if want := []string{mRoom2, mRoom, mRoom3}; !slices.Equal(rooms, want) {
		t.Errorf("DeleteUserAffiliations = %q, want %q", rooms, want)
	}
	checkAffs(t, "UserAffiliations after DeleteUserAffiliations", mustUserAffs(t, s, mUser))
	for _, room := range []string{mRoom, mRoom2, mRoom3} {
		checkNoAffiliation(t, s, room, mUser)
	}
	checkAffs(t, "bob's entries after alice's were deleted", mustUserAffs(t, s, mUser2), bob...)
	checkAffs(t, "Affiliations after DeleteUserAffiliations", mustAffs(t, s, mRoom), bob[1])
	checkAffs(t, "Affiliations of a room left empty", mustAffs(t, s, mRoom3))
	checkRoomList(t, s, "", mRoom2, mRoom, mRoom3)
	if rooms, err := s.DeleteUserAffiliations(ctx, mUser); err != nil || len(rooms) != 0 {
		t.Errorf("DeleteUserAffiliations again = %q, %v; want none", rooms, err)
	}
}

// testMUCDomains checks entries for whole domains, which XEP-0045 allows,
// next to entries of accounts at those domains.
func testMUCDomains(t *testing.T, s storage.MUC) {
	ctx := t.Context()
	mustRooms(t, s, mRoom, mRoom2)
	ban := storage.MUCAffiliation{Room: mRoom, JID: "spam.example", Affiliation: storage.AffOutcast, Reason: "spam"}
	ban2 := storage.MUCAffiliation{Room: mRoom2, JID: "spam.example", Affiliation: storage.AffOutcast}
	member := storage.MUCAffiliation{Room: mRoom, JID: "eve@spam.example", Affiliation: storage.AffMember}
	for _, a := range []storage.MUCAffiliation{ban, ban2, member} {
		mustSetAff(t, s, a)
	}
	if got, err := s.Affiliation(ctx, mRoom, "spam.example"); err != nil || got != ban {
		t.Errorf("Affiliation of a domain = %+v, %v; want %+v", got, err, ban)
	}
	checkAffs(t, "UserAffiliations of a domain", mustUserAffs(t, s, "spam.example"), ban2, ban)
	checkAffs(t, "UserAffiliations of an account at the domain", mustUserAffs(t, s, "eve@spam.example"), member)
	checkAffs(t, "Affiliations", mustAffs(t, s, mRoom), member, ban)

	if rooms, err := s.DeleteUserAffiliations(ctx, "eve@spam.example"); err != nil || !slices.Equal(rooms, []string{mRoom}) {
		t.Errorf("DeleteUserAffiliations of an account = %q, %v; want [%s]", rooms, err, mRoom)
	}
	checkAffs(t, "UserAffiliations of the domain after deleting an account's", mustUserAffs(t, s, "spam.example"), ban2, ban)
	if rooms, err := s.DeleteUserAffiliations(ctx, "spam.example"); err != nil || !slices.Equal(rooms, []string{mRoom2, mRoom}) {
		t.Errorf("DeleteUserAffiliations of a domain = %q, %v; want [%s %s]", rooms, err, mRoom2, mRoom)
	}
	checkAffs(t, "Affiliations after deleting every entry", mustAffs(t, s, mRoom))
}

// testMUCPrefixes checks that JIDs that are prefixes of one another, as a
// store keyed by JID might confuse, are kept apart.
func testMUCPrefixes(t *testing.T, s storage.MUC) {
	ctx := t.Context()
	const (
		room  = "r@conference.example.org"
		roomX = "r@conference.example.org.uk"
		user  = "al@example.org"
		userX = "al@example.org.uk"
	)
	mustRooms(t, s, room, roomX)
	entries := []storage.MUCAffiliation{
		{Room: room, JID: user, Affiliation: storage.AffMember},
		{Room: room, JID: userX, Affiliation: storage.AffAdmin},
		{Room: roomX, JID: user, Affiliation: storage.AffOwner},
		{Room: roomX, JID: userX, Nick: "x"},
	}
	for _, a := range entries {
		mustSetAff(t, s, a)
	}
	checkAffs(t, "Affiliations of "+room, mustAffs(t, s, room), entries[0], entries[1])
	checkAffs(t, "UserAffiliations of "+user, mustUserAffs(t, s, user), entries[0], entries[2])
	checkRoomList(t, s, "conference.example.org", room)
	if err := s.DeleteRoom(ctx, room); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	checkAffs(t, "Affiliations of "+roomX+" after deleting "+room, mustAffs(t, s, roomX), entries[2], entries[3])
	if rooms, err := s.DeleteUserAffiliations(ctx, user); err != nil || !slices.Equal(rooms, []string{roomX}) {
		t.Errorf("DeleteUserAffiliations(%q) = %q, %v; want [%s]", user, rooms, err, roomX)
	}
	checkAffs(t, "UserAffiliations of "+userX, mustUserAffs(t, s, userX), entries[3])
}

func testMUCCopies(t *testing.T, s storage.MUC) {
	ctx := t.Context()
	config := []byte("<config/>")
	mustPutRoom(t, s, storage.MUCRoom{JID: mRoom, Config: config, Created: mucDay, LastActive: mucDay})
	config[1] = 'X'
	r, err := s.Room(ctx, mRoom)
	if err != nil {
		t.Fatalf("Room: %v", err)
	}
	if string(r.Config) != "<config/>" {
		t.Fatalf("changing the config passed to PutRoom changed the stored one to %q", r.Config)
	}
	r.Config[1] = 'Y'
	if r2, _ := s.Room(ctx, mRoom); string(r2.Config) != "<config/>" {
		t.Errorf("changing a returned config changed the stored one to %q", r2.Config)
	}

	mustSetAff(t, s, storage.MUCAffiliation{Room: mRoom, JID: mUser, Affiliation: storage.AffMember})
	affs := mustAffs(t, s, mRoom)
	affs[0].Affiliation = storage.AffOwner
	uaffs := mustUserAffs(t, s, mUser)
	uaffs[0].Nick = "changed"
	want := storage.MUCAffiliation{Room: mRoom, JID: mUser, Affiliation: storage.AffMember}
	checkAffs(t, "Affiliations after changing returned slices", mustAffs(t, s, mRoom), want)
	checkAffs(t, "UserAffiliations after changing returned slices", mustUserAffs(t, s, mUser), want)
	rooms, err := s.Rooms(ctx, "")
	if err != nil {
		t.Fatalf("Rooms: %v", err)
	}
	rooms[0] = "changed"
	checkRoomList(t, s, "", mRoom)
}

func testMUCInvalid(t *testing.T, s storage.MUC) {
	ctx := t.Context()
	mustRooms(t, s, mRoom)
	for _, r := range []storage.MUCRoom{
		{JID: ""},
		{JID: mRoom2, Created: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{JID: mRoom2, LastActive: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if err := s.PutRoom(ctx, r); err == nil {
			t.Errorf("PutRoom(%+v): no error", r)
		}
	}
	checkRoomList(t, s, "", mRoom)
	for _, a := range []storage.MUCAffiliation{
		{Room: mRoom, JID: "", Affiliation: storage.AffMember},
		{Room: "", JID: mUser, Affiliation: storage.AffMember},
		{Room: mRoom, JID: mUser, Affiliation: "none"},
		{Room: mRoom, JID: mUser, Affiliation: "Owner"},
	} {
		if err := s.SetAffiliation(ctx, a); err == nil {
			t.Errorf("SetAffiliation(%+v): no error", a)
		}
	}
	checkAffs(t, "Affiliations after refused writes", mustAffs(t, s, mRoom))
}

func testMUCConcurrent(t *testing.T, s storage.MUC) {
	ctx := t.Context()
	const (
		workers = 6
		rounds  = 20
	)
	mustRooms(t, s, mRoom)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			room := fmt.Sprintf("w%d@%s", w, mService)
			if err := s.PutRoom(ctx, storage.MUCRoom{JID: room, Created: mucDay, LastActive: mucDay}); err != nil {
				t.Errorf("worker %d: PutRoom: %v", w, err)
				return
			}
			for r := range rounds {
				// u<r> is shared by the workers, p<w>-<r> is this
				// worker's own and deleted again.
				user, own := fmt.Sprintf("u%d@example.org", r), fmt.Sprintf("p%d-%d@example.org", w, r)
				for _, a := range []storage.MUCAffiliation{
					{Room: room, JID: user, Affiliation: storage.AffMember},
					{Room: mRoom, JID: user, Nick: fmt.Sprintf("w%d", w)},
					{Room: room, JID: own, Affiliation: storage.AffAdmin},
					{Room: mRoom, JID: own, Affiliation: storage.AffOutcast},
				} {
					if err := s.SetAffiliation(ctx, a); err != nil {
						t.Errorf("worker %d: SetAffiliation: %v", w, err)
						return
					}
				}
				if _, err := s.UserAffiliations(ctx, user); err != nil {
					t.Errorf("worker %d: UserAffiliations: %v", w, err)
					return
				}
				if _, err := s.Affiliations(ctx, mRoom); err != nil {
					t.Errorf("worker %d: Affiliations: %v", w, err)
					return
				}
				rooms, err := s.DeleteUserAffiliations(ctx, own)
				if err != nil {
					t.Errorf("worker %d: DeleteUserAffiliations: %v", w, err)
					return
				}
				if want := []string{mRoom, room}; !slices.Equal(rooms, want) {
					t.Errorf("worker %d: DeleteUserAffiliations(%s) = %q, want %q", w, own, rooms, want)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for r := range rounds {
		user := fmt.Sprintf("u%d@example.org", r)
		affs := mustUserAffs(t, s, user)
		if len(affs) != workers+1 {
			t.Errorf("%s is in %d rooms, want %d", user, len(affs), workers+1)
			continue
		}
		for i := 1; i < len(affs); i++ {
			if affs[i-1].Room >= affs[i].Room {
				t.Errorf("UserAffiliations(%s) not sorted by room: %+v", user, affs)
				break
			}
		}
	}
	if affs := mustAffs(t, s, mRoom); len(affs) != rounds {
		t.Errorf("%s has %d entries, want the %d shared users'", mRoom, len(affs), rounds)
	}
	for w := range workers {
		room := fmt.Sprintf("w%d@%s", w, mService)
		if affs := mustAffs(t, s, room); len(affs) != rounds {
			t.Errorf("%s has %d entries, want the %d shared users'", room, len(affs), rounds)
		}
	}
}

package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kiez-im/kiez/storage"
)

// TestRoster checks an implementation of storage.Roster. newStore must
// return a fresh, empty store each time it is called; it may use t to
// register cleanup. Every subtest gets its own store.
func TestRoster(t *testing.T, newStore func(t *testing.T) storage.Roster) {
	tests := []struct {
		name string
		test func(t *testing.T, s storage.Roster)
	}{
		{"Empty", testRosterEmpty},
		{"RoundTrip", testRosterRoundTrip},
		{"Replace", testRosterReplace},
		{"Versions", testRosterVersions},
		{"ChangesSince", testRosterChangesSince},
		{"UnknownVersions", testRosterUnknownVersions},
		{"TombstoneBound", testRosterTombstoneBound},
		{"Delete", testRosterDelete},
		{"DeleteRoster", testRosterDeleteRoster},
		{"Invalid", testRosterInvalid},
		{"Copies", testRosterCopies},
		{"Concurrent", testRosterConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, newStore(t))
		})
	}
}

const (
	rUser  = "alice@example.org"
	rOther = "bob@example.org"
)

func mustSetItem(t *testing.T, s storage.Roster, user string, it storage.RosterItem) string {
	t.Helper()
	ver, err := s.SetRosterItem(t.Context(), user, it)
	if err != nil {
		t.Fatalf("SetRosterItem(%q, %q): %v", user, it.JID, err)
	}
	if ver == "" {
		t.Fatalf("SetRosterItem(%q, %q) returned the empty version", user, it.JID)
	}
	return ver
}

func mustDeleteItem(t *testing.T, s storage.Roster, user, contact string) string {
	t.Helper()
	ver, err := s.DeleteRosterItem(t.Context(), user, contact)
	if err != nil {
		t.Fatalf("DeleteRosterItem(%q, %q): %v", user, contact, err)
	}
	return ver
}

// mustRoster returns user's items and version.
func mustRoster(t *testing.T, s storage.Roster, user string) ([]storage.RosterItem, string) {
	t.Helper()
	items, ver, err := s.Roster(t.Context(), user)
	if err != nil {
		t.Fatalf("Roster(%q): %v", user, err)
	}
	return items, ver
}

// normal returns it as a store returns it: "" subscription as none, no
// empty group slice.
func normal(it storage.RosterItem) storage.RosterItem {
	if it.Subscription == "" {
		it.Subscription = storage.SubNone
	}
	if len(it.Groups) == 0 {
		it.Groups = nil
	}
	return it
}

func sameItems(got, want []storage.RosterItem) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !reflect.DeepEqual(normal(got[i]), normal(want[i])) {
			return false
		}
	}
	return true
}

func checkItems(t *testing.T, what string, got, want []storage.RosterItem) {
	t.Helper()
	if !sameItems(got, want) {
		t.Errorf("%s =\n\t%+v\nwant\n\t%+v", what, got, want)
	}
}

// checkChanges fails unless the changes since ver are exactly want, each
// with a distinct version, increasing, the last one cur; and unless the
// changes since each change's version are the ones after it.
func checkChanges(t *testing.T, s storage.Roster, user, ver, cur string, want []storage.RosterItem) {
	t.Helper()
	got, newVer, ok, err := s.RosterChangesSince(t.Context(), user, ver)
	if err != nil || !ok {
		t.Fatalf("RosterChangesSince(%q, %q) = ok %v, err %v; want known", user, ver, ok, err)
	}
	if newVer != cur {
		t.Errorf("RosterChangesSince(%q, %q) version = %q, want %q", user, ver, newVer, cur)
	}
	items := make([]storage.RosterItem, len(got))
	for i, c := range got {
		items[i] = c.Item
	}
	checkItems(t, fmt.Sprintf("RosterChangesSince(%q, %q)", user, ver), items, want)
	if len(got) > 0 && got[len(got)-1].Ver != cur {
		t.Errorf("RosterChangesSince(%q, %q): last change at %q, want the current version %q", user, ver, got[len(got)-1].Ver, cur)
	}
	seen := map[string]bool{ver: true}
	for i, c := range got {
		if seen[c.Ver] {
			t.Fatalf("RosterChangesSince(%q, %q): change %d has the version %q again", user, ver, i, c.Ver)
		}
		seen[c.Ver] = true
		if len(got) > 20 && i%100 != 0 {
			continue // keep long histories fast
		}
		rest, newVer, ok, err := s.RosterChangesSince(t.Context(), user, c.Ver)
		if err != nil || !ok || newVer != cur || len(rest) != len(got)-i-1 {
			t.Errorf("RosterChangesSince(%q, %q) after change %d = %d changes, %q, %v, %v; want %d", user, c.Ver, i, len(rest), newVer, ok, err, len(got)-i-1)
		}
	}
}

func checkUnknown(t *testing.T, s storage.Roster, user, ver string) {
	t.Helper()
	got, _, ok, err := s.RosterChangesSince(t.Context(), user, ver)
	if err != nil {
		t.Fatalf("RosterChangesSince(%q, %q): %v", user, ver, err)
	}
	if ok || len(got) != 0 {
		t.Errorf("RosterChangesSince(%q, %q) = %d changes, ok %v; want unknown", user, ver, len(got), ok)
	}
}

func removed(contact string) storage.RosterItem {
	return storage.RosterItem{JID: contact, Subscription: storage.SubRemove}
}

func fullItem(contact string) storage.RosterItem {
	return storage.RosterItem{
		JID: contact, Name: "Nick ✓ <&>", Groups: []string{"Friends", "Work", "Ünïcode"},
		Subscription: storage.SubBoth, Ask: true, Approved: true, PendingIn: true, Hidden: true,
	}
}

func testRosterEmpty(t *testing.T, s storage.Roster) {
	items, ver := mustRoster(t, s, rUser)
	if len(items) != 0 || ver != "" {
		t.Errorf("Roster of a new user = %v, %q; want none and \"\"", items, ver)
	}
	checkUnknown(t, s, rUser, "")
	checkUnknown(t, s, rUser, "1")
	if _, err := s.RosterItem(t.Context(), rUser, "x@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RosterItem of a new user: %v, want ErrNotFound", err)
	}
	if err := s.DeleteRoster(t.Context(), rUser); err != nil {
		t.Errorf("DeleteRoster of a new user: %v", err)
	}
}

func testRosterRoundTrip(t *testing.T, s storage.Roster) {
	ctx := t.Context()
	want := []storage.RosterItem{
		fullItem("carol@example.org"),
		{JID: "dave@example.net"},
		{JID: "eve@example.com", Subscription: storage.SubTo, Groups: []string{""}},
		{JID: "frank@example.org", Subscription: storage.SubFrom, Approved: true},
		{JID: "example.org"},
	}
	for _, combo := range []storage.RosterItem{
		{JID: "g1@example.org", Ask: true},
		{JID: "g2@example.org", PendingIn: true, Subscription: storage.SubNone},
		{JID: "g3@example.org", Ask: true, PendingIn: true, Subscription: storage.SubFrom},
	} {
		want = append(want, combo)
	}
	// Store in reverse; Roster sorts by JID.
	for i := len(want) - 1; i >= 0; i-- {
		mustSetItem(t, s, rUser, want[i])
	}
	slices.SortFunc(want, func(a, b storage.RosterItem) int { return strings.Compare(a.JID, b.JID) })
	items, _ := mustRoster(t, s, rUser)
	checkItems(t, "Roster", items, want)
	for _, w := range want {
		got, err := s.RosterItem(ctx, rUser, w.JID)
		if err != nil {
			t.Fatalf("RosterItem(%q): %v", w.JID, err)
		}
		checkItems(t, "RosterItem("+w.JID+")", []storage.RosterItem{got}, []storage.RosterItem{w})
	}
	// Another user's roster is separate.
	if items, _ := mustRoster(t, s, rOther); len(items) != 0 {
		t.Errorf("other user's roster = %v", items)
	}
	if _, err := s.RosterItem(ctx, rOther, "carol@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RosterItem of another user: %v, want ErrNotFound", err)
	}
}

func testRosterReplace(t *testing.T, s storage.Roster) {
	mustSetItem(t, s, rUser, fullItem("carol@example.org"))
	repl := storage.RosterItem{JID: "carol@example.org", Name: "C", Subscription: storage.SubTo}
	mustSetItem(t, s, rUser, repl)
	items, _ := mustRoster(t, s, rUser)
	checkItems(t, "Roster after replace", items, []storage.RosterItem{repl})
}

func testRosterVersions(t *testing.T, s storage.Roster) {
	seen := map[string]string{}
	note := func(what, ver string) {
		t.Helper()
		if ver == "" {
			t.Fatalf("%s: empty version", what)
		}
		if prev, dup := seen[ver]; dup {
			t.Fatalf("%s: version %q repeats the one after %s", what, ver, prev)
		}
		seen[ver] = what
		if _, cur := mustRoster(t, s, rUser); cur != ver {
			t.Fatalf("%s: Roster version %q, method returned %q", what, cur, ver)
		}
	}
	note("first item", mustSetItem(t, s, rUser, storage.RosterItem{JID: "carol@example.org"}))
	note("second item", mustSetItem(t, s, rUser, storage.RosterItem{JID: "dave@example.org"}))
	note("same item again", mustSetItem(t, s, rUser, storage.RosterItem{JID: "dave@example.org"}))
	note("changed item", mustSetItem(t, s, rUser, storage.RosterItem{JID: "dave@example.org", Name: "D"}))
	note("delete", mustDeleteItem(t, s, rUser, "dave@example.org"))
	note("re-add", mustSetItem(t, s, rUser, storage.RosterItem{JID: "dave@example.org"}))
	note("delete last", mustDeleteItem(t, s, rUser, "carol@example.org"))
	// A failed delete changes nothing.
	_, before := mustRoster(t, s, rUser)
	if _, err := s.DeleteRosterItem(t.Context(), rUser, "nobody@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("DeleteRosterItem of a missing item: %v, want ErrNotFound", err)
	}
	if _, after := mustRoster(t, s, rUser); after != before {
		t.Errorf("failed delete changed the version %q → %q", before, after)
	}
	// Another user's writes leave this version alone.
	mustSetItem(t, s, rOther, storage.RosterItem{JID: "carol@example.org"})
	if _, after := mustRoster(t, s, rUser); after != before {
		t.Errorf("another user's write changed the version %q → %q", before, after)
	}
}

func testRosterChangesSince(t *testing.T, s storage.Roster) {
	carol := storage.RosterItem{JID: "carol@example.org", Name: "Carol"}
	dave := storage.RosterItem{JID: "dave@example.org", Groups: []string{"G"}}
	eve := storage.RosterItem{JID: "eve@example.org", Subscription: storage.SubBoth}

	v1 := mustSetItem(t, s, rUser, carol)
	checkChanges(t, s, rUser, v1, v1, nil)
	v2 := mustSetItem(t, s, rUser, dave)
	v3 := mustSetItem(t, s, rUser, eve)
	checkChanges(t, s, rUser, v1, v3, []storage.RosterItem{dave, eve})
	checkChanges(t, s, rUser, v2, v3, []storage.RosterItem{eve})

	// Changing carol moves her after eve; removing dave reports a removal.
	carol.Name = "Caroline"
	mustSetItem(t, s, rUser, carol)
	v5 := mustDeleteItem(t, s, rUser, dave.JID)
	checkChanges(t, s, rUser, v1, v5, []storage.RosterItem{eve, carol, removed(dave.JID)})
	checkChanges(t, s, rUser, v3, v5, []storage.RosterItem{carol, removed(dave.JID)})
	checkChanges(t, s, rUser, v5, v5, nil)

	// Re-adding dave replaces his removal; removing him again reports
	// one removal only.
	v6 := mustSetItem(t, s, rUser, dave)
	checkChanges(t, s, rUser, v1, v6, []storage.RosterItem{eve, carol, dave})
	checkChanges(t, s, rUser, v5, v6, []storage.RosterItem{dave})
	v7 := mustDeleteItem(t, s, rUser, dave.JID)
	checkChanges(t, s, rUser, v1, v7, []storage.RosterItem{eve, carol, removed(dave.JID)})
	checkChanges(t, s, rUser, v6, v7, []storage.RosterItem{removed(dave.JID)})

	// Applying the changes to the roster at a version gives the roster.
	items, cur := mustRoster(t, s, rUser)
	if cur != v7 {
		t.Fatalf("Roster version %q, want %q", cur, v7)
	}
	checkItems(t, "Roster", items, []storage.RosterItem{carol, eve})
}

func testRosterUnknownVersions(t *testing.T, s storage.Roster) {
	v1 := mustSetItem(t, s, rUser, storage.RosterItem{JID: "carol@example.org"})
	for _, ver := range []string{"", "garbage", "1", "0", v1 + "0", v1 + ".1", "-" + v1} {
		checkUnknown(t, s, rUser, ver)
	}
	// A version of another user's roster is not one of this user's.
	ov := mustSetItem(t, s, rOther, storage.RosterItem{JID: "carol@example.org"})
	if ov != v1 {
		checkUnknown(t, s, rUser, ov)
	}
	// Nor is a version of a deleted roster one of the next roster's.
	mustSetItem(t, s, rUser, storage.RosterItem{JID: "dave@example.org"})
	v3 := mustSetItem(t, s, rUser, storage.RosterItem{JID: "eve@example.org"})
	if err := s.DeleteRoster(t.Context(), rUser); err != nil {
		t.Fatal(err)
	}
	checkUnknown(t, s, rUser, v1)
	mustSetItem(t, s, rUser, storage.RosterItem{JID: "x@example.org"})
	mustSetItem(t, s, rUser, storage.RosterItem{JID: "y@example.org"})
	mustSetItem(t, s, rUser, storage.RosterItem{JID: "z@example.org"})
	if _, cur := mustRoster(t, s, rUser); cur == v3 {
		t.Logf("the new roster's version %q equals a version of the deleted one (chance 1 in 2^32)", cur)
	} else {
		checkUnknown(t, s, rUser, v1)
	}
}

func testRosterTombstoneBound(t *testing.T, s storage.Roster) {
	n := storage.MaxRosterTombstones + 10
	var vers []string
	for i := range n {
		mustSetItem(t, s, rUser, storage.RosterItem{JID: fmt.Sprintf("c%04d@example.org", i)})
	}
	_, afterAdds := mustRoster(t, s, rUser)
	for i := range n {
		vers = append(vers, mustDeleteItem(t, s, rUser, fmt.Sprintf("c%04d@example.org", i)))
	}
	cur := vers[len(vers)-1]
	// The latest MaxRosterTombstones removals are known: since the version
	// after removal k, exactly the later removals are reported.
	first := n - storage.MaxRosterTombstones
	for _, k := range []int{first, first + 1, n / 2, n - 2, n - 1} {
		var want []storage.RosterItem
		for i := k + 1; i < n; i++ {
			want = append(want, removed(fmt.Sprintf("c%04d@example.org", i)))
		}
		checkChanges(t, s, rUser, vers[k], cur, want)
	}
	// Versions before forgotten removals are unknown.
	checkUnknown(t, s, rUser, afterAdds)
	checkUnknown(t, s, rUser, vers[0])
}

func testRosterDelete(t *testing.T, s storage.Roster) {
	ctx := t.Context()
	mustSetItem(t, s, rUser, storage.RosterItem{JID: "carol@example.org"})
	mustSetItem(t, s, rUser, storage.RosterItem{JID: "dave@example.org"})
	mustSetItem(t, s, rOther, storage.RosterItem{JID: "carol@example.org"})
	mustDeleteItem(t, s, rUser, "carol@example.org")
	if _, err := s.RosterItem(ctx, rUser, "carol@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RosterItem after delete: %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteRosterItem(ctx, rUser, "carol@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second DeleteRosterItem: %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteRosterItem(ctx, "nobody@example.org", "carol@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeleteRosterItem of an unknown user: %v, want ErrNotFound", err)
	}
	items, _ := mustRoster(t, s, rUser)
	checkItems(t, "Roster", items, []storage.RosterItem{{JID: "dave@example.org"}})
	items, _ = mustRoster(t, s, rOther)
	checkItems(t, "other Roster", items, []storage.RosterItem{{JID: "carol@example.org"}})
}

func testRosterDeleteRoster(t *testing.T, s storage.Roster) {
	ctx := t.Context()
	mustSetItem(t, s, rUser, fullItem("carol@example.org"))
	mustSetItem(t, s, rUser, storage.RosterItem{JID: "dave@example.org"})
	mustDeleteItem(t, s, rUser, "dave@example.org")
	mustSetItem(t, s, rOther, fullItem("carol@example.org"))
	_, otherVer := mustRoster(t, s, rOther)

	if err := s.DeleteRoster(ctx, rUser); err != nil {
		t.Fatalf("DeleteRoster: %v", err)
	}
	if items, ver := mustRoster(t, s, rUser); len(items) != 0 || ver != "" {
		t.Errorf("Roster after DeleteRoster = %v, %q", items, ver)
	}
	if _, err := s.RosterItem(ctx, rUser, "carol@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RosterItem after DeleteRoster: %v", err)
	}
	if err := s.DeleteRoster(ctx, rUser); err != nil {
		t.Errorf("second DeleteRoster: %v", err)
	}
	items, ver := mustRoster(t, s, rOther)
	checkItems(t, "other Roster", items, []storage.RosterItem{fullItem("carol@example.org")})
	if ver != otherVer {
		t.Errorf("other version %q, want %q", ver, otherVer)
	}
	// A new roster starts afresh, with no removals from the old one.
	v := mustSetItem(t, s, rUser, storage.RosterItem{JID: "x@example.org"})
	items, _ = mustRoster(t, s, rUser)
	checkItems(t, "new Roster", items, []storage.RosterItem{{JID: "x@example.org"}})
	checkChanges(t, s, rUser, v, v, nil)
}

func testRosterInvalid(t *testing.T, s storage.Roster) {
	ctx := t.Context()
	for _, tt := range []struct {
		user string
		item storage.RosterItem
	}{
		{"", storage.RosterItem{JID: "carol@example.org"}},
		{rUser, storage.RosterItem{}},
		{rUser, storage.RosterItem{JID: "carol@example.org", Subscription: storage.SubRemove}},
		{rUser, storage.RosterItem{JID: "carol@example.org", Subscription: "both "}},
	} {
		if _, err := s.SetRosterItem(ctx, tt.user, tt.item); !errors.Is(err, storage.ErrInvalidItem) {
			t.Errorf("SetRosterItem(%q, %+v): %v, want ErrInvalidItem", tt.user, tt.item, err)
		}
	}
	if items, ver := mustRoster(t, s, rUser); len(items) != 0 || ver != "" {
		t.Errorf("invalid writes left %v, %q", items, ver)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.SetRosterItem(cancelled, rUser, storage.RosterItem{JID: "carol@example.org"}); err == nil {
		t.Error("SetRosterItem with a cancelled context succeeded")
	}
	if _, _, err := s.Roster(cancelled, rUser); err == nil {
		t.Error("Roster with a cancelled context succeeded")
	}
}

func testRosterCopies(t *testing.T, s storage.Roster) {
	ctx := t.Context()
	v0 := mustSetItem(t, s, rUser, storage.RosterItem{JID: "dave@example.org"})
	it := fullItem("carol@example.org")
	mustSetItem(t, s, rUser, it)
	it.Groups[0] = "changed by caller"
	want := []storage.RosterItem{fullItem("carol@example.org"), {JID: "dave@example.org"}}

	got, err := s.RosterItem(ctx, rUser, "carol@example.org")
	if err != nil {
		t.Fatal(err)
	}
	checkItems(t, "RosterItem after the caller changed its input", []storage.RosterItem{got}, want[:1])
	got.Groups[0] = "changed by caller"
	items, _ := mustRoster(t, s, rUser)
	items[0].Groups[1] = "changed by caller"
	changes, _, ok, err := s.RosterChangesSince(ctx, rUser, v0)
	if err != nil || !ok || len(changes) != 1 {
		t.Fatalf("RosterChangesSince = %v, %v, %v", changes, ok, err)
	}
	changes[0].Item.Groups[2] = "changed by caller"
	items, _ = mustRoster(t, s, rUser)
	checkItems(t, "Roster after the caller changed outputs", items, want)
}

func testRosterConcurrent(t *testing.T, s storage.Roster) {
	ctx := t.Context()
	const (
		workers = 8
		rounds  = 20
	)
	var wg sync.WaitGroup
	vers := make([][]string, workers)
	for w := range workers {
		wg.Go(func() {
			mine := fmt.Sprintf("w%d@example.org", w)
			for r := range rounds {
				v, err := s.SetRosterItem(ctx, rUser, storage.RosterItem{JID: mine, Name: fmt.Sprint(r)})
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				vers[w] = append(vers[w], v)
				if _, err := s.SetRosterItem(ctx, fmt.Sprintf("own%d@example.org", w), storage.RosterItem{JID: mine}); err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				if _, _, err := s.Roster(ctx, rUser); err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				if _, _, _, err := s.RosterChangesSince(ctx, rUser, v); err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				if r%2 == 1 {
					if _, err := s.DeleteRosterItem(ctx, rUser, mine); err != nil {
						t.Errorf("worker %d: %v", w, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	// Every write got its own version.
	var all []string
	for _, v := range vers {
		all = append(all, v...)
	}
	slices.Sort(all)
	if len(slices.Compact(all)) != workers*rounds {
		t.Errorf("%d distinct versions for %d writes", len(all), workers*rounds)
	}
	items, _ := mustRoster(t, s, rUser)
	if len(items) != 0 {
		t.Errorf("roster after concurrent set/delete pairs = %v", items)
	}
	for w := range workers {
		items, _ := mustRoster(t, s, fmt.Sprintf("own%d@example.org", w))
		checkItems(t, "own roster", items, []storage.RosterItem{{JID: fmt.Sprintf("w%d@example.org", w)}})
	}
}

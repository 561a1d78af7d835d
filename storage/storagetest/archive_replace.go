package storagetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kiez-im/kiez/storage"
)

// TestArchiveReplacer checks an ArchiveReplacer: a message replaced by ID
// keeps its ID, party and place, its neighbours and the stats are
// untouched, and a missing message is ErrNotFound.
func TestArchiveReplacer(t *testing.T, newStore func(t *testing.T) storage.ArchiveReplacer) {
	ctx := context.Background()
	s := newStore(t)
	a, ok := s.(storage.Archive)
	if !ok {
		t.Skipf("%T replaces but is no Archive", s)
	}
	// Enough messages to span several chunks of a chunked backend.
	msgs := fill(t, a, aUser, 150, "bob@example.org/phone", "carol@example.org")
	other := fill(t, a, aOther, 3)
	before, err := a.ArchiveStats(ctx, aUser)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 70, 149} {
		data := []byte(fmt.Sprintf("<message><retracted n='%d'/></message>", i))
		if err := s.ReplaceArchived(ctx, aUser, msgs[i].ID, data); err != nil {
			t.Fatalf("replace %d: %v", i, err)
		}
		data[1] = 'X' // the store keeps a copy
		msgs[i].Data = []byte(fmt.Sprintf("<message><retracted n='%d'/></message>", i))
	}
	checkPage(t, a, aUser, storage.ArchiveQuery{Max: 200}, msgs, true)
	checkPage(t, a, aUser, storage.ArchiveQuery{With: "bob@example.org", Max: 200}, pick(msgs, func(m storage.ArchivedMessage) bool {
		return m.With == "bob@example.org/phone"
	}), true)
	checkPage(t, a, aOther, storage.ArchiveQuery{Max: 10}, other, true)
	after, err := a.ArchiveStats(ctx, aUser)
	if err != nil {
		t.Fatal(err)
	}
	if after.Count != before.Count || after.First.ID != before.First.ID || after.Last.ID != before.Last.ID {
		t.Fatalf("stats %+v after replacing, %+v before", after, before)
	}
	for _, c := range []struct {
		user string
		id   uint64
	}{
		{aUser, msgs[0].ID - 1},
		{aUser, msgs[149].ID + 1},
		{aUser, msgs[70].ID + 1_000_000_000_000},
		{"nobody@example.org", msgs[0].ID},
	} {
		if err := s.ReplaceArchived(ctx, c.user, c.id, []byte("<message/>")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("replace %d of %s: %v, want ErrNotFound", c.id, c.user, err)
		}
	}
	// An expired message is gone for good.
	if _, err := a.ExpireUserArchive(ctx, aUser, storage.IDTime(msgs[10].ID), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceArchived(ctx, aUser, msgs[5].ID, []byte("<message/>")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("replace an expired message: %v, want ErrNotFound", err)
	}
}

package bbolt

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

// TestArchiveChunksAgainstModel builds an archive of many chunks of all
// sizes (rounds of 1 to 200 messages, so that chunks are merged, filled
// and split), then compares random queries, stats and partial expiry
// with a plain list of the messages.
func TestArchiveChunksAgainstModel(t *testing.T) {
	ctx := t.Context()
	s := openInternal(t)
	rng := rand.New(rand.NewPCG(1, 2))
	const user, other = "a@example.org", "b@example.org"
	parties := []string{"p@example.org", "p@example.org/r1", "p@example.org/r2", "q@example.org/r", "rare@example.org/x"}
	var model []storage.ArchivedMessage
	id := uint64(1_700_000_000_000_000)
	for range 80 {
		var entries []walEntry
		for range 1 + rng.IntN(200) {
			id += 1 + uint64(rng.IntN(3))
			with := parties[rng.IntN(len(parties)-1)]
			if rng.IntN(50) == 0 {
				with = parties[len(parties)-1]
			}
			data := fmt.Appendf(nil, "<m n='%d'/>", id)
			entries = append(entries, walEntry{kind: walAppend, user: user, id: id, with: with, rec: encodeArchiveMsg(with, data)})
			model = append(model, storage.ArchivedMessage{ID: id, With: with, Data: data})
			if rng.IntN(4) == 0 {
				entries = append(entries, walEntry{kind: walAppend, user: other, id: id, with: with, rec: encodeArchiveMsg(with, data)})
			}
		}
		// A replay of part of the round changes nothing.
		if err := s.db.Update(func(tx *bolt.Tx) error { return applyWAL(tx, entries) }); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Update(func(tx *bolt.Tx) error { return applyWAL(tx, entries[len(entries)/2:]) }); err != nil {
			t.Fatal(err)
		}
	}
	withs := append(slices.Clone(parties), "q@example.org", "none@example.org", "")
	check := func(round int) {
		t.Helper()
		st, err := s.ArchiveStats(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if st.Count != len(model) || (len(model) > 0 && (st.First.ID != model[0].ID || st.First.With != model[0].With || st.Last.ID != model[len(model)-1].ID || st.Last.With != model[len(model)-1].With)) {
			t.Fatalf("round %d: stats %+v, model has %d messages", round, st, len(model))
		}
		pick := func() uint64 {
			if len(model) == 0 || rng.IntN(5) == 0 {
				return uint64(rng.IntN(3)) * (id / 2)
			}
			return model[rng.IntN(len(model))].ID + uint64(rng.IntN(3)) - 1
		}
		for range 300 {
			q := storage.ArchiveQuery{With: withs[rng.IntN(len(withs))], Max: 1 + rng.IntN(120), Reverse: rng.IntN(2) == 0}
			if rng.IntN(2) == 0 {
				q.After = pick()
			}
			if rng.IntN(2) == 0 {
				q.Before = pick()
			}
			if rng.IntN(5) == 0 {
				for range 1 + rng.IntN(30) {
					q.IDs = append(q.IDs, pick())
				}
			}
			got, err := s.QueryArchive(ctx, user, q)
			if err != nil {
				t.Fatal(err)
			}
			want := modelQuery(model, q)
			if !samePage(got, want) {
				t.Fatalf("round %d: query %+v:\ngot  %d messages, complete %v\nwant %d messages, complete %v", round, q, len(got.Messages), got.Complete, len(want.Messages), want.Complete)
			}
		}
	}
	check(0)
	for round := 1; len(model) > 0; round++ {
		cut := model[min(len(model)-1, rng.IntN(150))].ID + uint64(rng.IntN(2))
		limit := 1 + rng.IntN(100)
		var n int
		err := s.db.Update(func(tx *bolt.Tx) (err error) {
			n, err = deleteArchiveFront(userBucket(tx, archiveBucket, user), limit, cut)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for want < len(model) && want < limit && model[want].ID < cut {
			want++
		}
		if n != want {
			t.Fatalf("round %d: deleteArchiveFront(%d, %d) = %d, want %d", round, limit, cut, n, want)
		}
		model = model[n:]
		check(round)
	}
	// Nothing of the expired messages is left in the index.
	err := s.db.View(func(tx *bolt.Tx) error {
		ub := userBucket(tx, archiveBucket, user)
		return ub.Bucket([]byte(archiveWith)).ForEach(func(k, _ []byte) error {
			return fmt.Errorf("index entry %q left", k)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	// "archive-chunks" holds exactly the chunks of the other archive, and
	// nothing once it is deleted.
	countChunks := func() (refs, chunks int) {
		t.Helper()
		err := s.db.View(func(tx *bolt.Tx) error {
			if ub := userBucket(tx, archiveBucket, other); ub != nil {
				refs = ub.Bucket([]byte(archiveMsgs)).Stats().KeyN
			}
			chunks = tx.Bucket([]byte(archiveChunks)).Stats().KeyN
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return refs, chunks
	}
	if refs, chunks := countChunks(); refs == 0 || refs != chunks {
		t.Fatalf("%d chunks of %s, %d in %s", refs, other, chunks, archiveChunks)
	}
	if err := s.DeleteArchive(ctx, other); err != nil {
		t.Fatal(err)
	}
	if refs, chunks := countChunks(); refs != 0 || chunks != 0 {
		t.Fatalf("after DeleteArchive: %d chunks of %s, %d in %s", refs, other, chunks, archiveChunks)
	}
}

// modelQuery answers q on the messages ms, in ID order, as the contract
// says.
func modelQuery(ms []storage.ArchivedMessage, q storage.ArchiveQuery) storage.ArchivePage {
	var match []storage.ArchivedMessage
	for _, m := range ms {
		if q.After != 0 && m.ID <= q.After || q.Before != 0 && m.ID >= q.Before {
			continue
		}
		if q.With != "" && !matchWithBytes([]byte(m.With), q.With) {
			continue
		}
		if len(q.IDs) > 0 && !slices.Contains(q.IDs, m.ID) {
			continue
		}
		match = append(match, m)
	}
	page := storage.ArchivePage{Complete: len(match) <= q.Max}
	if q.Reverse {
		match = match[max(0, len(match)-q.Max):]
	} else {
		match = match[:min(len(match), q.Max)]
	}
	page.Messages = match
	return page
}

func samePage(a, b storage.ArchivePage) bool {
	if a.Complete != b.Complete || len(a.Messages) != len(b.Messages) {
		return false
	}
	for i := range a.Messages {
		x, y := a.Messages[i], b.Messages[i]
		if x.ID != y.ID || x.With != y.With || !bytes.Equal(x.Data, y.Data) {
			return false
		}
	}
	return true
}

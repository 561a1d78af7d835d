package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// TestArchive checks an implementation of storage.Archive. newStore must
// return a fresh, empty store each time it is called; it may use t to
// register cleanup. Every subtest gets its own store.
func TestArchive(t *testing.T, newStore func(t *testing.T) storage.Archive) {
	tests := []struct {
		name string
		test func(t *testing.T, s storage.Archive)
	}{
		{"Empty", testArchiveEmpty},
		{"IDs", testArchiveIDs},
		{"With", testArchiveWith},
		{"Bounds", testArchiveBounds},
		{"IDFilter", testArchiveIDFilter},
		{"MaxComplete", testArchiveMaxComplete},
		{"Paging", testArchivePaging},
		{"Stats", testArchiveStats},
		{"Expire", testArchiveExpire},
		{"ExpireUser", testArchiveExpireUser},
		{"ExpireLimit", testArchiveExpireLimit},
		{"Delete", testArchiveDelete},
		{"Isolated", testArchiveIsolated},
		{"Copies", testArchiveCopies},
		{"Invalid", testArchiveInvalid},
		{"Concurrent", testArchiveConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, newStore(t))
		})
	}
}

const (
	aUser  = "alice@example.org"
	aOther = "bob@example.org"
)

// archiveBase is the time the archive tests archive messages at.
var archiveBase = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func mustAppend(t *testing.T, s storage.Archive, user string, at time.Time, with string, data []byte) storage.ArchivedMessage {
	t.Helper()
	id, err := s.AppendArchive(t.Context(), user, at, with, data)
	if err != nil {
		t.Fatalf("AppendArchive(%q): %v", user, err)
	}
	return storage.ArchivedMessage{ID: id, With: with, Data: bytes.Clone(data)}
}

// fill archives n messages for user, one a second from archiveBase, with
// the parties withs in turn, and returns them.
func fill(t *testing.T, s storage.Archive, user string, n int, withs ...string) []storage.ArchivedMessage {
	t.Helper()
	if len(withs) == 0 {
		withs = []string{aOther}
	}
	msgs := make([]storage.ArchivedMessage, n)
	for i := range n {
		msgs[i] = mustAppend(t, s, user, archiveBase.Add(time.Duration(i)*time.Second), withs[i%len(withs)],
			fmt.Appendf(nil, "<message id='%s-%d'/>", user, i))
	}
	return msgs
}

func mustQuery(t *testing.T, s storage.Archive, user string, q storage.ArchiveQuery) storage.ArchivePage {
	t.Helper()
	p, err := s.QueryArchive(t.Context(), user, q)
	if err != nil {
		t.Fatalf("QueryArchive(%q, %+v): %v", user, q, err)
	}
	for i := 1; i < len(p.Messages); i++ {
		if p.Messages[i].ID <= p.Messages[i-1].ID {
			t.Fatalf("QueryArchive(%q, %+v): ID %d after %d", user, q, p.Messages[i].ID, p.Messages[i-1].ID)
		}
	}
	return p
}

// checkPage fails unless the query returns exactly want and complete.
func checkPage(t *testing.T, s storage.Archive, user string, q storage.ArchiveQuery, want []storage.ArchivedMessage, complete bool) {
	t.Helper()
	p := mustQuery(t, s, user, q)
	if !sameArchived(p.Messages, want) {
		t.Errorf("QueryArchive(%q, %+v) =\n\t%s\nwant\n\t%s", user, q, describe(p.Messages), describe(want))
	}
	if p.Complete != complete {
		t.Errorf("QueryArchive(%q, %+v).Complete = %v, want %v", user, q, p.Complete, complete)
	}
}

func sameArchived(got, want []storage.ArchivedMessage) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].ID != want[i].ID || got[i].With != want[i].With || !bytes.Equal(got[i].Data, want[i].Data) {
			return false
		}
	}
	return true
}

func describe(msgs []storage.ArchivedMessage) string {
	if len(msgs) > 12 {
		return fmt.Sprintf("%d messages: %s ... %s", len(msgs), describe(msgs[:3]), describe(msgs[len(msgs)-3:]))
	}
	s := "["
	for i, m := range msgs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%d:%s:%s", m.ID, m.With, abbrev(m.Data))
	}
	return s + "]"
}

// pick returns the messages of msgs that keep says to keep.
func pick(msgs []storage.ArchivedMessage, keep func(m storage.ArchivedMessage) bool) []storage.ArchivedMessage {
	var out []storage.ArchivedMessage
	for _, m := range msgs {
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

func testArchiveEmpty(t *testing.T, s storage.Archive) {
	ctx := t.Context()
	for _, q := range []storage.ArchiveQuery{
		{Max: 10},
		{Max: 10, Reverse: true},
		{Max: 1, With: aOther, After: 5, Before: 100},
		{Max: 1, IDs: []uint64{1, 2}},
	} {
		checkPage(t, s, aUser, q, nil, true)
	}
	st, err := s.ArchiveStats(ctx, aUser)
	if err != nil || !sameStats(st, storage.ArchiveStats{}) {
		t.Errorf("ArchiveStats of an empty archive = %+v, %v; want zero", st, err)
	}
	if n, err := s.ExpireArchive(ctx, archiveBase, 0); n != 0 || err != nil {
		t.Errorf("ExpireArchive of an empty store = %d, %v; want 0", n, err)
	}
	if err := s.DeleteArchive(ctx, aUser); err != nil {
		t.Errorf("DeleteArchive of an empty archive: %v", err)
	}
}

func testArchiveIDs(t *testing.T, s storage.Archive) {
	ats := []time.Time{
		archiveBase,
		archiveBase,                   // same time
		archiveBase.Add(-time.Second), // earlier
		archiveBase.Add(time.Microsecond),
		archiveBase.Add(time.Second + 1500*time.Nanosecond), // sub-µs part dropped
		archiveBase.Add(time.Hour),
		archiveBase.Add(time.Hour - time.Minute),
		archiveBase.In(time.FixedZone("UTC-3", -3*3600)).Add(2 * time.Hour),
	}
	var msgs []storage.ArchivedMessage
	for i, at := range ats {
		msgs = append(msgs, mustAppend(t, s, aUser, at, aOther, fmt.Appendf(nil, "%d", i)))
	}
	last := uint64(0)
	for i, m := range msgs {
		if m.ID <= last {
			t.Errorf("message %d (at %v): ID %d, not above %d", i, ats[i], m.ID, last)
		}
		last = m.ID
		// An ID is the time in µs, raised by as little as needed.
		want := storage.TimeID(ats[i])
		if i > 0 {
			want = max(want, msgs[i-1].ID+1)
		}
		if m.ID != want {
			t.Errorf("message %d (at %v): ID %d, want %d", i, ats[i], m.ID, want)
		}
	}
	if got := msgs[0].Time(); !got.Equal(archiveBase) || got.Location() != time.UTC {
		t.Errorf("Time() = %v, want %v in UTC", got, archiveBase)
	}
	if got, want := msgs[4].Time(), archiveBase.Add(time.Second+time.Microsecond); !got.Equal(want) {
		t.Errorf("Time() = %v, want %v", got, want)
	}
	if got := storage.IDTime(storage.TimeID(archiveBase)); !got.Equal(archiveBase) {
		t.Errorf("IDTime(TimeID(%v)) = %v", archiveBase, got)
	}
	if id := storage.TimeID(time.Unix(-5, 0)); id != 0 {
		t.Errorf("TimeID before the epoch = %d, want 0", id)
	}
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 100}, msgs, true)

	// Another archive's IDs are its own.
	m := mustAppend(t, s, aOther, archiveBase, aUser, []byte("x"))
	if m.ID != storage.TimeID(archiveBase) {
		t.Errorf("first ID of another archive = %d, want %d", m.ID, storage.TimeID(archiveBase))
	}
	// A time before the epoch still gets an ID above 0.
	m = mustAppend(t, s, "carol@example.org", time.Unix(-100, 0), aUser, []byte("x"))
	if m.ID == 0 {
		t.Error("a time before the epoch got the ID 0")
	}
}

func testArchiveWith(t *testing.T, s storage.Archive) {
	withs := []string{
		"bob@example.org/phone",
		"bob@example.org",
		"carol@example.org",
		"bob@example.org/laptop",
		"bob@example.org.evil",
		"bob@example.org.evil/phone",
		"bo@example.org",
		"example.org",
		"example.org/res",
		"bob@example.org/phone/with/slashes",
		"notbob@example.org",
	}
	msgs := fill(t, s, aUser, 3*len(withs), withs...)
	for _, tt := range []struct {
		with string
		keep func(w string) bool
	}{
		{"bob@example.org", func(w string) bool {
			return w == "bob@example.org" || w == "bob@example.org/phone" || w == "bob@example.org/laptop" || w == "bob@example.org/phone/with/slashes"
		}},
		{"bob@example.org/phone", func(w string) bool { return w == "bob@example.org/phone" }},
		{"bob@example.org/phone/with/slashes", func(w string) bool { return w == "bob@example.org/phone/with/slashes" }},
		{"bob@example.org.evil", func(w string) bool { return w == "bob@example.org.evil" || w == "bob@example.org.evil/phone" }},
		{"example.org", func(w string) bool { return w == "example.org" || w == "example.org/res" }},
		{"example.org/res", func(w string) bool { return w == "example.org/res" }},
		{"carol@example.org", func(w string) bool { return w == "carol@example.org" }},
		{"bob@example.org/tablet", func(string) bool { return false }},
		{"bob", func(string) bool { return false }},
		{"dave@example.org", func(string) bool { return false }},
	} {
		want := pick(msgs, func(m storage.ArchivedMessage) bool { return tt.keep(m.With) })
		checkPage(t, s, aUser, storage.ArchiveQuery{With: tt.with, Max: 1000}, want, true)
		checkPage(t, s, aUser, storage.ArchiveQuery{With: tt.with, Max: 1000, Reverse: true}, want, true)
		if len(want) > 2 {
			checkPage(t, s, aUser, storage.ArchiveQuery{With: tt.with, Max: 2}, want[:2], false)
			checkPage(t, s, aUser, storage.ArchiveQuery{With: tt.with, Max: 2, Reverse: true}, want[len(want)-2:], false)
			// With bounds.
			lo, hi := want[0].ID, want[len(want)-1].ID
			checkPage(t, s, aUser, storage.ArchiveQuery{With: tt.with, Max: 1000, After: lo, Before: hi}, want[1:len(want)-1], true)
		}
	}
}

func testArchiveBounds(t *testing.T, s storage.Archive) {
	msgs := fill(t, s, aUser, 20)
	id := func(i int) uint64 { return msgs[i].ID }
	for _, tt := range []struct {
		after, before uint64
		want          []storage.ArchivedMessage
	}{
		{0, 0, msgs},
		{id(4), 0, msgs[5:]},
		{0, id(4), msgs[:4]},
		{id(4), id(10), msgs[5:10]},
		{id(4), id(5), nil},
		{id(4), id(4), nil},
		{id(10), id(4), nil},
		{id(4) + 1, id(10) - 1, msgs[5:10]}, // IDs between messages
		{id(4) - 1, id(10) + 1, msgs[4:11]},
		{id(19), 0, nil},
		{0, id(0), nil},
		{1, id(19) + 1, msgs},
		{^uint64(0), 0, nil},
		{0, ^uint64(0), msgs},
	} {
		for _, rev := range []bool{false, true} {
			checkPage(t, s, aUser, storage.ArchiveQuery{After: tt.after, Before: tt.before, Max: 100, Reverse: rev}, tt.want, true)
		}
	}
	// Bounds by time.
	q := storage.ArchiveQuery{
		After:  storage.TimeID(archiveBase.Add(3*time.Second)) - 1, // from second 3
		Before: storage.TimeID(archiveBase.Add(7 * time.Second)),   // before second 7
		Max:    100,
	}
	checkPage(t, s, aUser, q, msgs[3:7], true)
}

func testArchiveIDFilter(t *testing.T, s storage.Archive) {
	msgs := fill(t, s, aUser, 20, "bob@example.org/a", "carol@example.org")
	other := fill(t, s, aOther, 20)
	ids := []uint64{msgs[7].ID, msgs[2].ID, msgs[2].ID, msgs[15].ID, msgs[8].ID, msgs[0].ID + 1, 1, other[3].ID + 5000}
	byID := func(is ...int) []storage.ArchivedMessage {
		var out []storage.ArchivedMessage
		for _, i := range is {
			out = append(out, msgs[i])
		}
		return out
	}
	checkPage(t, s, aUser, storage.ArchiveQuery{IDs: ids, Max: 100}, byID(2, 7, 8, 15), true)
	checkPage(t, s, aUser, storage.ArchiveQuery{IDs: ids, Max: 100, Reverse: true}, byID(2, 7, 8, 15), true)
	checkPage(t, s, aUser, storage.ArchiveQuery{IDs: ids, Max: 2}, byID(2, 7), false)
	checkPage(t, s, aUser, storage.ArchiveQuery{IDs: ids, Max: 2, Reverse: true}, byID(8, 15), false)
	checkPage(t, s, aUser, storage.ArchiveQuery{IDs: ids, Max: 4}, byID(2, 7, 8, 15), true)
	checkPage(t, s, aUser, storage.ArchiveQuery{IDs: ids, Max: 100, With: "bob@example.org"}, byID(2, 8), true)
	checkPage(t, s, aUser, storage.ArchiveQuery{IDs: ids, Max: 100, With: "carol@example.org"}, byID(7, 15), true)
	checkPage(t, s, aUser, storage.ArchiveQuery{IDs: ids, Max: 100, After: msgs[2].ID, Before: msgs[15].ID}, byID(7, 8), true)
	checkPage(t, s, aUser, storage.ArchiveQuery{IDs: ids, Max: 1, After: msgs[2].ID, Before: msgs[15].ID}, byID(7), false)
	checkPage(t, s, aUser, storage.ArchiveQuery{IDs: []uint64{1, 2, 3}, Max: 100}, nil, true)
	// Another user's IDs are not found in this archive.
	checkPage(t, s, aOther, storage.ArchiveQuery{IDs: []uint64{msgs[1].ID + 1}, Max: 100}, nil, true)
}

func testArchiveMaxComplete(t *testing.T, s storage.Archive) {
	msgs := fill(t, s, aUser, 10, "bob@example.org", "carol@example.org")
	bob := pick(msgs, func(m storage.ArchivedMessage) bool { return m.With == "bob@example.org" }) // 0 2 4 6 8
	for _, tt := range []struct {
		q        storage.ArchiveQuery
		want     []storage.ArchivedMessage
		complete bool
	}{
		{storage.ArchiveQuery{Max: 3}, msgs[:3], false},
		{storage.ArchiveQuery{Max: 9}, msgs[:9], false},
		{storage.ArchiveQuery{Max: 10}, msgs, true},
		{storage.ArchiveQuery{Max: 11}, msgs, true},
		{storage.ArchiveQuery{Max: 1}, msgs[:1], false},
		{storage.ArchiveQuery{Max: 3, Reverse: true}, msgs[7:], false},
		{storage.ArchiveQuery{Max: 9, Reverse: true}, msgs[1:], false},
		{storage.ArchiveQuery{Max: 10, Reverse: true}, msgs, true},
		{storage.ArchiveQuery{Max: 1, Reverse: true}, msgs[9:], false},
		// Exactly at the boundary of a range.
		{storage.ArchiveQuery{Max: 3, After: msgs[6].ID}, msgs[7:], true},
		{storage.ArchiveQuery{Max: 2, After: msgs[6].ID}, msgs[7:9], false},
		{storage.ArchiveQuery{Max: 3, Before: msgs[3].ID, Reverse: true}, msgs[:3], true},
		{storage.ArchiveQuery{Max: 2, Before: msgs[3].ID, Reverse: true}, msgs[1:3], false},
		{storage.ArchiveQuery{Max: 2, After: msgs[2].ID, Before: msgs[5].ID}, msgs[3:5], true},
		{storage.ArchiveQuery{Max: 2, After: msgs[2].ID, Before: msgs[5].ID, Reverse: true}, msgs[3:5], true},
		// The direction decides which side counts: later messages do not
		// make a Reverse query incomplete.
		{storage.ArchiveQuery{Max: 3, Before: msgs[3].ID, Reverse: false}, msgs[:3], true},
		{storage.ArchiveQuery{Max: 3, After: msgs[6].ID, Reverse: true}, msgs[7:], true},
		{storage.ArchiveQuery{Max: 2, After: msgs[0].ID, Before: msgs[3].ID, Reverse: false}, msgs[1:3], true},
		// Filtered: non-matching messages after the last match do not
		// count.
		{storage.ArchiveQuery{Max: 5, With: "bob@example.org"}, bob, true},
		{storage.ArchiveQuery{Max: 4, With: "bob@example.org"}, bob[:4], false},
		{storage.ArchiveQuery{Max: 5, With: "bob@example.org", Reverse: true}, bob, true},
		{storage.ArchiveQuery{Max: 4, With: "bob@example.org", Reverse: true}, bob[1:], false},
		{storage.ArchiveQuery{Max: 1, With: "bob@example.org", After: bob[3].ID}, bob[4:], true},
		{storage.ArchiveQuery{Max: 1, With: "bob@example.org", Before: bob[1].ID, Reverse: true}, bob[:1], true},
	} {
		checkPage(t, s, aUser, tt.q, tt.want, tt.complete)
	}
}

func testArchivePaging(t *testing.T, s storage.Archive) {
	const n = 250
	msgs := fill(t, s, aUser, n, "bob@example.org/a", "carol@example.org", "bob@example.org/b")
	fill(t, s, aOther, 30)
	bob := pick(msgs, func(m storage.ArchivedMessage) bool { return m.With != "carol@example.org" })
	for _, tt := range []struct {
		with string
		want []storage.ArchivedMessage
	}{
		{"", msgs},
		{"bob@example.org", bob},
	} {
		for _, max := range []int{1, 7, 50, 250} {
			// Forward: each page starts after the last one's end.
			var got []storage.ArchivedMessage
			q := storage.ArchiveQuery{With: tt.with, Max: max}
			for pages := 0; ; pages++ {
				if pages > n+1 {
					t.Fatalf("forward paging with Max %d does not end", max)
				}
				p := mustQuery(t, s, aUser, q)
				got = append(got, p.Messages...)
				if p.Complete {
					break
				}
				if len(p.Messages) == 0 {
					t.Fatalf("forward paging with Max %d: an empty page that is not complete", max)
				}
				q.After = p.Messages[len(p.Messages)-1].ID
			}
			if !sameArchived(got, tt.want) {
				t.Errorf("forward paging with %q, Max %d = %s, want %s", tt.with, max, describe(got), describe(tt.want))
			}

			// Backward: each page ends before the last one's start.
			var pages [][]storage.ArchivedMessage
			q = storage.ArchiveQuery{With: tt.with, Max: max, Reverse: true}
			for {
				if len(pages) > n+1 {
					t.Fatalf("backward paging with Max %d does not end", max)
				}
				p := mustQuery(t, s, aUser, q)
				pages = append(pages, p.Messages)
				if p.Complete {
					break
				}
				if len(p.Messages) == 0 {
					t.Fatalf("backward paging with Max %d: an empty page that is not complete", max)
				}
				q.Before = p.Messages[0].ID
			}
			got = nil
			for i := len(pages) - 1; i >= 0; i-- {
				got = append(got, pages[i]...)
			}
			if !sameArchived(got, tt.want) {
				t.Errorf("backward paging with %q, Max %d = %s, want %s", tt.with, max, describe(got), describe(tt.want))
			}
		}
	}
}

func testArchiveStats(t *testing.T, s storage.Archive) {
	ctx := t.Context()
	msgs := fill(t, s, aUser, 30, "bob@example.org/x", "carol@example.org")
	fill(t, s, aOther, 5)
	st, err := s.ArchiveStats(ctx, aUser)
	if err != nil {
		t.Fatalf("ArchiveStats: %v", err)
	}
	want := storage.ArchiveStats{
		Count: 30,
		First: storage.ArchivedMessage{ID: msgs[0].ID, With: msgs[0].With},
		Last:  storage.ArchivedMessage{ID: msgs[29].ID, With: msgs[29].With},
	}
	if !sameStats(st, want) {
		t.Errorf("ArchiveStats = %+v, want %+v", st, want)
	}
	if !st.First.Time().Equal(archiveBase) || !st.Last.Time().Equal(archiveBase.Add(29*time.Second)) {
		t.Errorf("ArchiveStats times: first %v, last %v", st.First.Time(), st.Last.Time())
	}
	// Expiring the first ten changes the count and the first message.
	if _, err := s.ExpireArchive(ctx, archiveBase.Add(10*time.Second), 0); err != nil {
		t.Fatal(err)
	}
	st, err = s.ArchiveStats(ctx, aUser)
	want.Count, want.First = 20, storage.ArchivedMessage{ID: msgs[10].ID, With: msgs[10].With}
	if err != nil || !sameStats(st, want) {
		t.Errorf("ArchiveStats after expiry = %+v, %v; want %+v", st, err, want)
	}
	m := mustAppend(t, s, aUser, archiveBase.Add(time.Minute), "dave@example.org", []byte("d"))
	st, err = s.ArchiveStats(ctx, aUser)
	want.Count, want.Last = 21, storage.ArchivedMessage{ID: m.ID, With: m.With}
	if err != nil || !sameStats(st, want) {
		t.Errorf("ArchiveStats after append = %+v, %v; want %+v", st, err, want)
	}
	// One message is both first and last.
	one := mustAppend(t, s, "carol@example.org", archiveBase, aUser, []byte("c"))
	st, err = s.ArchiveStats(ctx, "carol@example.org")
	want = storage.ArchiveStats{Count: 1, First: storage.ArchivedMessage{ID: one.ID, With: aUser}, Last: storage.ArchivedMessage{ID: one.ID, With: aUser}}
	if err != nil || !sameStats(st, want) {
		t.Errorf("ArchiveStats of one message = %+v, %v; want %+v", st, err, want)
	}
	st, err = s.ArchiveStats(ctx, "dave@example.org")
	if err != nil || !sameStats(st, storage.ArchiveStats{}) {
		t.Errorf("ArchiveStats of an empty archive = %+v, %v; want zero", st, err)
	}
}

func sameStats(a, b storage.ArchiveStats) bool {
	return a.Count == b.Count && sameArchived([]storage.ArchivedMessage{a.First, a.Last}, []storage.ArchivedMessage{b.First, b.Last})
}

func testArchiveExpire(t *testing.T, s storage.Archive) {
	ctx := t.Context()
	users := []string{aUser, aOther, "carol@example.net", "dave@example.org"}
	all := make(map[string][]storage.ArchivedMessage)
	for u, user := range users {
		// User u has messages at seconds u .. u+9.
		for i := u; i < u+10; i++ {
			all[user] = append(all[user], mustAppend(t, s, user, archiveBase.Add(time.Duration(i)*time.Second),
				"bob@example.org/r", fmt.Appendf(nil, "%s %d", user, i)))
		}
	}
	// Everything archived before second 5 goes: 5 + 4 + 3 + 2 messages.
	// A message archived exactly at t stays.
	n, err := s.ExpireArchive(ctx, archiveBase.Add(5*time.Second), 0)
	if err != nil || n != 14 {
		t.Errorf("ExpireArchive = %d, %v; want 14", n, err)
	}
	for u, user := range users {
		checkPage(t, s, user, storage.ArchiveQuery{Max: 100}, all[user][5-u:], true)
		checkPage(t, s, user, storage.ArchiveQuery{Max: 100, With: "bob@example.org"}, all[user][5-u:], true)
		checkPage(t, s, user, storage.ArchiveQuery{Max: 100, IDs: []uint64{all[user][0].ID, all[user][9].ID}}, all[user][9:], true)
	}
	if n, err := s.ExpireArchive(ctx, archiveBase.Add(5*time.Second), 0); n != 0 || err != nil {
		t.Errorf("ExpireArchive again = %d, %v; want 0", n, err)
	}
	// Expiring everything leaves empty archives whose IDs still go up.
	if n, err := s.ExpireArchive(ctx, archiveBase.Add(time.Hour), 0); n != 26 || err != nil {
		t.Errorf("ExpireArchive of everything = %d, %v; want 26", n, err)
	}
	for _, user := range users {
		checkPage(t, s, user, storage.ArchiveQuery{Max: 100}, nil, true)
		checkPage(t, s, user, storage.ArchiveQuery{Max: 100, With: "bob@example.org"}, nil, true)
		if st, err := s.ArchiveStats(ctx, user); err != nil || st.Count != 0 {
			t.Errorf("ArchiveStats(%q) after expiring everything = %+v, %v", user, st, err)
		}
	}
	m := mustAppend(t, s, aUser, archiveBase, "bob@example.org", []byte("again"))
	if last := all[aUser][9].ID; m.ID <= last {
		t.Errorf("ID after expiring everything = %d, not above the last one, %d", m.ID, last)
	}
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 100, With: "bob@example.org"}, []storage.ArchivedMessage{m}, true)
}

// testArchiveExpireLimit checks the limit of ExpireArchive and
// ExpireUserArchive: a call removes at most limit messages, the oldest of
// an archive first, removing limit reports that more may be left, and
// repeated calls finish the job.
func testArchiveExpireLimit(t *testing.T, s storage.Archive) {
	ctx := t.Context()
	users := []string{aUser, aOther, "carol@example.net"}
	all := make(map[string][]storage.ArchivedMessage)
	for _, user := range users {
		all[user] = fill(t, s, user, 10)
	}
	cut := archiveBase.Add(7 * time.Second) // 7 of each archive's 10 are due
	total, calls := 0, 0
	for {
		n, err := s.ExpireArchive(ctx, cut, 4)
		if err != nil {
			t.Fatalf("ExpireArchive(limit 4): %v", err)
		}
		if n > 4 {
			t.Fatalf("ExpireArchive(limit 4) removed %d", n)
		}
		total += n
		calls++
		// Each archive loses its oldest first.
		for _, user := range users {
			st, err := s.ArchiveStats(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			if st.Count > 0 && st.Last.ID != all[user][9].ID {
				t.Errorf("ExpireArchive(limit 4) removed a newer message of %q", user)
			}
		}
		if !storage.Limited(n, 4) {
			break
		}
		if calls > 10 {
			t.Fatalf("ExpireArchive(limit 4) still reports more after %d calls", calls)
		}
	}
	if total != 21 || calls < 6 {
		t.Errorf("ExpireArchive(limit 4) removed %d in %d calls; want 21 in at least 6", total, calls)
	}
	for _, user := range users {
		checkPage(t, s, user, storage.ArchiveQuery{Max: 100}, all[user][7:], true)
	}
	// ExpireUserArchive: one archive, in batches.
	fill(t, s, aUser, 5)
	n, err := s.ExpireUserArchive(ctx, aUser, archiveBase.Add(time.Hour), 2)
	if err != nil || n != 2 {
		t.Fatalf("ExpireUserArchive(limit 2) = %d, %v; want 2", n, err)
	}
	checkPage(t, s, aOther, storage.ArchiveQuery{Max: 100}, all[aOther][7:], true)
	for i := 0; storage.Limited(n, 2); i++ {
		if i > 10 {
			t.Fatal("ExpireUserArchive(limit 2) never finishes")
		}
		if n, err = s.ExpireUserArchive(ctx, aUser, archiveBase.Add(time.Hour), 2); err != nil {
			t.Fatal(err)
		}
	}
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 100}, nil, true)
	checkPage(t, s, aOther, storage.ArchiveQuery{Max: 100}, all[aOther][7:], true)
}

// testArchiveExpireUser checks ExpireUserArchive: only that user's older
// messages go, across chunk-sized runs and parties, the boundary is the
// same as ExpireArchive's, and queries, stats and IDs follow.
func testArchiveExpireUser(t *testing.T, s storage.Archive) {
	ctx := t.Context()
	const n = 300
	withs := []string{"bob@example.org/r", "carol@example.org", "bob@example.org"}
	msgs := fill(t, s, aUser, n, withs...)
	// Users whose names share a prefix with aUser's, and one with
	// messages at the same times.
	others := []string{aOther, "alice@example.org.evil", "alic@example.org"}
	kept := make(map[string][]storage.ArchivedMessage)
	for _, u := range others {
		kept[u] = fill(t, s, u, 20, withs...)
	}
	if n, err := s.ExpireUserArchive(ctx, "nobody@example.org", archiveBase.Add(time.Hour), 0); n != 0 || err != nil {
		t.Errorf("ExpireUserArchive of an empty archive = %d, %v; want 0", n, err)
	}
	if n, err := s.ExpireUserArchive(ctx, aUser, archiveBase, 0); n != 0 || err != nil {
		t.Errorf("ExpireUserArchive at the first message = %d, %v; want 0", n, err)
	}
	// Before second 100 and half a microsecond: message 100 was archived
	// before that, to the nanosecond, and goes too.
	cut := 101
	if n, err := s.ExpireUserArchive(ctx, aUser, archiveBase.Add(100*time.Second+500*time.Nanosecond), 0); n != cut || err != nil {
		t.Errorf("ExpireUserArchive = %d, %v; want %d", n, err, cut)
	}
	rest := msgs[cut:]
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 1000}, rest, true)
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 1000, Reverse: true}, rest, true)
	for _, w := range []string{"bob@example.org", "carol@example.org", "bob@example.org/r"} {
		want := pick(rest, func(m storage.ArchivedMessage) bool {
			return m.With == w || (w == "bob@example.org" && m.With == "bob@example.org/r")
		})
		checkPage(t, s, aUser, storage.ArchiveQuery{Max: 1000, With: w}, want, true)
		checkPage(t, s, aUser, storage.ArchiveQuery{Max: 2, With: w, Reverse: true}, want[len(want)-2:], false)
	}
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 3}, rest[:3], false)
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 1000, After: msgs[50].ID, Before: rest[2].ID}, rest[:2], true)
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 100, IDs: []uint64{msgs[0].ID, msgs[100].ID, msgs[cut].ID}}, rest[:1], true)
	st, err := s.ArchiveStats(ctx, aUser)
	want := storage.ArchiveStats{
		Count: len(rest),
		First: storage.ArchivedMessage{ID: rest[0].ID, With: rest[0].With},
		Last:  storage.ArchivedMessage{ID: msgs[n-1].ID, With: msgs[n-1].With},
	}
	if err != nil || !sameStats(st, want) {
		t.Errorf("ArchiveStats after ExpireUserArchive = %+v, %v; want %+v", st, err, want)
	}
	// Exactly at a message's time: that message stays.
	if n, err := s.ExpireUserArchive(ctx, aUser, rest[1].Time(), 0); n != 1 || err != nil {
		t.Errorf("ExpireUserArchive at a message's time = %d, %v; want 1", n, err)
	}
	rest = rest[1:]
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 1000}, rest, true)
	if n, err := s.ExpireUserArchive(ctx, aUser, rest[0].Time(), 0); n != 0 || err != nil {
		t.Errorf("ExpireUserArchive again = %d, %v; want 0", n, err)
	}
	for _, u := range others {
		checkPage(t, s, u, storage.ArchiveQuery{Max: 100}, kept[u], true)
		checkPage(t, s, u, storage.ArchiveQuery{Max: 100, With: "bob@example.org"}, pick(kept[u], func(m storage.ArchivedMessage) bool { return m.With != "carol@example.org" }), true)
		if st, err := s.ArchiveStats(ctx, u); err != nil || st.Count != len(kept[u]) {
			t.Errorf("ArchiveStats(%q) = %+v, %v; want a count of %d", u, st, err, len(kept[u]))
		}
	}
	// A message appended now, archived at an old time, gets an ID above
	// the last one and survives an expiry at its time.
	m := mustAppend(t, s, aUser, archiveBase, "dave@example.org", []byte("late"))
	if m.ID <= msgs[n-1].ID {
		t.Errorf("ID after ExpireUserArchive = %d, not above the last one, %d", m.ID, msgs[n-1].ID)
	}
	// Everything goes; the archive is empty, its IDs still go up.
	if n, err := s.ExpireUserArchive(ctx, aUser, archiveBase.Add(24*time.Hour), 0); n != len(rest)+1 || err != nil {
		t.Errorf("ExpireUserArchive of everything = %d, %v; want %d", n, err, len(rest)+1)
	}
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 100}, nil, true)
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 100, With: "bob@example.org"}, nil, true)
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 100, With: "dave@example.org"}, nil, true)
	if st, err := s.ArchiveStats(ctx, aUser); err != nil || !sameStats(st, storage.ArchiveStats{}) {
		t.Errorf("ArchiveStats after expiring everything = %+v, %v; want zero", st, err)
	}
	again := mustAppend(t, s, aUser, archiveBase, "bob@example.org", []byte("again"))
	if again.ID <= m.ID {
		t.Errorf("ID after expiring everything = %d, not above the last one, %d", again.ID, m.ID)
	}
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 100, With: "bob@example.org"}, []storage.ArchivedMessage{again}, true)
	for _, u := range others {
		checkPage(t, s, u, storage.ArchiveQuery{Max: 100}, kept[u], true)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.ExpireUserArchive(cancelled, aUser, archiveBase.Add(48*time.Hour), 0); err == nil {
		t.Error("ExpireUserArchive with a cancelled context succeeded")
	}
}

func testArchiveDelete(t *testing.T, s storage.Archive) {
	ctx := t.Context()
	others := []string{"alice@example.net", "alice@example.org.evil", "malice@example.org", aOther}
	wants := make(map[string][]storage.ArchivedMessage)
	for _, u := range append([]string{aUser}, others...) {
		wants[u] = fill(t, s, u, 5, "bob@example.org", "carol@example.org/x")
	}
	if err := s.DeleteArchive(ctx, aUser); err != nil {
		t.Fatalf("DeleteArchive: %v", err)
	}
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 100}, nil, true)
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 100, With: "bob@example.org"}, nil, true)
	if st, err := s.ArchiveStats(ctx, aUser); err != nil || !sameStats(st, storage.ArchiveStats{}) {
		t.Errorf("ArchiveStats after DeleteArchive = %+v, %v; want zero", st, err)
	}
	for _, u := range others {
		checkPage(t, s, u, storage.ArchiveQuery{Max: 100}, wants[u], true)
		checkPage(t, s, u, storage.ArchiveQuery{Max: 100, With: "carol@example.org"}, pick(wants[u], func(m storage.ArchivedMessage) bool { return m.With != "bob@example.org" }), true)
	}
	if err := s.DeleteArchive(ctx, aUser); err != nil {
		t.Errorf("second DeleteArchive: %v", err)
	}
	m := mustAppend(t, s, aUser, archiveBase.Add(time.Hour), "bob@example.org", []byte("new"))
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 100}, []storage.ArchivedMessage{m}, true)
}

func testArchiveIsolated(t *testing.T, s storage.Archive) {
	users := []string{aUser, "alice@example.org.evil", "alic@example.org", "alice@example.or", "example.org"}
	wants := make(map[string][]storage.ArchivedMessage)
	for u, user := range users {
		wants[user] = fill(t, s, user, u+2, "bob@example.org", user)
	}
	for _, user := range users {
		checkPage(t, s, user, storage.ArchiveQuery{Max: 100}, wants[user], true)
		checkPage(t, s, user, storage.ArchiveQuery{Max: 100, With: "bob@example.org"}, pick(wants[user], func(m storage.ArchivedMessage) bool { return m.With == "bob@example.org" }), true)
		st, err := s.ArchiveStats(t.Context(), user)
		if err != nil || st.Count != len(wants[user]) {
			t.Errorf("ArchiveStats(%q) = %+v, %v; want a count of %d", user, st, err, len(wants[user]))
		}
	}
}

func testArchiveCopies(t *testing.T, s storage.Archive) {
	in := []byte("original")
	id, err := s.AppendArchive(t.Context(), aUser, archiveBase, aOther, in)
	if err != nil {
		t.Fatal(err)
	}
	copy(in, "SCRIBBLE")
	want := []storage.ArchivedMessage{{ID: id, With: aOther, Data: []byte("original")}}
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 10}, want, true)
	p := mustQuery(t, s, aUser, storage.ArchiveQuery{Max: 10})
	copy(p.Messages[0].Data, "SCRIBBLE")
	_ = append(p.Messages[0].Data[:2], "appended past the end"...)
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 10}, want, true)
	// Empty and large messages.
	m := mustAppend(t, s, aUser, archiveBase, aOther, nil)
	l := mustAppend(t, s, aUser, archiveBase, aOther, big(200<<10))
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 10}, append(want, m, l), true)
}

func testArchiveInvalid(t *testing.T, s storage.Archive) {
	ctx := t.Context()
	if _, err := s.AppendArchive(ctx, "", archiveBase, aOther, []byte("x")); err == nil {
		t.Error("AppendArchive with an empty user succeeded")
	}
	msgs := fill(t, s, aUser, 3)
	for _, max := range []int{0, -1} {
		if _, err := s.QueryArchive(ctx, aUser, storage.ArchiveQuery{Max: max}); err == nil {
			t.Errorf("QueryArchive with Max %d succeeded", max)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.AppendArchive(cancelled, aUser, archiveBase, aOther, []byte("x")); err == nil {
		t.Error("AppendArchive with a cancelled context succeeded")
	}
	if _, err := s.QueryArchive(cancelled, aUser, storage.ArchiveQuery{Max: 10}); err == nil {
		t.Error("QueryArchive with a cancelled context succeeded")
	}
	checkPage(t, s, aUser, storage.ArchiveQuery{Max: 10}, msgs, true)
}

func testArchiveConcurrent(t *testing.T, s storage.Archive) {
	ctx := t.Context()
	const (
		workers = 8
		rounds  = 25
	)
	var (
		mu  sync.Mutex
		ids []uint64
		wg  sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			last := uint64(0)
			for r := range rounds {
				id, err := s.AppendArchive(ctx, aUser, archiveBase, fmt.Sprintf("w%d@example.org/r", w), fmt.Appendf(nil, "%d/%d", w, r))
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				if id <= last {
					t.Errorf("worker %d: ID %d after %d", w, id, last)
				}
				last = id
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
				if _, err := s.QueryArchive(ctx, aUser, storage.ArchiveQuery{Max: 5, Reverse: true}); err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(ids)
	if len(slices.Compact(slices.Clone(ids))) != workers*rounds {
		t.Fatalf("%d distinct IDs, want %d", len(slices.Compact(slices.Clone(ids))), workers*rounds)
	}
	p := mustQuery(t, s, aUser, storage.ArchiveQuery{Max: 1000})
	if len(p.Messages) != workers*rounds || !p.Complete {
		t.Fatalf("archive holds %d messages, want %d", len(p.Messages), workers*rounds)
	}
	for i, m := range p.Messages {
		if m.ID != ids[i] {
			t.Fatalf("message %d has ID %d, want %d", i, m.ID, ids[i])
		}
	}
	for w := range workers {
		p := mustQuery(t, s, aUser, storage.ArchiveQuery{Max: 1000, With: fmt.Sprintf("w%d@example.org", w)})
		if len(p.Messages) != rounds {
			t.Errorf("worker %d: %d messages, want %d", w, len(p.Messages), rounds)
		}
		for r, m := range p.Messages {
			if string(m.Data) != fmt.Sprintf("%d/%d", w, r) {
				t.Errorf("worker %d: message %d is %q", w, r, m.Data)
			}
		}
	}
}

package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// TestUploads checks an implementation of storage.Uploads. newStore must
// return a fresh, empty store each time it is called; it may use t to
// register cleanup. Every subtest gets its own store.
func TestUploads(t *testing.T, newStore func(t *testing.T) storage.Uploads) {
	tests := []struct {
		name string
		test func(t *testing.T, s storage.Uploads)
	}{
		{"Empty", testUploadsEmpty},
		{"CreateAndGet", testUploadsCreateAndGet},
		{"Times", testUploadsTimes},
		{"States", testUploadsStates},
		{"NewExpiry", testUploadsNewExpiry},
		{"MaxBytes", testUploadsMaxBytes},
		{"MaxDayBytes", testUploadsMaxDayBytes},
		{"UserUploads", testUploadsUserUploads},
		{"Expired", testUploadsExpired},
		{"Delete", testUploadsDelete},
		{"Invalid", testUploadsInvalid},
		{"ConcurrentLimit", testUploadsConcurrentLimit},
		{"ConcurrentClaim", testUploadsConcurrentClaim},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, newStore(t))
		})
	}
}

const (
	uOwner = "alice@example.org"
	uOther = "bob@example.org"
)

// uploadT0 is when the tests' first slot is handed out; their uploads
// expire a day after they were created unless a test says otherwise.
var uploadT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// newUpload returns a slot of owner of size bytes, created i seconds
// after uploadT0 and expiring a day later.
func newUpload(id, owner string, size int64, i int) storage.Upload {
	created := uploadT0.Add(time.Duration(i) * time.Second)
	return storage.Upload{
		ID:          id,
		Owner:       owner,
		Filename:    "photo of " + id + ".jpg",
		Size:        size,
		ContentType: "image/jpeg",
		State:       storage.UploadSlot,
		Created:     created,
		Expires:     created.Add(24 * time.Hour),
	}
}

func mustCreateUpload(t *testing.T, s storage.Uploads, u storage.Upload, lim storage.UploadLimits) {
	t.Helper()
	if err := s.CreateUpload(t.Context(), u, lim); err != nil {
		t.Fatalf("CreateUpload(%q of %q, %d bytes, %+v): %v", u.ID, u.Owner, u.Size, lim, err)
	}
}

func mustUpload(t *testing.T, s storage.Uploads, id string) storage.Upload {
	t.Helper()
	u, err := s.Upload(t.Context(), id)
	if err != nil {
		t.Fatalf("Upload(%q): %v", id, err)
	}
	return u
}

// sameUpload fails unless got is want as stored: every field equal, the
// times as instants and in UTC.
func sameUpload(t *testing.T, what string, got, want storage.Upload) {
	t.Helper()
	g, w := got, want
	g.Created, g.Expires, w.Created, w.Expires = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if g != w || !got.Created.Equal(want.Created) || !got.Expires.Equal(want.Expires) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
	if got.Created.Location() != time.UTC || got.Expires.Location() != time.UTC {
		t.Errorf("%s has times in %v and %v, want UTC", what, got.Created.Location(), got.Expires.Location())
	}
}

func uploadIDs(us []storage.Upload) []string {
	var ids []string
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	return ids
}

// checkUserUploads fails unless owner's uploads are exactly want, in
// order.
func checkUserUploads(t *testing.T, s storage.Uploads, owner string, want ...string) []storage.Upload {
	t.Helper()
	us, err := s.UserUploads(t.Context(), owner)
	if err != nil {
		t.Fatalf("UserUploads(%q): %v", owner, err)
	}
	if got := uploadIDs(us); !slices.Equal(got, want) {
		t.Errorf("UserUploads(%q) = %q, want %q", owner, got, want)
	}
	if len(want) == 0 && us != nil {
		t.Errorf("UserUploads(%q) of an owner without uploads = %v, want nil", owner, us)
	}
	return us
}

// checkExpired fails unless ExpiredUploads(at, max) returns exactly want,
// in order.
func checkExpired(t *testing.T, s storage.Uploads, at time.Time, max int, want ...string) []storage.Upload {
	t.Helper()
	us, err := s.ExpiredUploads(t.Context(), at, max)
	if err != nil {
		t.Fatalf("ExpiredUploads(%v, %d): %v", at, max, err)
	}
	if got := uploadIDs(us); !slices.Equal(got, want) {
		t.Errorf("ExpiredUploads(%v, %d) = %q, want %q", at, max, got, want)
	}
	return us
}

func checkUploadGone(t *testing.T, s storage.Uploads, id string) {
	t.Helper()
	if u, err := s.Upload(t.Context(), id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Upload(%q) = %+v, %v; want ErrNotFound", id, u, err)
	}
}

func testUploadsEmpty(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	checkUploadGone(t, s, "no-such-upload")
	checkUserUploads(t, s, uOwner)
	checkExpired(t, s, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 10)
	checkErrIs(t, "SetUploadState of a missing upload", s.SetUploadState(ctx, "no-such-upload", storage.UploadSlot, storage.UploadReceiving, time.Time{}), storage.ErrNotFound)
	if err := s.DeleteUpload(ctx, "no-such-upload"); err != nil {
		t.Errorf("DeleteUpload of a missing upload: %v", err)
	}
}

func testUploadsCreateAndGet(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	a := newUpload("upload-a", uOwner, 1000, 0)
	mustCreateUpload(t, s, a, storage.UploadLimits{})
	sameUpload(t, "Upload of a new slot", mustUpload(t, s, a.ID), a)

	// Empty fields that may be empty come back empty; a size of 0 is
	// an empty file.
	b := storage.Upload{ID: "upload-b", Owner: uOwner, State: storage.UploadSlot, Created: uploadT0, Expires: uploadT0.Add(time.Minute)}
	mustCreateUpload(t, s, b, storage.UploadLimits{})
	sameUpload(t, "Upload of a slot without filename, type or size", mustUpload(t, s, b.ID), b)

	// Texts come back byte for byte.
	c := newUpload("upload-c", uOwner, 1, 2)
	c.Filename = "Grüße \x00 aus 東京 ../../etc/passwd"
	c.ContentType = "text/plain; charset=utf-8"
	mustCreateUpload(t, s, c, storage.UploadLimits{})
	sameUpload(t, "Upload with unusual texts", mustUpload(t, s, c.ID), c)

	// An ID taken, by this owner or another, in any state, is taken.
	dup := newUpload(a.ID, uOther, 5, 9)
	checkErrIs(t, "CreateUpload of a taken ID by another owner", s.CreateUpload(ctx, dup, storage.UploadLimits{}), storage.ErrExists)
	dup.Owner = uOwner
	checkErrIs(t, "CreateUpload of a taken ID", s.CreateUpload(ctx, dup, storage.UploadLimits{}), storage.ErrExists)
	if err := s.SetUploadState(ctx, a.ID, storage.UploadSlot, storage.UploadComplete, time.Time{}); err != nil {
		t.Fatal(err)
	}
	checkErrIs(t, "CreateUpload of the ID of a complete upload", s.CreateUpload(ctx, dup, storage.UploadLimits{}), storage.ErrExists)
	a.State = storage.UploadComplete
	sameUpload(t, "Upload after creating its ID again failed", mustUpload(t, s, a.ID), a)
	checkUserUploads(t, s, uOther)
	// upload-a and upload-b are created in the same microsecond: by ID.
	checkUserUploads(t, s, uOwner, "upload-a", "upload-b", "upload-c")
}

func testUploadsTimes(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	zone := time.FixedZone("UTC-5", -5*3600)
	for i, tt := range []struct {
		created, expires time.Time
	}{
		{time.Date(2025, 6, 1, 7, 30, 15, 123456789, zone), time.Date(2025, 6, 2, 7, 30, 15, 999, zone)},
		// Before 1970 microseconds are cut towards the past too.
		{time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Unix(-1, 1)},
		// The ends of years 1 to 9999.
		{time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{time.Time{}, time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC)},
	} {
		u := newUpload(fmt.Sprintf("times-%d", i), uOwner, 1, 0)
		u.Created, u.Expires = tt.created, tt.expires
		mustCreateUpload(t, s, u, storage.UploadLimits{})
		want := u
		want.Created = tt.created.Truncate(time.Microsecond).UTC()
		want.Expires = tt.expires.Truncate(time.Microsecond).UTC()
		got := mustUpload(t, s, u.ID)
		sameUpload(t, fmt.Sprintf("Upload created %v, expiring %v", tt.created, tt.expires), got, want)
		if got.Created.Equal(tt.created) != (tt.created.Nanosecond()%1000 == 0) {
			t.Errorf("created %v came back as %v: not truncated to the microsecond", tt.created, got.Created)
		}
	}
	// times-2 and times-3 are both created at the zero Time: by ID.
	all := checkUserUploads(t, s, uOwner, "times-2", "times-3", "times-1", "times-0")
	for _, u := range all {
		if u.Created.Location() != time.UTC || u.Expires.Location() != time.UTC || u.Created.Nanosecond()%1000 != 0 {
			t.Errorf("UserUploads returns %s created %v expiring %v, not in UTC microseconds", u.ID, u.Created, u.Expires)
		}
	}
	exp := checkExpired(t, s, time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), 10, "times-3", "times-1", "times-0", "times-2")
	for _, u := range exp {
		if u.Expires.Location() != time.UTC || u.Expires.Nanosecond()%1000 != 0 {
			t.Errorf("ExpiredUploads returns %s expiring %v, not in UTC microseconds", u.ID, u.Expires)
		}
	}
	// An expiry is due at its truncated microsecond: times-0 expires at
	// 12:30:15.000000 UTC.
	due := time.Date(2025, 6, 2, 12, 30, 15, 0, time.UTC)
	checkExpired(t, s, due.Add(-time.Nanosecond), 10, "times-3", "times-1")
	checkExpired(t, s, due, 10, "times-3", "times-1", "times-0")
	if err := s.SetUploadState(ctx, "times-0", storage.UploadSlot, storage.UploadReceiving, time.Date(2030, 1, 1, 1, 0, 0, 1999, zone)); err != nil {
		t.Fatal(err)
	}
	if got := mustUpload(t, s, "times-0").Expires; !got.Equal(time.Date(2030, 1, 1, 6, 0, 0, 1000, time.UTC)) || got.Location() != time.UTC {
		t.Errorf("expiry set by SetUploadState came back as %v, want 2030-01-01 06:00:00.000001 UTC", got)
	}
}

func testUploadsStates(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	u := newUpload("upload-a", uOwner, 10, 0)
	mustCreateUpload(t, s, u, storage.UploadLimits{})
	set := func(from, to storage.UploadState) error {
		return s.SetUploadState(ctx, u.ID, from, to, time.Time{})
	}
	check := func(want storage.UploadState) {
		t.Helper()
		w := u
		w.State = want
		sameUpload(t, "Upload", mustUpload(t, s, u.ID), w)
	}
	check(storage.UploadSlot)
	// A PUT starts: the slot is claimed once; a second claim finds it
	// receiving.
	if err := set(storage.UploadSlot, storage.UploadReceiving); err != nil {
		t.Fatalf("claiming the slot: %v", err)
	}
	check(storage.UploadReceiving)
	checkErrIs(t, "claiming the slot a second time", set(storage.UploadSlot, storage.UploadReceiving), storage.ErrExists)
	checkErrIs(t, "SetUploadState from complete while receiving", set(storage.UploadComplete, storage.UploadSlot), storage.ErrExists)
	check(storage.UploadReceiving)
	if err := set(storage.UploadReceiving, storage.UploadComplete); err != nil {
		t.Fatalf("completing: %v", err)
	}
	check(storage.UploadComplete)
	checkErrIs(t, "claiming a complete upload", set(storage.UploadSlot, storage.UploadReceiving), storage.ErrExists)
	checkErrIs(t, "completing a complete upload from receiving", set(storage.UploadReceiving, storage.UploadComplete), storage.ErrExists)
	// Any state may move to any other, or stay.
	for _, st := range []struct{ from, to storage.UploadState }{
		{storage.UploadComplete, storage.UploadComplete},
		{storage.UploadComplete, storage.UploadSlot},
		{storage.UploadSlot, storage.UploadComplete},
		{storage.UploadComplete, storage.UploadReceiving},
		{storage.UploadReceiving, storage.UploadSlot},
	} {
		if err := set(st.from, st.to); err != nil {
			t.Errorf("SetUploadState from %d to %d: %v", st.from, st.to, err)
		}
		check(st.to)
	}
	// Unknown states are invalid arguments, not refusals, and change
	// nothing.
	for _, st := range []struct{ from, to storage.UploadState }{{0, storage.UploadReceiving}, {storage.UploadSlot, 0}, {storage.UploadSlot, 4}, {255, storage.UploadSlot}} {
		checkInvalid(t, fmt.Sprintf("SetUploadState from %d to %d", st.from, st.to), set(st.from, st.to))
	}
	check(storage.UploadSlot)
	checkErrIs(t, "SetUploadState of another ID", s.SetUploadState(ctx, "upload-b", storage.UploadSlot, storage.UploadReceiving, time.Time{}), storage.ErrNotFound)
}

func testUploadsNewExpiry(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	a, b := newUpload("upload-a", uOwner, 10, 0), newUpload("upload-b", uOwner, 10, 1)
	a.Expires, b.Expires = uploadT0.Add(5*time.Minute), uploadT0.Add(6*time.Minute)
	mustCreateUpload(t, s, a, storage.UploadLimits{})
	mustCreateUpload(t, s, b, storage.UploadLimits{})
	checkExpired(t, s, uploadT0.Add(time.Hour), 10, "upload-a", "upload-b")

	// The zero Time keeps the expiry; another replaces it, later or
	// sooner.
	if err := s.SetUploadState(ctx, a.ID, storage.UploadSlot, storage.UploadReceiving, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got := mustUpload(t, s, a.ID).Expires; !got.Equal(a.Expires) {
		t.Errorf("expiry after SetUploadState without one = %v, want %v", got, a.Expires)
	}
	later := uploadT0.Add(30 * 24 * time.Hour)
	if err := s.SetUploadState(ctx, a.ID, storage.UploadReceiving, storage.UploadComplete, later); err != nil {
		t.Fatal(err)
	}
	a.State, a.Expires = storage.UploadComplete, later
	sameUpload(t, "Upload with a new expiry", mustUpload(t, s, a.ID), a)
	checkExpired(t, s, uploadT0.Add(time.Hour), 10, "upload-b")
	checkExpired(t, s, later, 10, "upload-b", "upload-a")
	sooner := uploadT0.Add(time.Minute)
	if err := s.SetUploadState(ctx, b.ID, storage.UploadSlot, storage.UploadSlot, sooner); err != nil {
		t.Fatal(err)
	}
	checkExpired(t, s, sooner, 10, "upload-b")
	checkExpired(t, s, later, 10, "upload-b", "upload-a")

	// A refused change of state sets no expiry.
	checkErrIs(t, "SetUploadState from the wrong state", s.SetUploadState(ctx, b.ID, storage.UploadReceiving, storage.UploadComplete, later.Add(time.Hour)), storage.ErrExists)
	if got := mustUpload(t, s, b.ID).Expires; !got.Equal(sooner) {
		t.Errorf("a refused SetUploadState changed the expiry to %v", got)
	}
	checkExpired(t, s, later, 10, "upload-b", "upload-a")
}

func testUploadsMaxBytes(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	lim := storage.UploadLimits{MaxBytes: 250}
	mustCreateUpload(t, s, newUpload("a", uOwner, 100, 0), lim)
	mustCreateUpload(t, s, newUpload("b", uOwner, 100, 1), lim)
	// Another owner's uploads do not count.
	mustCreateUpload(t, s, newUpload("other", uOther, 250, 2), lim)

	// 51 bytes more would make 251.
	err := s.CreateUpload(ctx, newUpload("c", uOwner, 51, 3), lim)
	checkErrIs(t, "CreateUpload past MaxBytes", err, storage.ErrLimit)
	checkUploadGone(t, s, "c")
	checkUserUploads(t, s, uOwner, "a", "b")

	// A file in any state counts: completing one frees nothing.
	if err := s.SetUploadState(ctx, "a", storage.UploadSlot, storage.UploadComplete, time.Time{}); err != nil {
		t.Fatal(err)
	}
	checkErrIs(t, "CreateUpload past MaxBytes with a complete file", s.CreateUpload(ctx, newUpload("c", uOwner, 51, 3), lim), storage.ErrLimit)
	// Up to the limit is within it.
	mustCreateUpload(t, s, newUpload("c", uOwner, 50, 3), lim)
	checkErrIs(t, "CreateUpload of one byte at MaxBytes", s.CreateUpload(ctx, newUpload("d", uOwner, 1, 4), lim), storage.ErrLimit)
	mustCreateUpload(t, s, newUpload("empty", uOwner, 0, 4), lim)
	// Without a limit, anything goes; with a lower one, nothing but
	// empty files.
	mustCreateUpload(t, s, newUpload("d", uOwner, 1000, 5), storage.UploadLimits{})
	checkErrIs(t, "CreateUpload past a lowered MaxBytes", s.CreateUpload(ctx, newUpload("e", uOwner, 1, 6), lim), storage.ErrLimit)
	// A deleted upload frees its bytes.
	if err := s.DeleteUpload(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	checkErrIs(t, "CreateUpload past MaxBytes after a delete", s.CreateUpload(ctx, newUpload("e", uOwner, 1, 6), lim), storage.ErrLimit)
	if err := s.DeleteUpload(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	mustCreateUpload(t, s, newUpload("e", uOwner, 100, 6), lim)
	checkUserUploads(t, s, uOwner, "b", "c", "empty", "e")
	// The day limit, far away, does not change the total's verdict.
	lim.MaxDayBytes, lim.DayStart = 1<<40, uploadT0
	checkErrIs(t, "CreateUpload past MaxBytes within MaxDayBytes", s.CreateUpload(ctx, newUpload("f", uOwner, 1, 7), lim), storage.ErrLimit)
	checkUserUploads(t, s, uOwner, "b", "c", "empty", "e")
}

func testUploadsMaxDayBytes(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	day := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	at := func(id string, size int64, created time.Time) storage.Upload {
		u := newUpload(id, uOwner, size, 0)
		u.Created, u.Expires = created, created.Add(24*time.Hour)
		return u
	}
	lim := storage.UploadLimits{MaxDayBytes: 100, DayStart: day}
	// Yesterday's bytes do not count towards today's; the last
	// microsecond before the day start is yesterday.
	mustCreateUpload(t, s, at("yesterday", 500, day.Add(-time.Hour)), storage.UploadLimits{})
	mustCreateUpload(t, s, at("just-before", 500, day.Add(-time.Microsecond)), storage.UploadLimits{})
	other := at("other", 500, day.Add(time.Hour))
	other.Owner = uOther
	mustCreateUpload(t, s, other, storage.UploadLimits{})
	// The day start itself is today.
	mustCreateUpload(t, s, at("midnight", 30, day), lim)
	mustCreateUpload(t, s, at("morning", 30, day.Add(8*time.Hour)), lim)
	err := s.CreateUpload(ctx, at("noon", 41, day.Add(12*time.Hour)), lim)
	checkErrIs(t, "CreateUpload past MaxDayBytes", err, storage.ErrLimit)
	checkUploadGone(t, s, "noon")
	mustCreateUpload(t, s, at("noon", 40, day.Add(12*time.Hour)), lim)
	checkErrIs(t, "CreateUpload of one byte at MaxDayBytes", s.CreateUpload(ctx, at("evening", 1, day.Add(18*time.Hour)), lim), storage.ErrLimit)
	// The new upload counts whatever its Created.
	checkErrIs(t, "CreateUpload created before the day start, at MaxDayBytes", s.CreateUpload(ctx, at("late", 1, day.Add(-2*time.Hour)), lim), storage.ErrLimit)
	// A day start in another zone is the same instant.
	zoned := storage.UploadLimits{MaxDayBytes: 100, DayStart: day.In(time.FixedZone("UTC+2", 2*3600))}
	checkErrIs(t, "CreateUpload past MaxDayBytes with a day start in UTC+2", s.CreateUpload(ctx, at("zoned", 1, day.Add(13*time.Hour)), zoned), storage.ErrLimit)
	// A day start between microseconds is cut to the microsecond, as
	// Created is: 23:59:59.9999995 the day before is 23:59:59.999999,
	// so just-before counts.
	sub := storage.UploadLimits{MaxDayBytes: 600, DayStart: day.Add(-500 * time.Nanosecond)}
	checkErrIs(t, "CreateUpload with a day start between microseconds", s.CreateUpload(ctx, at("sub", 1, day.Add(13*time.Hour)), sub), storage.ErrLimit)
	sub.MaxDayBytes = 601
	mustCreateUpload(t, s, at("sub", 1, day.Add(13*time.Hour)), sub)
	// The next day starts afresh; the total limit still holds.
	next := storage.UploadLimits{MaxDayBytes: 100, DayStart: day.AddDate(0, 0, 1)}
	mustCreateUpload(t, s, at("tomorrow", 100, day.Add(25*time.Hour)), next)
	next.MaxBytes = 1200
	checkErrIs(t, "CreateUpload past MaxBytes on a new day", s.CreateUpload(ctx, at("tomorrow-2", 0, day.Add(26*time.Hour)), next), storage.ErrLimit)
	// Deleting today's upload frees today's bytes: 201 are stored since
	// the day start.
	lim.MaxDayBytes = 202
	checkErrIs(t, "CreateUpload past MaxDayBytes before a delete", s.CreateUpload(ctx, at("evening", 31, day.Add(18*time.Hour)), lim), storage.ErrLimit)
	if err := s.DeleteUpload(ctx, "morning"); err != nil {
		t.Fatal(err)
	}
	mustCreateUpload(t, s, at("evening", 31, day.Add(18*time.Hour)), lim)
	checkUserUploads(t, s, uOwner, "yesterday", "just-before", "midnight", "noon", "sub", "evening", "tomorrow")
}

func testUploadsUserUploads(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	// Created out of order, two in the same microsecond (ordered by ID),
	// one in the same second but a microsecond later.
	for _, u := range []storage.Upload{
		newUpload("c", uOwner, 1, 5),
		newUpload("zz", uOwner, 1, 3),
		newUpload("b", uOther, 1, 1),
		newUpload("aa", uOwner, 1, 3),
		newUpload("late", uOwner, 1, 9),
		newUpload("first", uOwner, 1, -100),
	} {
		mustCreateUpload(t, s, u, storage.UploadLimits{})
	}
	sub := newUpload("a-sub", uOwner, 1, 3)
	sub.Created = sub.Created.Add(time.Microsecond)
	mustCreateUpload(t, s, sub, storage.UploadLimits{})
	if err := s.SetUploadState(ctx, "late", storage.UploadSlot, storage.UploadComplete, time.Time{}); err != nil {
		t.Fatal(err)
	}
	us := checkUserUploads(t, s, uOwner, "first", "aa", "zz", "a-sub", "c", "late")
	if len(us) == 6 {
		want := newUpload("late", uOwner, 1, 9)
		want.State = storage.UploadComplete
		sameUpload(t, "UserUploads' last", us[5], want)
	}
	checkUserUploads(t, s, uOther, "b")
	checkUserUploads(t, s, "carol@example.org")
	// An owner's name is matched whole.
	checkUserUploads(t, s, "alice@example.or")
	checkUserUploads(t, s, uOwner+"x")
	for _, id := range []string{"first", "aa", "zz", "a-sub", "c", "late"} {
		if err := s.DeleteUpload(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	checkUserUploads(t, s, uOwner)
	checkUserUploads(t, s, uOther, "b")
}

func testUploadsExpired(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	exp := func(id, owner string, expires time.Duration) storage.Upload {
		u := newUpload(id, owner, 1, 0)
		u.Expires = uploadT0.Add(expires)
		return u
	}
	for _, u := range []storage.Upload{
		exp("d", uOwner, 4*time.Hour),
		exp("a", uOther, time.Hour),
		exp("c2", uOwner, 3*time.Hour),
		exp("c1", uOther, 3*time.Hour),
		exp("b", uOwner, 2*time.Hour),
		exp("never", uOwner, 1000*24*time.Hour),
	} {
		mustCreateUpload(t, s, u, storage.UploadLimits{})
	}
	checkExpired(t, s, uploadT0, 10)
	checkExpired(t, s, uploadT0.Add(time.Hour-time.Microsecond), 10)
	checkExpired(t, s, uploadT0.Add(time.Hour), 10, "a")
	checkExpired(t, s, uploadT0.Add(3*time.Hour), 10, "a", "b", "c1", "c2")
	// max takes the soonest.
	checkExpired(t, s, uploadT0.Add(5*time.Hour), 3, "a", "b", "c1")
	checkExpired(t, s, uploadT0.Add(5*time.Hour), 1, "a")
	// Listing deletes nothing; the janitor deletes, and the next call
	// gets the next ones.
	got := checkExpired(t, s, uploadT0.Add(5*time.Hour), 2, "a", "b")
	for _, u := range got {
		if err := s.DeleteUpload(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	checkExpired(t, s, uploadT0.Add(5*time.Hour), 2, "c1", "c2")
	checkExpired(t, s, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), 100, "c1", "c2", "d", "never")
	// Times beyond years 1 to 9999 are only far.
	checkExpired(t, s, time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC), 100, "c1", "c2", "d", "never")
	checkExpired(t, s, time.Date(-20000, 1, 1, 0, 0, 0, 0, time.UTC), 100)
	checkExpired(t, s, time.Time{}, 100)
}

func testUploadsDelete(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	mustCreateUpload(t, s, newUpload("a", uOwner, 100, 0), storage.UploadLimits{})
	mustCreateUpload(t, s, newUpload("b", uOwner, 100, 1), storage.UploadLimits{})
	mustCreateUpload(t, s, newUpload("c", uOther, 100, 2), storage.UploadLimits{})
	if err := s.SetUploadState(ctx, "b", storage.UploadSlot, storage.UploadComplete, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "b"} {
		if err := s.DeleteUpload(ctx, id); err != nil {
			t.Errorf("DeleteUpload(%q): %v", id, err)
		}
		checkUploadGone(t, s, id)
	}
	checkUserUploads(t, s, uOwner)
	checkUserUploads(t, s, uOther, "c")
	checkExpired(t, s, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 10, "c")
	checkErrIs(t, "SetUploadState of a deleted upload", s.SetUploadState(ctx, "a", storage.UploadSlot, storage.UploadReceiving, time.Time{}), storage.ErrNotFound)
	// An ID is free again once deleted, for any owner; the owner's
	// bytes are all free.
	again := newUpload("a", uOther, 50, 5)
	mustCreateUpload(t, s, again, storage.UploadLimits{})
	sameUpload(t, "Upload of a recreated ID", mustUpload(t, s, "a"), again)
	mustCreateUpload(t, s, newUpload("d", uOwner, 300, 6), storage.UploadLimits{MaxBytes: 300, MaxDayBytes: 300, DayStart: uploadT0})
	checkUserUploads(t, s, uOther, "c", "a")
	checkUserUploads(t, s, uOwner, "d")
}

// checkInvalid fails unless err is an error but no refusal.
func checkInvalid(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded", what)
	} else if isRefusal(err) {
		t.Errorf("%s = %v: an invalid argument is not a refusal", what, err)
	}
}

func testUploadsInvalid(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	create := func(what string, change func(u *storage.Upload), lim storage.UploadLimits) {
		t.Helper()
		u := newUpload("invalid", uOwner, 10, 0)
		change(&u)
		checkInvalid(t, "CreateUpload with "+what, s.CreateUpload(ctx, u, lim))
	}
	none := storage.UploadLimits{}
	create("an empty ID", func(u *storage.Upload) { u.ID = "" }, none)
	create("an empty owner", func(u *storage.Upload) { u.Owner = "" }, none)
	create("state 0", func(u *storage.Upload) { u.State = 0 }, none)
	create("state receiving", func(u *storage.Upload) { u.State = storage.UploadReceiving }, none)
	create("state complete", func(u *storage.Upload) { u.State = storage.UploadComplete }, none)
	create("state 4", func(u *storage.Upload) { u.State = 4 }, none)
	create("a negative size", func(u *storage.Upload) { u.Size = -1 }, none)
	create("no expiry", func(u *storage.Upload) { u.Expires = time.Time{} }, none)
	for _, bad := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(0, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		create(fmt.Sprintf("created %v", bad), func(u *storage.Upload) { u.Created = bad }, none)
		create(fmt.Sprintf("expiring %v", bad), func(u *storage.Upload) { u.Expires = bad }, none)
		create(fmt.Sprintf("a day start %v", bad), func(*storage.Upload) {}, storage.UploadLimits{MaxDayBytes: 100, DayStart: bad})
	}
	create("a negative MaxBytes", func(*storage.Upload) {}, storage.UploadLimits{MaxBytes: -1})
	create("a negative MaxDayBytes", func(*storage.Upload) {}, storage.UploadLimits{MaxDayBytes: -1, DayStart: uploadT0})
	checkUploadGone(t, s, "invalid")
	checkUserUploads(t, s, uOwner)
	checkExpired(t, s, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 10)

	// A day start out of range does not matter without a day limit.
	u := newUpload("valid", uOwner, 10, 0)
	mustCreateUpload(t, s, u, storage.UploadLimits{DayStart: time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC)})

	// Empty IDs and owners are errors for every method.
	_, err := s.Upload(ctx, "")
	checkInvalid(t, "Upload with an empty ID", err)
	checkInvalid(t, "SetUploadState with an empty ID", s.SetUploadState(ctx, "", storage.UploadSlot, storage.UploadReceiving, time.Time{}))
	checkInvalid(t, "DeleteUpload with an empty ID", s.DeleteUpload(ctx, ""))
	_, err = s.UserUploads(ctx, "")
	checkInvalid(t, "UserUploads with an empty owner", err)
	for _, max := range []int{0, -1} {
		_, err = s.ExpiredUploads(ctx, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), max)
		checkInvalid(t, fmt.Sprintf("ExpiredUploads with max %d", max), err)
	}
	for _, bad := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)} {
		checkInvalid(t, fmt.Sprintf("SetUploadState to expire %v", bad), s.SetUploadState(ctx, u.ID, storage.UploadSlot, storage.UploadReceiving, bad))
	}
	sameUpload(t, "Upload after invalid calls", mustUpload(t, s, u.ID), u)
}

// Many goroutines creating uploads for one owner under limits never get
// past them together, and every attempt is either stored or refused
// with ErrLimit.
func testUploadsConcurrentLimit(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	const (
		workers = 8
		rounds  = 20
		size    = 10
	)
	for _, tt := range []struct {
		name  string
		owner string
		lim   storage.UploadLimits
		max   int64
	}{
		{"MaxBytes", uOwner, storage.UploadLimits{MaxBytes: 505}, 505},
		{"MaxDayBytes", uOther, storage.UploadLimits{MaxDayBytes: 305, DayStart: uploadT0}, 305},
	} {
		var (
			wg               sync.WaitGroup
			mu               sync.Mutex
			stored, refusals int
		)
		for w := range workers {
			wg.Go(func() {
				for r := range rounds {
					id := fmt.Sprintf("%s-w%d-%d", tt.name, w, r)
					err := s.CreateUpload(ctx, newUpload(id, tt.owner, size, r), tt.lim)
					mu.Lock()
					switch {
					case err == nil:
						stored++
					case errors.Is(err, storage.ErrLimit):
						refusals++
					default:
						t.Errorf("%s: worker %d: %v", tt.name, w, err)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		us, err := s.UserUploads(ctx, tt.owner)
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, u := range us {
			total += u.Size
		}
		if want := int(tt.max / size); stored != want || len(us) != want || total != int64(want*size) {
			t.Errorf("%s: %d stored (%d listed, %d bytes), %d refused; want %d stored of %d bytes, at most %d", tt.name, stored, len(us), total, refusals, want, want*size, tt.max)
		}
		if stored+refusals != workers*rounds {
			t.Errorf("%s: %d stored and %d refused of %d", tt.name, stored, refusals, workers*rounds)
		}
	}
}

// Of many goroutines claiming one slot, exactly one succeeds; the others
// find it taken.
func testUploadsConcurrentClaim(t *testing.T, s storage.Uploads) {
	ctx := t.Context()
	const workers = 10
	for i := range 5 {
		id := fmt.Sprintf("slot-%d", i)
		mustCreateUpload(t, s, newUpload(id, uOwner, 1, i), storage.UploadLimits{})
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			won, lost int
		)
		for w := range workers {
			wg.Go(func() {
				err := s.SetUploadState(ctx, id, storage.UploadSlot, storage.UploadReceiving, time.Time{})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case errors.Is(err, storage.ErrExists):
					lost++
				default:
					t.Errorf("worker %d: %v", w, err)
				}
			})
		}
		wg.Wait()
		if won != 1 || lost != workers-1 {
			t.Errorf("slot %s claimed %d times and refused %d times; want once and %d", id, won, lost, workers-1)
		}
		if u := mustUpload(t, s, id); u.State != storage.UploadReceiving {
			t.Errorf("slot %s is in state %d after the claims", id, u.State)
		}
	}
	checkUserUploads(t, s, uOwner, "slot-0", "slot-1", "slot-2", "slot-3", "slot-4")
}

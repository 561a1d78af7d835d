package bbolt_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
)

var uploadT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// testUpload is a slot of owner, created i minutes after uploadT0 and
// expiring an hour later.
func testUpload(id, owner string, size int64, i int) storage.Upload {
	created := uploadT0.Add(time.Duration(i) * time.Minute)
	return storage.Upload{ID: id, Owner: owner, Filename: "file of " + id + ".txt", Size: size,
		ContentType: "text/plain", State: storage.UploadSlot, Created: created, Expires: created.Add(time.Hour)}
}

func createUpload(t *testing.T, s *bbolt.Store, u storage.Upload, lim storage.UploadLimits) {
	t.Helper()
	if err := s.CreateUpload(t.Context(), u, lim); err != nil {
		t.Fatalf("CreateUpload(%q): %v", u.ID, err)
	}
}

func userUploadIDs(t *testing.T, s *bbolt.Store, owner string) []string {
	t.Helper()
	us, err := s.UserUploads(t.Context(), owner)
	if err != nil {
		t.Fatalf("UserUploads(%q): %v", owner, err)
	}
	var ids []string
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	return ids
}

// Uploads survive closing and opening the file: records, states, order,
// the expiry index and the owners' totals.
func TestUploadsReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	// Reads and deletes before anything was stored work without the
	// bucket.
	if us, err := s.UserUploads(ctx, "alice@example.org"); err != nil || us != nil {
		t.Fatalf("UserUploads before the first write = %v, %v", us, err)
	}
	if us, err := s.ExpiredUploads(ctx, uploadT0.AddDate(1, 0, 0), 10); err != nil || len(us) != 0 {
		t.Fatalf("ExpiredUploads before the first write = %v, %v", us, err)
	}
	if err := s.DeleteUpload(ctx, "x"); err != nil {
		t.Fatalf("DeleteUpload before the first write: %v", err)
	}
	if _, err := s.Upload(ctx, "x"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Upload before the first write = %v", err)
	}
	if err := s.SetUploadState(ctx, "x", storage.UploadSlot, storage.UploadReceiving, time.Time{}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("SetUploadState before the first write = %v", err)
	}
	for i, id := range []string{"c", "a", "b"} {
		createUpload(t, s, testUpload(id, "alice@example.org", 100, 3-i), storage.UploadLimits{})
	}
	later := uploadT0.Add(48 * time.Hour)
	if err := s.SetUploadState(ctx, "c", storage.UploadSlot, storage.UploadComplete, later); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)

	s = open(t, path)
	if got := userUploadIDs(t, s, "alice@example.org"); !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Errorf("after reopening: %q, want [b a c]", got)
	}
	u, err := s.Upload(ctx, "c")
	if want := testUpload("c", "alice@example.org", 100, 3); err != nil || u.State != storage.UploadComplete || !u.Expires.Equal(later) || u.Filename != want.Filename || !u.Created.Equal(want.Created) {
		t.Errorf("Upload(c) after reopening = %+v, %v", u, err)
	}
	exp, err := s.ExpiredUploads(ctx, later, 10)
	if err != nil || len(exp) != 3 || exp[0].ID != "b" || exp[2].ID != "c" {
		t.Errorf("ExpiredUploads after reopening = %v, %v", exp, err)
	}
	// 300 bytes are stored: 50 more fit in 350, 51 do not.
	lim := storage.UploadLimits{MaxBytes: 350}
	if err := s.CreateUpload(ctx, testUpload("d", "alice@example.org", 51, 9), lim); !errors.Is(err, storage.ErrLimit) {
		t.Errorf("CreateUpload past MaxBytes after reopening = %v, want ErrLimit", err)
	}
	createUpload(t, s, testUpload("d", "alice@example.org", 50, 9), lim)
}

// Deleted uploads and an owner whose uploads are all deleted leave no
// byte in the file, nor do replaced expiries; others' uploads stay.
func TestUploadsRawWalk(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	const (
		gone = "deletedalice@example.org"
		kept = "keptbob@example.org"
	)
	createUpload(t, s, testUpload("gone-upload-1", gone, 10, 0), storage.UploadLimits{})
	createUpload(t, s, testUpload("gone-upload-2", gone, 10, 1), storage.UploadLimits{})
	createUpload(t, s, testUpload("kept-deleted-upload", kept, 10, 2), storage.UploadLimits{})
	createUpload(t, s, testUpload("kept-upload", kept, 10, 3), storage.UploadLimits{})
	// The expiry index entry of the old expiry goes with it.
	newExpiry := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.SetUploadState(ctx, "kept-upload", storage.UploadSlot, storage.UploadComplete, newExpiry); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"gone-upload-1", "gone-upload-2", "kept-deleted-upload"} {
		if err := s.DeleteUpload(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, s)

	all := everything(t, path)
	oldExpiry := string(expiryKeyTime(testUpload("kept-upload", kept, 10, 3).Expires))
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"uploads", true},
		{"deletedalice", false},
		{"gone-upload", false},
		{"file of gone", false},
		{"kept-deleted-upload", false},
		{"file of kept-deleted-upload", false},
		{oldExpiry + "kept-upload", false},
		{string(expiryKeyTime(newExpiry)) + "kept-upload", true},
		{"keptbob", true},
		{"file of kept-upload.txt", true},
	} {
		if got := containsAnywhere(all, tt.s); got != tt.want {
			t.Errorf("%q appears in the database: %v, want %v", tt.s, got, tt.want)
		}
	}
}

// expiryKeyTime is the 8-byte form of a time in the upload indexes: Unix
// microseconds, big-endian, sign bit flipped.
func expiryKeyTime(t time.Time) []byte {
	u := uint64(t.UnixMicro()) ^ 1<<63
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(u >> (56 - 8*i))
	}
	return b
}

// A damaged record or owner record makes what meets it fail with
// ErrCorrupt, not ErrNotFound; it is left as it is, and other owners'
// uploads are not affected.
func TestUploadsCorrupt(t *testing.T) {
	const owner, other = "alice@example.org", "bob@example.org"
	ownerBucket := func(top *bolt.Bucket) *bolt.Bucket { return top.Bucket([]byte("owners")).Bucket([]byte(owner)) }
	for _, tt := range []struct {
		name   string
		damage func(top *bolt.Bucket) error
		// fail names the calls that meet the damage.
		fail []string
	}{
		{"record", func(top *bolt.Bucket) error { return top.Bucket([]byte("ids")).Put([]byte("a"), []byte{1, 9}) },
			[]string{"UserUploads", "Upload", "SetUploadState", "DeleteUpload", "ExpiredUploads"}},
		{"owner record", func(top *bolt.Bucket) error { return ownerBucket(top).Put([]byte("meta"), []byte{7}) },
			[]string{"UserUploads", "CreateUpload", "DeleteUpload"}},
		{"owner without list", func(top *bolt.Bucket) error { return ownerBucket(top).DeleteBucket([]byte("list")) },
			[]string{"UserUploads", "CreateUpload", "DeleteUpload"}},
		{"list entry without record", func(top *bolt.Bucket) error {
			return ownerBucket(top).Bucket([]byte("list")).Put(append(expiryKeyTime(uploadT0), "zz"...), []byte{1})
		}, []string{"UserUploads"}},
		{"list entry size", func(top *bolt.Bucket) error {
			return ownerBucket(top).Bucket([]byte("list")).Put(append(expiryKeyTime(uploadT0), 'a'), []byte{0x80})
		}, []string{"CreateUpload"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "kiez.db")
			s := open(t, path)
			createUpload(t, s, testUpload("a", owner, 10, 0), storage.UploadLimits{})
			createUpload(t, s, testUpload("b", other, 10, 0), storage.UploadLimits{})
			mustClose(t, s)
			rawUpdate(t, path, func(tx *bolt.Tx) error { return tt.damage(tx.Bucket([]byte("uploads"))) })
			s = open(t, path)
			check := func(what string, err error) {
				t.Helper()
				switch {
				case slices.Contains(tt.fail, what):
					if !errors.Is(err, bbolt.ErrCorrupt) || errors.Is(err, storage.ErrNotFound) {
						t.Errorf("%s = %v, want ErrCorrupt", what, err)
					}
				case err != nil:
					t.Errorf("%s: %v", what, err)
				}
			}
			_, err := s.UserUploads(ctx, owner)
			check("UserUploads", err)
			_, err = s.Upload(ctx, "a")
			check("Upload", err)
			_, err = s.ExpiredUploads(ctx, uploadT0.AddDate(1, 0, 0), 10)
			check("ExpiredUploads", err)
			check("CreateUpload", s.CreateUpload(ctx, testUpload("new", owner, 1, 1), storage.UploadLimits{MaxDayBytes: 100, DayStart: uploadT0}))
			check("SetUploadState", s.SetUploadState(ctx, "a", storage.UploadSlot, storage.UploadReceiving, time.Time{}))
			check("DeleteUpload", s.DeleteUpload(ctx, "a"))
			if got := userUploadIDs(t, s, other); !slices.Equal(got, []string{"b"}) {
				t.Errorf("another owner's uploads: %q", got)
			}
			createUpload(t, s, testUpload("c", other, 10, 1), storage.UploadLimits{MaxBytes: 20})
		})
	}
}

// Concurrent creations that are refused share their transaction with
// creations that are not, and neither changes the other's outcome.
func TestUploadsRefusedInBatch(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "kiez.db"))
	createUpload(t, s, testUpload("taken", "x@example.org", 1, 0), storage.UploadLimits{})
	const workers = 24
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			owner := fmt.Sprintf("u%d@example.org", w)
			u := testUpload(fmt.Sprintf("id-%d", w), owner, 10, 0)
			var lim storage.UploadLimits
			switch w % 3 {
			case 1:
				lim.MaxBytes = 9 // refused
			case 2:
				u.ID = "taken" // refused
			}
			errs <- s.CreateUpload(ctx, u, lim)
		}()
	}
	refused := 0
	for range workers {
		if err := <-errs; errors.Is(err, storage.ErrLimit) || errors.Is(err, storage.ErrExists) {
			refused++
		} else if err != nil {
			t.Errorf("create: %v", err)
		}
	}
	if refused != 2*workers/3 {
		t.Errorf("%d creations refused, want %d", refused, 2*workers/3)
	}
	for w := range workers {
		got := userUploadIDs(t, s, fmt.Sprintf("u%d@example.org", w))
		if want := fmt.Sprintf("id-%d", w); (w%3 == 0) != slices.Equal(got, []string{want}) || (w%3 != 0 && got != nil) {
			t.Errorf("owner %d has uploads %q", w, got)
		}
	}
}

// IDs and owners are bolt keys: the longest fit, longer ones are invalid
// arguments.
func TestUploadsLongKeys(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "kiez.db"))
	longID, longOwner := strings.Repeat("i", 32760), strings.Repeat("o", 32768)
	createUpload(t, s, testUpload(longID, longOwner, 1, 0), storage.UploadLimits{MaxDayBytes: 10, DayStart: uploadT0})
	if got := userUploadIDs(t, s, longOwner); !slices.Equal(got, []string{longID}) {
		t.Errorf("UserUploads of the longest owner = %d uploads", len(got))
	}
	for _, u := range []storage.Upload{testUpload(longID+"i", "a@example.org", 1, 0), testUpload("id", longOwner+"o", 1, 0)} {
		if err := s.CreateUpload(ctx, u, storage.UploadLimits{}); err == nil || errors.Is(err, storage.ErrExists) || errors.Is(err, storage.ErrLimit) {
			t.Errorf("CreateUpload with an ID of %d bytes and an owner of %d = %v, want an invalid argument", len(u.ID), len(u.Owner), err)
		}
	}
	if err := s.DeleteUpload(ctx, longID); err != nil {
		t.Fatal(err)
	}
	if us, err := s.UserUploads(ctx, longOwner); err != nil || us != nil {
		t.Errorf("after DeleteUpload: %v, %v", us, err)
	}
}

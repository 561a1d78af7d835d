package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// The upload metadata (storage.Uploads) is Store.uploads: the uploads by
// ID, and per owner the IDs of their uploads and the sum of their sizes,
// so the total limit costs no scan. An owner's entry is made with their
// first upload and dropped with their last. The day limit, UserUploads
// and ExpiredUploads visit the owner's or every upload and sort what they
// return, which suits the sizes this backend is for.

// uploadTable is the upload metadata.
type uploadTable struct {
	byID   map[string]storage.Upload // stored copies, times truncated and in UTC
	owners map[string]*uploadOwner   // by bare JID
}

// uploadOwner is one owner's uploads.
type uploadOwner struct {
	ids   map[string]struct{}
	bytes int64 // the sum of their sizes
}

// uploadIn returns the copy of u that the store keeps, or an error if it
// cannot be stored.
func uploadIn(u storage.Upload, lim storage.UploadLimits) (storage.Upload, error) {
	if err := storage.CheckNewUpload(u, lim); err != nil {
		return u, err
	}
	u.Created = u.Created.Truncate(time.Microsecond).UTC()
	u.Expires = u.Expires.Truncate(time.Microsecond).UTC()
	return u, nil
}

// CreateUpload implements storage.Uploads.
func (s *Store) CreateUpload(ctx context.Context, u storage.Upload, lim storage.UploadLimits) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	in, err := uploadIn(u, lim)
	if err != nil {
		return fmt.Errorf("memory: create upload %q of %q: %w", u.ID, u.Owner, err)
	}
	u = in
	dayStart := lim.DayStart.Truncate(time.Microsecond)

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.uploads.byID[u.ID]; ok {
		return fmt.Errorf("memory: create upload %q of %q: %w", u.ID, u.Owner, storage.ErrExists)
	}
	o := s.uploads.owners[u.Owner]
	var total, day int64
	if o != nil {
		total = o.bytes
		if lim.MaxDayBytes > 0 {
			for id := range o.ids {
				if old := s.uploads.byID[id]; !old.Created.Before(dayStart) {
					day += old.Size
				}
			}
		}
	}
	if lim.MaxBytes > 0 && total+u.Size > lim.MaxBytes {
		return fmt.Errorf("memory: create upload %q of %q: %d bytes in all, more than %d: %w", u.ID, u.Owner, total+u.Size, lim.MaxBytes, storage.ErrLimit)
	}
	if lim.MaxDayBytes > 0 && day+u.Size > lim.MaxDayBytes {
		return fmt.Errorf("memory: create upload %q of %q: %d bytes since %v, more than %d: %w", u.ID, u.Owner, day+u.Size, dayStart.UTC(), lim.MaxDayBytes, storage.ErrLimit)
	}

	if s.uploads.byID == nil {
		s.uploads.byID = make(map[string]storage.Upload)
		s.uploads.owners = make(map[string]*uploadOwner)
	}
	if o == nil {
		o = &uploadOwner{ids: make(map[string]struct{})}
		s.uploads.owners[u.Owner] = o
	}
	s.uploads.byID[u.ID] = u
	o.ids[u.ID] = struct{}{}
	o.bytes += u.Size
	return nil
}

// Upload implements storage.Uploads.
func (s *Store) Upload(ctx context.Context, id string) (storage.Upload, error) {
	if err := ctx.Err(); err != nil {
		return storage.Upload{}, err
	}
	if id == "" {
		return storage.Upload{}, errors.New("memory: upload: empty ID")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.uploads.byID[id]
	if !ok {
		return storage.Upload{}, fmt.Errorf("memory: upload %q: %w", id, storage.ErrNotFound)
	}
	return u, nil
}

// SetUploadState implements storage.Uploads.
func (s *Store) SetUploadState(ctx context.Context, id string, from, to storage.UploadState, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if id == "" || !from.Valid() || !to.Valid() {
		return fmt.Errorf("memory: set state of upload %q from %d to %d: empty ID or unknown state", id, from, to)
	}
	if !expires.IsZero() {
		if err := storage.CheckUploadTime("expiry", expires); err != nil {
			return fmt.Errorf("memory: set state of upload %q: %w", id, err)
		}
		expires = expires.Truncate(time.Microsecond).UTC()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.uploads.byID[id]
	if !ok {
		return fmt.Errorf("memory: set state of upload %q: %w", id, storage.ErrNotFound)
	}
	if u.State != from {
		return fmt.Errorf("memory: set state of upload %q from %d to %d: it is in state %d: %w", id, from, to, u.State, storage.ErrExists)
	}
	u.State = to
	if !expires.IsZero() {
		u.Expires = expires
	}
	s.uploads.byID[id] = u
	return nil
}

// DeleteUpload implements storage.Uploads.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if id == "" {
		return errors.New("memory: delete upload: empty ID")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.uploads.byID[id]
	if !ok {
		return nil
	}
	delete(s.uploads.byID, id)
	o := s.uploads.owners[u.Owner]
	delete(o.ids, id)
	o.bytes -= u.Size
	if len(o.ids) == 0 {
		delete(s.uploads.owners, u.Owner)
	}
	return nil
}

// UserUploads implements storage.Uploads.
func (s *Store) UserUploads(ctx context.Context, owner string) ([]storage.Upload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if owner == "" {
		return nil, errors.New("memory: uploads of user: empty owner")
	}
	s.mu.RLock()
	var out []storage.Upload
	if o := s.uploads.owners[owner]; o != nil {
		out = make([]storage.Upload, 0, len(o.ids))
		for id := range o.ids {
			out = append(out, s.uploads.byID[id])
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b storage.Upload) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// ExpiredUploads implements storage.Uploads. It visits every upload.
func (s *Store) ExpiredUploads(ctx context.Context, t time.Time, max int) ([]storage.Upload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if max < 1 {
		return nil, fmt.Errorf("memory: expired uploads: max %d is less than 1", max)
	}
	s.mu.RLock()
	var out []storage.Upload
	for _, u := range s.uploads.byID {
		if !t.Before(u.Expires) {
			out = append(out, u)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b storage.Upload) int {
		if c := a.Expires.Compare(b.Expires); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(out) > max {
		out = slices.Clip(out[:max])
	}
	return out, nil
}

var _ storage.Uploads = (*Store)(nil)

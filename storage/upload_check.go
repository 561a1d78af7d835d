package storage

import (
	"errors"
	"fmt"
	"time"
)

// Valid reports whether s is one of the three upload states.
func (s UploadState) Valid() bool { return s >= UploadSlot && s <= UploadComplete }

// CheckUploadTime returns an error naming what if t lies outside years
// 1 to 9999, which no backend stores.
func CheckUploadTime(what string, t time.Time) error {
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%s %v outside years 1 to 9999", what, t)
	}
	return nil
}

// CheckNewUpload returns an error if the new upload u, with the limits
// lim, cannot be stored: what every backend's CreateUpload checks before
// it looks at its data.
func CheckNewUpload(u Upload, lim UploadLimits) error {
	switch {
	case u.ID == "" || u.Owner == "":
		return errors.New("empty ID or owner")
	case u.State != UploadSlot:
		return fmt.Errorf("state %d is not UploadSlot", u.State)
	case u.Size < 0:
		return fmt.Errorf("negative size %d", u.Size)
	case u.Expires.IsZero():
		return errors.New("no expiry")
	case lim.MaxBytes < 0 || lim.MaxDayBytes < 0:
		return fmt.Errorf("negative limit in %+v", lim)
	}
	if err := CheckUploadTime("created", u.Created); err != nil {
		return err
	}
	if err := CheckUploadTime("expiry", u.Expires); err != nil {
		return err
	}
	if lim.MaxDayBytes > 0 {
		return CheckUploadTime("day start", lim.DayStart)
	}
	return nil
}

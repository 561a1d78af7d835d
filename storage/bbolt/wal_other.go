//go:build !linux

package bbolt

import "os"

// fdatasync flushes f to the disk.
func fdatasync(f *os.File) error { return f.Sync() }

// syncDir tries to make the creation and removal of files in dir durable.
// Not every system can sync a directory (Windows cannot), so failing to is
// not an error.
func syncDir(dir string) error {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

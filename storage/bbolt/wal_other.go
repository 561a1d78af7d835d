//go:build !linux

package bbolt

import "os"

// fdatasync flushes f to the disk.
func fdatasync(f *os.File) error { return f.Sync() }

//go:build unix

package main

import (
	"os"
	"syscall"
)

// keepOwner gives the file path the owner of the directory dir, when
// root runs the command (sudo kiezd compact): the new file would
// otherwise belong to root, and kiezd, running as its own user, could not
// open it. Errors are ignored: the owner stays as it was.
func keepOwner(path, dir string) {
	if os.Geteuid() != 0 {
		return
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		os.Chown(path, int(st.Uid), int(st.Gid))
	}
}

//go:build linux

package main

import (
	"net"
	"os"
	"syscall"
)

// peerAllowed reports whether the process at the other end of conn runs
// as kiezd's user or as root, and which uid it runs as: a check besides
// the socket's mode, in case that was loosened.
func peerAllowed(conn *net.UnixConn) (bool, int) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return false, -1
	}
	var cred *syscall.Ucred
	var cerr error
	err = raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || cerr != nil {
		return false, -1
	}
	return cred.Uid == 0 || int(cred.Uid) == os.Getuid(), int(cred.Uid)
}

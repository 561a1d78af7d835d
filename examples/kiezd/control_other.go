//go:build !linux

package main

import "net"

// peerAllowed accepts every peer: elsewhere than on Linux, the socket's
// mode 0600 alone keeps other users out.
func peerAllowed(conn *net.UnixConn) (bool, int) { return true, -1 }

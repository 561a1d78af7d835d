//go:build !unix

package main

// keepOwner does nothing where files have no Unix owner.
func keepOwner(path, dir string) {}

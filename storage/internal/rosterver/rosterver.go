// Package rosterver is the roster version format of the storage backends
// in this module (storage/bbolt and storage/memory).
//
// A version is "<gen>.<n>": gen, in lowercase hexadecimal, is drawn at
// random when a user's roster is first written, so that a version of a
// deleted roster is never taken for one of the user's next roster; n, in
// decimal, counts the roster's modifications from 1. Clients treat the
// string as opaque (RFC 6121 §2.6); only the backends read it back.
package rosterver

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// Version is one version of one user's roster.
type Version struct {
	// Gen is drawn when the roster is created.
	Gen uint32
	// N counts the roster's modifications; 0 before the first.
	N uint64
}

// New returns the version of a roster about to be written for the first
// time: a fresh random Gen and N 0. Its first modification is New().Next().
func New() Version { return Version{Gen: rand.Uint32()} }

// Next returns the version after v's next modification.
func (v Version) Next() Version {
	v.N++
	return v
}

// At returns the version of the same roster at modification n.
func (v Version) At(n uint64) Version {
	v.N = n
	return v
}

// String returns the version as clients see it: "<gen in hex>.<n>".
func (v Version) String() string {
	return strconv.FormatUint(uint64(v.Gen), 16) + "." + strconv.FormatUint(v.N, 10)
}

// Parse reads a version made by String. ok is false for anything else.
func Parse(s string) (v Version, ok bool) {
	g, n, found := strings.Cut(s, ".")
	if !found {
		return Version{}, false
	}
	gen, err := strconv.ParseUint(g, 16, 32)
	if err != nil {
		return Version{}, false
	}
	v.N, err = strconv.ParseUint(n, 10, 64)
	if err != nil {
		return Version{}, false
	}
	v.Gen = uint32(gen)
	return v, true
}

// Since reports whether s is a still known version of the roster whose
// current version is v: one of the same Gen, not newer than v and not
// older than floor (the newest removal the roster forgot). It returns the
// modification count of s, after which the caller lists the changes.
func (v Version) Since(s string, floor uint64) (n uint64, ok bool) {
	old, ok := Parse(s)
	if !ok || old.Gen != v.Gen || old.N > v.N || old.N < floor {
		return 0, false
	}
	return old.N, true
}

package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// buildInfo is what the Go toolchain recorded about this binary: kiezd
// sets no version of its own, so a release is whatever `go install
// …@vX.Y.Z` or `go build` in a checkout recorded.
type buildInfo struct {
	// Module is the module kiezd was built from and Version its version:
	// a tag such as v0.3.0 for `go install …@v0.3.0`, a pseudo-version
	// (v0.0.0-20261206072840-333dd84abcde, with +dirty for uncommitted
	// changes) for `go build` in a checkout, "" for go run and builds
	// without version control information.
	Module, Version string
	// Revision is the commit built from, Time its commit time (Go records
	// no build time), Modified whether the checkout had uncommitted
	// changes; all empty unless the build recorded version control
	// information.
	Revision, Time string
	Modified       bool
	// Go is the Go version that built kiezd, such as go1.26.0.
	Go string
}

// readBuildInfo reads the build information of this binary.
func readBuildInfo() buildInfo {
	b := buildInfo{Module: "github.com/kiez-im/kiez", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if bi.Main.Path != "" {
		b.Module = bi.Main.Path
	}
	if v := bi.Main.Version; v != "(devel)" {
		b.Version = v
	}
	if bi.GoVersion != "" {
		b.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String returns the version kiezd reports, on its first line of
// `kiezd version` and in XEP-0092 answers: the module version if the
// build recorded one; else "devel" with the commit, as
// devel-333dd84abcde or devel-333dd84abcde+dirty; else "devel".
func (b buildInfo) String() string {
	switch {
	case b.Version != "":
		return b.Version
	case b.Revision != "":
		rev := b.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if b.Modified {
			rev += "+dirty"
		}
		return "devel-" + rev
	}
	return "devel"
}

// text is the output of kiezd version.
func (b buildInfo) text() string {
	var s strings.Builder
	fmt.Fprintf(&s, "kiezd %s\n", b)
	fmt.Fprintf(&s, "module    %s\n", b.Module)
	if b.Revision != "" {
		rev := b.Revision
		if b.Modified {
			rev += " (with uncommitted changes)"
		}
		fmt.Fprintf(&s, "revision  %s\n", rev)
	} else {
		fmt.Fprintf(&s, "revision  unknown (built without version control information, e.g. by go run)\n")
	}
	if b.Time != "" {
		fmt.Fprintf(&s, "committed %s\n", b.Time)
	}
	fmt.Fprintf(&s, "go        %s %s/%s\n", b.Go, runtime.GOOS, runtime.GOARCH)
	return s.String()
}

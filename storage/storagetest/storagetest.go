// Package storagetest checks implementations of the storage interfaces.
//
// Like testing/fstest and testing/slogtest, it holds one suite per interface
// and a Run function that runs every suite a backend satisfies. A backend's
// own tests call Run:
//
//	func TestStore(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) any {
//			return memory.New()
//		})
//	}
//
// Backends kept outside this module can import it the same way.
package storagetest

import "testing"

// Run runs, as a subtest each, every suite in this package whose interface
// the backend satisfies. newBackend must return a fresh, empty backend each
// time it is called and may use t to register cleanup (t.TempDir,
// t.Cleanup). Run fails the test if the backend satisfies none of the
// storage interfaces.
func Run(t *testing.T, newBackend func(t *testing.T) any) {
	t.Helper()
	suites := []suite{
		suiteFor("Accounts", TestAccounts),
		suiteFor("KV", TestKV),
		suiteFor("Roster", TestRoster),
		suiteFor("Offline", TestOffline),
		suiteFor("Archive", TestArchive),
		suiteFor("ArchiveReplacer", TestArchiveReplacer),
		suiteFor("UserData", TestUserData),
		suiteFor("Secrets", TestSecrets),
		suiteFor("ServiceData", TestServiceData),
		suiteFor("PEP", TestPEP),
		suiteFor("Uploads", TestUploads),
		suiteFor("MUC", TestMUC),
		// One line per storage interface, as new ones are added.
	}

	probe := newBackend(t)
	ran := false
	for _, s := range suites {
		if s.run(t, probe, newBackend) {
			ran = true
		}
	}
	if !ran {
		t.Fatalf("storagetest: backend %T implements no storage interface", probe)
	}
}

// A suite runs the tests for one storage interface.
type suite struct {
	// run runs the suite as a subtest of t and reports true, or reports
	// false without running it if probe does not satisfy the interface.
	run func(t *testing.T, probe any, newBackend func(t *testing.T) any) bool
}

// suiteFor makes a suite from a test function for interface S.
func suiteFor[S any](name string, test func(t *testing.T, newStore func(t *testing.T) S)) suite {
	return suite{run: func(t *testing.T, probe any, newBackend func(t *testing.T) any) bool {
		if _, ok := probe.(S); !ok {
			return false
		}
		t.Run(name, func(t *testing.T) {
			test(t, func(t *testing.T) S {
				t.Helper()
				b := newBackend(t)
				s, ok := b.(S)
				if !ok {
					t.Fatalf("storagetest: backend %T does not implement %s", b, name)
				}
				return s
			})
		})
		return true
	}}
}

package storagetest_test

import (
	"testing"

	"github.com/kiez-im/kiez/storage/memory"
	"github.com/kiez-im/kiez/storage/storagetest"
)

// A storage backend's test runs every suite for the interfaces it
// implements; backends outside this module do the same.
func ExampleRun() {
	testStore := func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) any {
			return memory.New() // a fresh, empty backend each time
		})
	}
	_ = testStore
}

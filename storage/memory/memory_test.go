package memory_test

import (
	"testing"

	"github.com/kiez-im/kiez/storage/memory"
	"github.com/kiez-im/kiez/storage/storagetest"
)

func TestStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) any {
		return memory.New()
	})
}

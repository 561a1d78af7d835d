package time_test

import (
	"os"
	"testing"
	"time"
)

// TestMain runs the tests with a local time zone far from UTC, so that an
// answer given in local time instead of UTC cannot pass on a machine
// whose zone is UTC.
func TestMain(m *testing.M) {
	time.Local = time.FixedZone("TEST", -11*3600)
	os.Exit(m.Run())
}

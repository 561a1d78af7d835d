package storage_test

import (
	"fmt"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// Accounts keep days, never times of day.
func ExampleDay() {
	login := time.Date(2026, 11, 25, 23, 30, 0, 0, time.FixedZone("CET", 3600))
	fmt.Println(storage.Day(login).Format(time.RFC3339))
	// Output: 2026-11-25T00:00:00Z
}

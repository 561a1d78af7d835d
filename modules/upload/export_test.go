package upload

import "time"

// SetNow replaces the module's clock, for tests of expiry.
func SetNow(m *Module, now func() time.Time) { m.now = now }

package invite

import "time"

// SetNow replaces the module's clock.
func SetNow(m *Module, now func() time.Time) { m.now = now }

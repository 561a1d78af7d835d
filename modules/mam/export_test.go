package mam

import "time"

// SetClock replaces the module's clock; call it before the server starts.
func SetClock(m *Module, now func() time.Time) { m.now = now }

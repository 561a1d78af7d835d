package adhoc

import "time"

// SetClock makes m read the time from now instead of time.Now, so that
// tests move session expiry forward by advancing a fake clock. Call it
// before the module serves.
func SetClock(m *Module, now func() time.Time) { m.now = now }

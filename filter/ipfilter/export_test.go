package ipfilter

import (
	"time"

	"github.com/kiez-im/kiez/storage"
)

// Clock is a clock a test sets.
type Clock struct{ T time.Time }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return c.T }

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) { c.T = c.T.Add(d) }

// NewAt is New with the filter's clock.
func NewAt(opts Options, store storage.ServiceData, now func() time.Time) (*Filter, error) {
	return newFilter(opts, store, now)
}

// Tracked returns how many networks the filter keeps counters for.
func (f *Filter) Tracked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.nets)
}

package mam

import (
	"context"
	"time"
)

// SetClock replaces the module's clock; call it before the server starts.
func SetClock(m *Module, now func() time.Time) { m.now = now }

// RunJanitor runs the janitor once.
func RunJanitor(ctx context.Context, m *Module) { m.expire(ctx) }

package carbons

// EnabledSessions returns how many sessions have carbons enabled, for
// tests that sessions are forgotten when they end.
func EnabledSessions(m *Module) int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.enabled)
}

package push

// InFlight returns how many pushes await their app server's answer, so
// that tests know when the next message can be pushed.
func (m *Module) InFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, d := range m.devices {
		if d.inflight {
			n++
		}
	}
	return n
}

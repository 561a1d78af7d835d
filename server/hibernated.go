package server

// Hibernated reports whether the session is waiting for its client to
// resume it (XEP-0198): its connection was lost, it is still bound and
// available and queues what is sent to it, but nothing reaches the
// client until a new connection resumes it. Push notifications
// (XEP-0357) go to such sessions' devices. A session that is closing
// is not hibernated.
func (s *Session) Hibernated() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return !s.closed && (s.conn == nil || s.broken) && s.sm != nil && s.sm.id != ""
}

package server

// ExpireDetachedNow fires at once the resumption timer of every session
// waiting for its client, as if the resumption timeout had passed, and
// returns how many it fired. Tests use it to end a detached session at a
// moment they choose instead of waiting for a timeout to pass.
func (s *Server) ExpireDetachedNow() int {
	s.smMu.Lock()
	waiting := make([]*Session, 0, len(s.smIDs))
	for _, sess := range s.smIDs {
		waiting = append(waiting, sess)
	}
	s.smMu.Unlock()
	n := 0
	for _, sess := range waiting {
		sess.qmu.Lock()
		if sess.conn == nil && !sess.resuming && !sess.closed && sess.sm != nil && sess.sm.timer != nil {
			sess.sm.timer.Reset(0) // runs the timer's own function: s.expire
			n++
		}
		sess.qmu.Unlock()
	}
	return n
}

package server

import "time"

// PassFASTTime moves the clock of the server's FAST tokens forward by d,
// so that tests can age tokens without waiting.
func (s *Server) PassFASTTime(d time.Duration) { s.fast.skew.Add(int64(d)) }

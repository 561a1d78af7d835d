package server

// BareTargets appends to dst the sessions, among sessions (one account's),
// that a message of type typ sent to the account's bare JID is delivered
// to (RFC 6121 §8.5.2.1): the available sessions of the highest
// non-negative priority, or every available session of non-negative
// priority for a headline. None means the message is undelivered (offline
// storage). The router delivers by this rule; modules that deliver or copy
// messages themselves (offline storage, carbons) use it to agree with it.
func BareTargets(dst, sessions []*Session, typ string) []*Session {
	best := -1
	for _, sess := range sessions {
		if sess.Available() && sess.Priority() > best {
			best = sess.Priority()
		}
	}
	if best < 0 {
		return dst
	}
	for _, sess := range sessions {
		if sess.Available() && sess.Priority() >= 0 && (typ == "headline" || sess.Priority() == best) {
			dst = append(dst, sess)
		}
	}
	return dst
}

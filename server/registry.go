package server

import (
	"sync"
)

// registry holds the bound sessions, keyed by bare JID.
type registry struct {
	mu    sync.RWMutex
	users map[string][]*Session
	n     int
}

func newRegistry() *registry {
	return &registry{users: make(map[string][]*Session)}
}

// bind adds sess; a session already bound to the same full JID is removed
// and returned so the caller can close it with <conflict/>.
func (r *registry) bind(sess *Session) (old *Session) {
	bare, res := sess.bare, sess.jid.Resourcepart()
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.users[bare]
	for i, s := range list {
		if s.jid.Resourcepart() == res {
			old = s
			list = append(list[:i:i], list[i+1:]...)
			r.n--
			break
		}
	}
	r.users[bare] = append(list, sess)
	r.n++
	return old
}

// remove drops sess if it is still registered and reports whether it was.
func (r *registry) remove(sess *Session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.users[sess.bare]
	for i, s := range list {
		if s == sess {
			// Copy so that slices handed out earlier stay valid.
			nl := make([]*Session, 0, len(list)-1)
			nl = append(nl, list[:i]...)
			nl = append(nl, list[i+1:]...)
			if len(nl) == 0 {
				delete(r.users, sess.bare)
			} else {
				r.users[sess.bare] = nl
			}
			r.n--
			return true
		}
	}
	return false
}

// userSessions returns the user's sessions. The slice must not be changed.
func (r *registry) userSessions(bare string) []*Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.users[bare]
}

// lookup returns the session bound to bare/resource, or nil.
func (r *registry) lookup(bare, resource string) *Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, s := range r.users[bare] {
		if s.jid.Resourcepart() == resource {
			return s
		}
	}
	return nil
}

func (r *registry) hasUser(bare string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.users[bare]) > 0
}

func (r *registry) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.n
}

func (r *registry) all() []*Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Session, 0, r.n)
	for _, l := range r.users {
		out = append(out, l...)
	}
	return out
}

package server

import "sync"

// SessionValue is one kind of state a module keeps per session, such as
// "this session fetched the roster" or "this session enabled carbons".
// The server holds the values with the session and drops them when the
// session ends, after the SessionEnders ran, so modules keep no maps
// keyed by sessions and need no cleanup. Make one SessionValue per kind
// with NewSessionValue, typically in the module's constructor; the zero
// SessionValue is not usable. It is safe for concurrent use.
type SessionValue[T any] struct {
	key *byte // identity of the kind; a byte, so each allocation is distinct
}

// NewSessionValue returns a new kind of session value.
func NewSessionValue[T any]() SessionValue[T] {
	return SessionValue[T]{key: new(byte)}
}

// sessionValues is a session's values: few, so a slice searched in order.
type sessionValues struct {
	mu      sync.Mutex
	values  []sessionValue
	dropped bool // the session ended: nothing is kept any more
}

type sessionValue struct {
	key *byte
	v   any
}

func (vs *sessionValues) find(key *byte) int {
	for i := range vs.values {
		if vs.values[i].key == key {
			return i
		}
	}
	return -1
}

// drop forgets every value; later sets are ignored.
func (vs *sessionValues) drop() {
	vs.mu.Lock()
	vs.values, vs.dropped = nil, true
	vs.mu.Unlock()
}

// Get returns the value s holds, and whether it holds one.
func (k SessionValue[T]) Get(s *Session) (T, bool) {
	vs := &s.values
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if i := vs.find(k.key); i >= 0 {
		return vs.values[i].v.(T), true
	}
	var zero T
	return zero, false
}

// Set makes s hold v. On a session that has ended it does nothing.
func (k SessionValue[T]) Set(s *Session, v T) {
	vs := &s.values
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.dropped {
		return
	}
	if i := vs.find(k.key); i >= 0 {
		vs.values[i].v = v
		return
	}
	vs.values = append(vs.values, sessionValue{key: k.key, v: v})
}

// GetOrSet returns the value s holds, first making it hold v if it holds
// none. On a session that has ended it returns v and keeps nothing.
func (k SessionValue[T]) GetOrSet(s *Session, v T) T {
	vs := &s.values
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if i := vs.find(k.key); i >= 0 {
		return vs.values[i].v.(T)
	}
	if !vs.dropped {
		vs.values = append(vs.values, sessionValue{key: k.key, v: v})
	}
	return v
}

// Delete makes s hold no value of this kind.
func (k SessionValue[T]) Delete(s *Session) {
	vs := &s.values
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if i := vs.find(k.key); i >= 0 {
		vs.values = append(vs.values[:i], vs.values[i+1:]...)
	}
}

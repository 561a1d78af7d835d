package server

import "context"

// StreamValue is one kind of state a module keeps for a client's stream
// while it is negotiated, before any session exists, such as "this
// stream presented a valid invitation token" (XEP-0445). The handlers of
// a StreamFeature's IQRoutes reach it through their context; the server
// drops the values when the connection ends. Make one StreamValue per
// kind with NewStreamValue; the zero StreamValue is not usable. It is
// safe for concurrent use.
type StreamValue[T any] struct {
	key *byte
}

// NewStreamValue returns a new kind of stream value.
func NewStreamValue[T any]() StreamValue[T] {
	return StreamValue[T]{key: new(byte)}
}

// streamValuesKey is the context key of a negotiating stream's values.
type streamValuesKey struct{}

func streamValues(ctx context.Context) *sessionValues {
	vs, _ := ctx.Value(streamValuesKey{}).(*sessionValues)
	return vs
}

// Get returns the value the stream of ctx holds, and whether it holds
// one. Outside a stream feature's iq handler it holds none.
func (k StreamValue[T]) Get(ctx context.Context) (T, bool) {
	var zero T
	vs := streamValues(ctx)
	if vs == nil {
		return zero, false
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if i := vs.find(k.key); i >= 0 {
		return vs.values[i].v.(T), true
	}
	return zero, false
}

// Set makes the stream of ctx hold v. It reports false, keeping nothing,
// outside a stream feature's iq handler or once the connection ended.
func (k StreamValue[T]) Set(ctx context.Context, v T) bool {
	vs := streamValues(ctx)
	if vs == nil {
		return false
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.dropped {
		return false
	}
	if i := vs.find(k.key); i >= 0 {
		vs.values[i].v = v
		return true
	}
	vs.values = append(vs.values, sessionValue{key: k.key, v: v})
	return true
}

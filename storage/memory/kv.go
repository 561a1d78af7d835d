package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kiez-im/kiez/storage"
)

// The KV store is Store.kv: values by user, then key. It is made by the
// first Put; a user's map is dropped with its last key.

// Get implements storage.KV.
func (s *Store) Get(ctx context.Context, user, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.kv[user][key]
	if !ok {
		return nil, fmt.Errorf("memory: kv %q of %q: %w", key, user, storage.ErrNotFound)
	}
	return append([]byte{}, v...), nil
}

// Put implements storage.KV.
func (s *Store) Put(ctx context.Context, user, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if user == "" || key == "" {
		return errors.New("memory: kv put: empty user or key")
	}
	value = append([]byte{}, value...)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv == nil {
		s.kv = make(map[string]map[string][]byte)
	}
	m := s.kv[user]
	if m == nil {
		m = make(map[string][]byte)
		s.kv[user] = m
	}
	m[key] = value
	return nil
}

// Delete implements storage.KV.
func (s *Store) Delete(ctx context.Context, user, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.kv[user]
	delete(m, key)
	if m != nil && len(m) == 0 {
		delete(s.kv, user)
	}
	return nil
}

// Keys implements storage.KV.
func (s *Store) Keys(ctx context.Context, user string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	var keys []string
	for k := range s.kv[user] {
		keys = append(keys, k)
	}
	s.mu.RUnlock()
	slices.Sort(keys)
	return keys, nil
}

// DeleteUser implements storage.KV.
func (s *Store) DeleteUser(ctx context.Context, user string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.kv, user)
	return nil
}

var _ storage.KV = (*Store)(nil)

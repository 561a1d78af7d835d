package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// The service data (storage.ServiceData) is Store.service: entries by
// namespace, then key. A namespace's map is made by its first put and
// dropped with its last entry. ServiceKeys sorts the live keys of its range
// on every call and ExpireServiceData visits every entry, which suits the
// sizes this backend is for.

// serviceEntry is one entry of the service data.
type serviceEntry struct {
	value   []byte
	expires time.Time // the zero Time for none
}

// live reports whether e has not expired at now.
func (e serviceEntry) live(now time.Time) bool {
	return e.expires.IsZero() || now.Before(e.expires)
}

var errNoNamespace = errors.New("memory: service data: empty namespace")

// ServiceValue implements storage.ServiceData.
func (s *Store) ServiceValue(ctx context.Context, namespace, key string) ([]byte, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, err
	}
	if namespace == "" {
		return nil, time.Time{}, errNoNamespace
	}
	now := time.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.service[namespace][key]
	if !ok || !e.live(now) {
		return nil, time.Time{}, fmt.Errorf("memory: service value %q in %q: %w", key, namespace, storage.ErrNotFound)
	}
	return append([]byte{}, e.value...), e.expires, nil
}

// PutServiceValue implements storage.ServiceData.
func (s *Store) PutServiceValue(ctx context.Context, namespace, key string, value []byte, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if namespace == "" || key == "" {
		return fmt.Errorf("memory: put service value %q in %q: empty namespace or key", key, namespace)
	}
	if y := expires.UTC().Year(); !expires.IsZero() && (y < 1 || y > 9999) {
		return fmt.Errorf("memory: put service value %q in %q: expiry %v outside years 1 to 9999", key, namespace, expires)
	}
	e := serviceEntry{value: append([]byte{}, value...)}
	if !expires.IsZero() {
		e.expires = expires.Truncate(time.Microsecond).UTC()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.service == nil {
		s.service = make(map[string]map[string]serviceEntry)
	}
	m := s.service[namespace]
	if m == nil {
		m = make(map[string]serviceEntry)
		s.service[namespace] = m
	}
	m[key] = e
	return nil
}

// DeleteServiceValue implements storage.ServiceData.
func (s *Store) DeleteServiceValue(ctx context.Context, namespace, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if namespace == "" {
		return errNoNamespace
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.service[namespace]
	delete(m, key)
	if m != nil && len(m) == 0 {
		delete(s.service, namespace)
	}
	return nil
}

// ServiceKeys implements storage.ServiceData.
func (s *Store) ServiceKeys(ctx context.Context, namespace string, q storage.ServiceKeysQuery) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if namespace == "" {
		return nil, errNoNamespace
	}
	if q.Max < 1 {
		return nil, fmt.Errorf("memory: service keys of %q: Max %d is less than 1", namespace, q.Max)
	}
	now := time.Now()
	s.mu.RLock()
	var keys []string
	for k, e := range s.service[namespace] {
		if k > q.After && strings.HasPrefix(k, q.Prefix) && e.live(now) {
			keys = append(keys, k)
		}
	}
	s.mu.RUnlock()
	slices.Sort(keys)
	if len(keys) > q.Max {
		keys = slices.Clip(keys[:q.Max])
	}
	return keys, nil
}

// DeleteServiceNamespace implements storage.ServiceData.
func (s *Store) DeleteServiceNamespace(ctx context.Context, namespace string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if namespace == "" {
		return errNoNamespace
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.service, namespace)
	return nil
}

// ExpireServiceData implements storage.ServiceData. It visits every entry,
// and with a limit sorts the due ones to remove the soonest first.
func (s *Store) ExpireServiceData(ctx context.Context, t time.Time, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type dueEntry struct {
		ns, key string
		expires time.Time
	}
	var due []dueEntry
	for ns, m := range s.service {
		for k, e := range m {
			if !e.expires.IsZero() && !t.Before(e.expires) {
				due = append(due, dueEntry{ns, k, e.expires})
			}
		}
	}
	if limit > 0 && len(due) > limit {
		slices.SortFunc(due, func(a, b dueEntry) int {
			if c := a.expires.Compare(b.expires); c != 0 {
				return c
			}
			if c := strings.Compare(a.ns, b.ns); c != 0 {
				return c
			}
			return strings.Compare(a.key, b.key)
		})
		due = due[:limit]
	}
	for _, d := range due {
		m := s.service[d.ns]
		delete(m, d.key)
		if len(m) == 0 {
			delete(s.service, d.ns)
		}
	}
	return len(due), nil
}

var _ storage.ServiceData = (*Store)(nil)

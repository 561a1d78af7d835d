package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// offlineQueue is one user's offline messages in Seq order, guarded by
// Store.mu. It is made by the first push and kept, for its Seq counter,
// until DeleteOfflineUser, so that a Seq is never reused while a delivery
// may still delete up to it.
type offlineQueue struct {
	seq  uint64 // last Seq assigned
	msgs []storage.OfflineMessage
}

// PushOffline implements storage.Offline.
func (s *Store) PushOffline(ctx context.Context, user string, msg storage.OfflineMessage, limit int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if user == "" {
		return errors.New("memory: push offline: empty user")
	}
	msg.Stored = msg.Stored.Truncate(time.Second).UTC()
	msg.Data = append([]byte{}, msg.Data...)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.offline == nil {
		s.offline = make(map[string]*offlineQueue)
	}
	q := s.offline[user]
	if q == nil {
		q = &offlineQueue{}
		s.offline[user] = q
	}
	if limit > 0 && len(q.msgs) >= limit {
		return fmt.Errorf("memory: push offline for %q: %d messages queued: %w", user, len(q.msgs), storage.ErrFull)
	}
	q.seq++
	msg.Seq = q.seq
	q.msgs = append(q.msgs, msg)
	return nil
}

// OfflineMessages implements storage.Offline.
func (s *Store) OfflineMessages(ctx context.Context, user string) ([]storage.OfflineMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	q := s.offline[user]
	if q == nil || len(q.msgs) == 0 {
		return nil, nil
	}
	out := make([]storage.OfflineMessage, len(q.msgs))
	for i, m := range q.msgs {
		m.Data = append([]byte{}, m.Data...)
		out[i] = m
	}
	return out, nil
}

// CountOffline implements storage.Offline.
func (s *Store) CountOffline(ctx context.Context, user string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if q := s.offline[user]; q != nil {
		return len(q.msgs), nil
	}
	return 0, nil
}

// DeleteOffline implements storage.Offline.
func (s *Store) DeleteOffline(ctx context.Context, user string, upTo uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.offline[user]
	if q == nil {
		return nil
	}
	n, _ := slices.BinarySearchFunc(q.msgs, upTo, func(m storage.OfflineMessage, upTo uint64) int {
		if m.Seq <= upTo {
			return -1
		}
		return 1
	})
	q.msgs = slices.Delete(q.msgs, 0, n)
	return nil
}

// ExpireOffline implements storage.Offline.
func (s *Store) ExpireOffline(ctx context.Context, t time.Time, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	removed := 0
	for _, q := range s.offline {
		if limit > 0 && removed >= limit {
			break
		}
		q.msgs = slices.DeleteFunc(q.msgs, func(m storage.OfflineMessage) bool {
			if limit > 0 && removed >= limit || !m.Stored.Before(t) {
				return false
			}
			removed++
			return true
		})
	}
	return removed, nil
}

// DeleteOfflineUser implements storage.Offline.
func (s *Store) DeleteOfflineUser(ctx context.Context, user string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.offline, user)
	return nil
}

var _ storage.Offline = (*Store)(nil)

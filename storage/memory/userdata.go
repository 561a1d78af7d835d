package memory

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/kiez-im/kiez/storage"
)

var (
	_ storage.UserDataDeleter = (*Store)(nil)
	_ storage.Secrets         = (*Store)(nil)
)

// DeleteUserData implements storage.UserDataDeleter: it removes user's
// roster, key-value data, offline messages and archive, through
// storage.DeleteEveryKind.
func (s *Store) DeleteUserData(ctx context.Context, user string) error {
	return storage.DeleteEveryKind(ctx, s, user)
}

// Secret implements storage.Secrets. Secrets live as long as the Store.
func (s *Store) Secret(ctx context.Context, name string, size int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if name == "" || size <= 0 {
		return nil, fmt.Errorf("memory: secret %q of %d bytes: invalid", name, size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.secrets[name]; ok {
		if len(b) != size {
			return nil, fmt.Errorf("memory: secret %q has %d bytes, not %d", name, len(b), size)
		}
		return append([]byte{}, b...), nil
	}
	b := make([]byte, size)
	rand.Read(b)
	if s.secrets == nil {
		s.secrets = make(map[string][]byte)
	}
	s.secrets[name] = b
	return append([]byte{}, b...), nil
}

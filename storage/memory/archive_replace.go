package memory

import (
	"context"
	"fmt"

	"github.com/kiez-im/kiez/storage"
)

var _ storage.ArchiveReplacer = (*Store)(nil)

// ReplaceArchived implements storage.ArchiveReplacer.
func (s *Store) ReplaceArchived(ctx context.Context, user string, id uint64, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data = append([]byte{}, data...)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.archive[user]
	if a == nil {
		return fmt.Errorf("memory: replace archived message: %w", storage.ErrNotFound)
	}
	i := a.index(id)
	if i >= len(a.msgs) || a.msgs[i].ID != id {
		return fmt.Errorf("memory: replace archived message: %w", storage.ErrNotFound)
	}
	a.msgs[i].Data = data
	return nil
}

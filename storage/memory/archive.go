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

// userArchive is one user's archive, guarded by Store.mu. Messages are only
// ever appended at the end and removed from the front (expiry) or all at
// once, so both slices stay sorted by ID.
type userArchive struct {
	last   uint64                    // last ID assigned, kept after expiry
	msgs   []storage.ArchivedMessage // by ID
	byBare map[string][]uint64       // IDs by the bare JID of With
}

// bareJID returns the bare part of jid.
func bareJID(jid string) string {
	bare, _, _ := strings.Cut(jid, "/")
	return bare
}

// AppendArchive implements storage.Archive.
func (s *Store) AppendArchive(ctx context.Context, user string, at time.Time, with string, data []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if user == "" {
		return 0, errors.New("memory: append archive: empty user")
	}
	data = append([]byte{}, data...)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.archive == nil {
		s.archive = make(map[string]*userArchive)
	}
	a := s.archive[user]
	if a == nil {
		a = &userArchive{byBare: make(map[string][]uint64)}
		s.archive[user] = a
	}
	id := max(storage.TimeID(at), a.last+1)
	a.last = id
	a.msgs = append(a.msgs, storage.ArchivedMessage{ID: id, With: with, Data: data})
	bare := bareJID(with)
	a.byBare[bare] = append(a.byBare[bare], id)
	return id, nil
}

// index returns the position of the first message with an ID >= id.
func (a *userArchive) index(id uint64) int {
	i, _ := slices.BinarySearchFunc(a.msgs, id, func(m storage.ArchivedMessage, id uint64) int {
		switch {
		case m.ID < id:
			return -1
		case m.ID > id:
			return 1
		}
		return 0
	})
	return i
}

// QueryArchive implements storage.Archive.
func (s *Store) QueryArchive(ctx context.Context, user string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	if err := ctx.Err(); err != nil {
		return storage.ArchivePage{}, err
	}
	if q.Max < 1 {
		return storage.ArchivePage{}, fmt.Errorf("memory: query archive: Max %d is below 1", q.Max)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	a := s.archive[user]
	if a == nil {
		return storage.ArchivePage{Complete: true}, nil
	}

	lo, hi := q.After+1, q.Before // [lo, hi); hi 0 means unbounded
	if q.After == ^uint64(0) || (hi != 0 && lo >= hi) {
		return storage.ArchivePage{Complete: true}, nil
	}
	inRange := func(id uint64) bool { return id >= lo && (hi == 0 || id < hi) }
	// The candidates are either the IDs asked for or those of the party's
	// messages (a sorted list), or else all messages in the bounds; match
	// then applies every filter.
	var ids []uint64
	switch {
	case len(q.IDs) > 0:
		ids = slices.Clone(q.IDs)
		slices.Sort(ids)
		ids = slices.Compact(ids)
	case q.With != "":
		ids = a.byBare[bareJID(q.With)]
	}
	var cands []uint64
	useIDs := len(q.IDs) > 0 || q.With != ""
	if useIDs {
		from, _ := slices.BinarySearch(ids, lo)
		to := len(ids)
		if hi != 0 {
			to, _ = slices.BinarySearch(ids, hi)
		}
		cands = ids[from:max(to, from)]
	}
	from := a.index(lo)
	to := len(a.msgs)
	if hi != 0 {
		to = a.index(hi)
	}

	count := len(cands)
	if !useIDs {
		count = max(to-from, 0)
	}
	// match returns the n-th candidate's message if it passes every filter.
	match := func(n int) (storage.ArchivedMessage, bool) {
		var m storage.ArchivedMessage
		if useIDs {
			i := a.index(cands[n])
			if i == len(a.msgs) || a.msgs[i].ID != cands[n] {
				return m, false
			}
			m = a.msgs[i]
		} else {
			m = a.msgs[from+n]
		}
		if !inRange(m.ID) {
			return m, false
		}
		if q.With != "" && m.With != q.With && (strings.Contains(q.With, "/") || bareJID(m.With) != q.With) {
			return m, false
		}
		return m, true
	}

	var page storage.ArchivePage
	page.Complete = true
	for k := range count {
		n := k
		if q.Reverse {
			n = count - 1 - k
		}
		m, ok := match(n)
		if !ok {
			continue
		}
		if len(page.Messages) == q.Max {
			page.Complete = false
			break
		}
		m.Data = append([]byte{}, m.Data...)
		page.Messages = append(page.Messages, m)
	}
	if q.Reverse {
		slices.Reverse(page.Messages)
	}
	return page, nil
}

// ArchiveStats implements storage.Archive.
func (s *Store) ArchiveStats(ctx context.Context, user string) (storage.ArchiveStats, error) {
	if err := ctx.Err(); err != nil {
		return storage.ArchiveStats{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	a := s.archive[user]
	if a == nil || len(a.msgs) == 0 {
		return storage.ArchiveStats{}, nil
	}
	first, last := a.msgs[0], a.msgs[len(a.msgs)-1]
	first.Data, last.Data = nil, nil
	return storage.ArchiveStats{Count: len(a.msgs), First: first, Last: last}, nil
}

// expireCut returns the lowest ID kept by an expiry at t: messages
// archived before t, to the nanosecond.
func expireCut(t time.Time) uint64 {
	cut := storage.TimeID(t)
	if t.UnixMicro() >= 0 && t.Nanosecond()%1000 != 0 {
		cut++
	}
	return cut
}

// expireFront removes the messages with IDs below cut from the front of a,
// at most max of them (max <= 0: no limit), and returns how many. It costs
// O(log n + removed): the kept messages are not moved (the slices are cut
// at the front; append copies them when it next grows the array).
func (a *userArchive) expireFront(cut uint64, max int) int {
	n := a.index(cut)
	if max > 0 && n > max {
		n = max
	}
	if n == 0 {
		return 0
	}
	for _, m := range a.msgs[:n] {
		// Messages leave in ID order, so each is the first of its
		// party's list.
		bare := bareJID(m.With)
		if rest := a.byBare[bare][1:]; len(rest) > 0 {
			a.byBare[bare] = rest
		} else {
			delete(a.byBare, bare)
		}
	}
	clear(a.msgs[:n]) // let the removed messages' data go
	a.msgs = a.msgs[n:]
	if len(a.msgs) == 0 {
		a.msgs = nil
	}
	return n
}

// ExpireArchive implements storage.Archive.
func (s *Store) ExpireArchive(ctx context.Context, t time.Time, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cut := expireCut(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	removed := 0
	for _, a := range s.archive {
		if limit > 0 && removed >= limit {
			break
		}
		removed += a.expireFront(cut, max(limit-removed, 0))
	}
	return removed, nil
}

// ExpireUserArchive implements storage.Archive.
func (s *Store) ExpireUserArchive(ctx context.Context, user string, t time.Time, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.archive[user]
	if a == nil {
		return 0, nil
	}
	return a.expireFront(expireCut(t), limit), nil
}

// DeleteArchive implements storage.Archive.
func (s *Store) DeleteArchive(ctx context.Context, user string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.archive, user)
	return nil
}

var _ storage.Archive = (*Store)(nil)

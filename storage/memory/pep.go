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

// The PEP store (storage.PEP) is Store.pep: per user, the nodes by name
// and the total size of all their items; per node, its configuration, its
// items in a slice, oldest first, and their total size. A user's entry is
// made with their first node and dropped with their last. Publishing,
// retracting and reading by ID search a node's slice, which suits the
// sizes this backend is for.

// pepUser is one user's nodes.
type pepUser struct {
	nodes map[string]*pepNode // by name
	bytes int64               // the sum of the nodes' bytes
}

// pepNode is one node. Its items are stored copies, Published truncated
// and in UTC.
type pepNode struct {
	config []byte
	items  []storage.PEPItem // oldest first
	bytes  int64             // the sum of pepItemSize of items
}

// pepItemSize is what an item counts towards storage.PEPLimits.MaxBytes.
func pepItemSize(it storage.PEPItem) int64 { return int64(len(it.ID)) + int64(len(it.Payload)) }

// checkPEPLimits rejects negative limits.
func checkPEPLimits(lim storage.PEPLimits) error {
	if lim.MaxItems < 0 || lim.MaxNodes < 0 || lim.MaxBytes < 0 {
		return fmt.Errorf("negative limit in %+v", lim)
	}
	return nil
}

// pepItemIn returns the copy of it that the store keeps, or an error if it
// cannot be stored.
func pepItemIn(it storage.PEPItem) (storage.PEPItem, error) {
	if it.ID == "" {
		return storage.PEPItem{}, errors.New("empty item ID")
	}
	if y := it.Published.UTC().Year(); y < 1 || y > 9999 {
		return storage.PEPItem{}, fmt.Errorf("published %v outside years 1 to 9999", it.Published)
	}
	it.Payload = append([]byte{}, it.Payload...)
	it.Published = it.Published.Truncate(time.Microsecond).UTC()
	return it, nil
}

// pepNodeOf returns user's node, or nil. Callers hold s.mu.
func (s *Store) pepNodeOf(user, node string) (*pepUser, *pepNode) {
	u := s.pep[user]
	if u == nil {
		return nil, nil
	}
	return u, u.nodes[node]
}

func (n *pepNode) out(name string) storage.PEPNode {
	return storage.PEPNode{Name: name, Config: append([]byte{}, n.config...), Items: len(n.items), Bytes: n.bytes}
}

// trim drops n's oldest items beyond max (if max > 0) and returns their
// IDs, oldest first.
func (n *pepNode) trim(u *pepUser, max int) []string {
	if max <= 0 || len(n.items) <= max {
		return nil
	}
	k := len(n.items) - max
	dropped := make([]string, k)
	for i, it := range n.items[:k] {
		dropped[i] = it.ID
		n.bytes -= pepItemSize(it)
		u.bytes -= pepItemSize(it)
	}
	n.items = slices.Clone(n.items[k:])
	return dropped
}

// PEPNodes implements storage.PEP.
func (s *Store) PEPNodes(ctx context.Context, user string) ([]storage.PEPNode, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.pep[user]
	if u == nil {
		return nil, nil
	}
	nodes := make([]storage.PEPNode, 0, len(u.nodes))
	for name, n := range u.nodes {
		nodes = append(nodes, n.out(name))
	}
	slices.SortFunc(nodes, func(a, b storage.PEPNode) int { return strings.Compare(a.Name, b.Name) })
	return nodes, nil
}

// PEPNode implements storage.PEP.
func (s *Store) PEPNode(ctx context.Context, user, node string) (storage.PEPNode, error) {
	if err := ctx.Err(); err != nil {
		return storage.PEPNode{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, n := s.pepNodeOf(user, node)
	if n == nil {
		return storage.PEPNode{}, fmt.Errorf("memory: pep node %q of %q: %w", node, user, storage.ErrNotFound)
	}
	return n.out(node), nil
}

// CreatePEPNode implements storage.PEP.
func (s *Store) CreatePEPNode(ctx context.Context, user string, node storage.PEPNode, lim storage.PEPLimits) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if user == "" || node.Name == "" {
		return fmt.Errorf("memory: create pep node %q of %q: empty user or node", node.Name, user)
	}
	if err := checkPEPLimits(lim); err != nil {
		return fmt.Errorf("memory: create pep node %q of %q: %w", node.Name, user, err)
	}
	config := append([]byte{}, node.Config...)

	s.mu.Lock()
	defer s.mu.Unlock()
	u, n := s.pepNodeOf(user, node.Name)
	if n != nil {
		return fmt.Errorf("memory: create pep node %q of %q: %w", node.Name, user, storage.ErrExists)
	}
	if u != nil && lim.MaxNodes > 0 && len(u.nodes) >= lim.MaxNodes {
		return fmt.Errorf("memory: create pep node %q of %q: %d nodes: %w", node.Name, user, len(u.nodes), storage.ErrLimit)
	}
	s.addPEPNode(user, u, node.Name, config)
	return nil
}

// addPEPNode adds an empty node to user, whose entry is u (nil if the
// user has none yet), and returns it. Callers hold s.mu.
func (s *Store) addPEPNode(user string, u *pepUser, name string, config []byte) *pepNode {
	if u == nil {
		u = &pepUser{nodes: make(map[string]*pepNode)}
		if s.pep == nil {
			s.pep = make(map[string]*pepUser)
		}
		s.pep[user] = u
	}
	n := &pepNode{config: config}
	u.nodes[name] = n
	return n
}

// ConfigurePEPNode implements storage.PEP.
func (s *Store) ConfigurePEPNode(ctx context.Context, user, node string, config []byte, lim storage.PEPLimits) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkPEPLimits(lim); err != nil {
		return fmt.Errorf("memory: configure pep node %q of %q: %w", node, user, err)
	}
	config = append([]byte{}, config...)

	s.mu.Lock()
	defer s.mu.Unlock()
	u, n := s.pepNodeOf(user, node)
	if n == nil {
		return fmt.Errorf("memory: configure pep node %q of %q: %w", node, user, storage.ErrNotFound)
	}
	n.config = config
	n.trim(u, lim.MaxItems)
	return nil
}

// DeletePEPNode implements storage.PEP.
func (s *Store) DeletePEPNode(ctx context.Context, user, node string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, n := s.pepNodeOf(user, node)
	if n == nil {
		return fmt.Errorf("memory: delete pep node %q of %q: %w", node, user, storage.ErrNotFound)
	}
	u.bytes -= n.bytes
	delete(u.nodes, node)
	if len(u.nodes) == 0 {
		delete(s.pep, user)
	}
	return nil
}

// PublishPEPItem implements storage.PEP.
func (s *Store) PublishPEPItem(ctx context.Context, user, node string, config []byte, item storage.PEPItem, lim storage.PEPLimits) (bool, []string, error) {
	if err := ctx.Err(); err != nil {
		return false, nil, err
	}
	if user == "" || node == "" {
		return false, nil, fmt.Errorf("memory: publish to pep node %q of %q: empty user or node", node, user)
	}
	in, err := pepItemIn(item)
	if err == nil {
		err = checkPEPLimits(lim)
	}
	if err != nil {
		return false, nil, fmt.Errorf("memory: publish %q to pep node %q of %q: %w", item.ID, node, user, err)
	}
	item = in
	config = append([]byte{}, config...)

	s.mu.Lock()
	defer s.mu.Unlock()
	u, n := s.pepNodeOf(user, node)
	created := n == nil
	if created && u != nil && lim.MaxNodes > 0 && len(u.nodes) >= lim.MaxNodes {
		return false, nil, fmt.Errorf("memory: publish %q to new pep node %q of %q: %d nodes: %w", item.ID, node, user, len(u.nodes), storage.ErrLimit)
	}
	// The node's items but the one replaced, oldest first: the first
	// drop of them are dropped, the others kept.
	var (
		rest     []storage.PEPItem
		replaced int64
	)
	if n != nil {
		rest = make([]storage.PEPItem, 0, len(n.items))
		for _, it := range n.items {
			if it.ID == item.ID {
				replaced = pepItemSize(it)
			} else {
				rest = append(rest, it)
			}
		}
	}
	drop := 0
	if lim.MaxItems > 0 {
		drop = max(0, len(rest)+1-lim.MaxItems)
	}
	delta := pepItemSize(item) - replaced
	for _, it := range rest[:drop] {
		delta -= pepItemSize(it)
	}
	var total int64
	if u != nil {
		total = u.bytes
	}
	if lim.MaxBytes > 0 && total+delta > lim.MaxBytes {
		return false, nil, fmt.Errorf("memory: publish %q to pep node %q of %q: %d bytes in all: %w", item.ID, node, user, total+delta, storage.ErrLimit)
	}

	if created {
		n = s.addPEPNode(user, u, node, config)
		u = s.pep[user]
	}
	var dropped []string
	for _, it := range rest[:drop] {
		dropped = append(dropped, it.ID)
	}
	items := make([]storage.PEPItem, 0, len(rest)-drop+1)
	n.items = append(append(items, rest[drop:]...), item)
	n.bytes += delta
	u.bytes += delta
	return created, dropped, nil
}

// RetractPEPItem implements storage.PEP.
func (s *Store) RetractPEPItem(ctx context.Context, user, node, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, n := s.pepNodeOf(user, node)
	if n == nil {
		return fmt.Errorf("memory: retract %q from pep node %q of %q: %w", id, node, user, storage.ErrNotFound)
	}
	i := slices.IndexFunc(n.items, func(it storage.PEPItem) bool { return it.ID == id })
	if i < 0 {
		return fmt.Errorf("memory: retract %q from pep node %q of %q: no such item: %w", id, node, user, storage.ErrNotFound)
	}
	size := pepItemSize(n.items[i])
	n.items = slices.Delete(n.items, i, i+1)
	n.bytes -= size
	u.bytes -= size
	return nil
}

// PurgePEPNode implements storage.PEP.
func (s *Store) PurgePEPNode(ctx context.Context, user, node string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, n := s.pepNodeOf(user, node)
	if n == nil {
		return fmt.Errorf("memory: purge pep node %q of %q: %w", node, user, storage.ErrNotFound)
	}
	u.bytes -= n.bytes
	n.items, n.bytes = nil, 0
	return nil
}

// PEPItems implements storage.PEP.
func (s *Store) PEPItems(ctx context.Context, user, node string, ids []string, max int) ([]storage.PEPItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, n := s.pepNodeOf(user, node)
	if n == nil {
		return nil, fmt.Errorf("memory: items of pep node %q of %q: %w", node, user, storage.ErrNotFound)
	}
	sel := n.items
	if len(ids) > 0 {
		want := make(map[string]bool, len(ids))
		for _, id := range ids {
			want[id] = true
		}
		sel = nil
		for _, it := range n.items {
			if want[it.ID] {
				sel = append(sel, it)
			}
		}
	}
	if max > 0 && len(sel) > max {
		sel = sel[len(sel)-max:]
	}
	if len(sel) == 0 {
		return nil, nil
	}
	out := make([]storage.PEPItem, len(sel))
	for i, it := range sel {
		it.Payload = append([]byte{}, it.Payload...)
		out[i] = it
	}
	return out, nil
}

// DeletePEP implements storage.PEP.
func (s *Store) DeletePEP(ctx context.Context, user string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pep, user)
	return nil
}

var _ storage.PEP = (*Store)(nil)

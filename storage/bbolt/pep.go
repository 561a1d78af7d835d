package bbolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

// The PEP store (storage.PEP) is the top-level bucket "pep", created by
// the first write so that older files need no migration. Inside it each
// user with at least one node has a nested bucket named by their bare
// JID, holding:
//
//	"meta"   the user record: version byte 1, then uvarints nodes (how
//	         many nodes the user has) and bytes (the total size of the
//	         items of all of them)
//	"nodes"  a bucket per node, named by it, holding:
//	  "meta"   the node record: version byte 1, uvarints seq (the last
//	           sequence number given to an item of the node), items (how
//	           many it has) and bytes (their total size), then the node's
//	           configuration to the end of the record
//	  "items"  the item records under their 8-byte big-endian sequence
//	           numbers, so in publication order
//	  "ids"    the index of "items": item ID → 8-byte sequence number
//
// An item's size is the length of its ID plus that of its payload. An
// item record is:
//
//	version    byte, 1
//	published  varint, Unix microseconds, in years 1 to 9999
//	id         uvarint length, then bytes
//	payload    the bytes to the end
//
// Publishing gives the item the node's next sequence number, so a
// re-published item moves to the end; the oldest items, which a limit
// drops, are the first keys of "items". The counts in the records make
// PEPNode and the node and byte limits cost one read each, never a scan:
// a publish reads the records it changes (the user's, the node's, the
// replaced item and the items it drops) and no other item. Every write is
// one transaction, shared with concurrent writes (group commit); a write
// refused by a limit, or for a missing or existing node, writes nothing
// and does not fail the others of its transaction. A user's bucket is dropped with their last node, and by
// DeletePEP. Node names and item IDs are bolt keys, so they are at most
// 32,768 bytes long.
const (
	pepBucket = "pep"
	pepMeta   = "meta"
	pepNodes  = "nodes"
	pepItems  = "items"
	pepIDs    = "ids"
	pepV1     = 1
)

var _ storage.PEP = (*Store)(nil)

// Unix microseconds of the first and last instants an item's published
// time may hold: years 1 to 9999.
var (
	minPEPMicro = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	maxPEPMicro = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC).UnixMicro()
)

// pepUserRec is a user's "meta" record.
type pepUserRec struct {
	nodes, bytes uint64
}

func encodePEPUser(m pepUserRec) []byte {
	b := []byte{pepV1}
	b = binary.AppendUvarint(b, m.nodes)
	return binary.AppendUvarint(b, m.bytes)
}

func decodePEPUser(data []byte) (pepUserRec, error) {
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != pepV1 {
		d.fail("unknown version %d", v)
	}
	m := pepUserRec{nodes: d.uvarint("nodes"), bytes: d.uvarint("bytes")}
	if d.err == nil && (m.nodes > math.MaxInt32 || m.bytes > math.MaxInt64) {
		d.fail("counts %d and %d out of range", m.nodes, m.bytes)
	}
	if d.err == nil && len(d.data) != 0 {
		d.fail("%d trailing bytes", len(d.data))
	}
	if d.err != nil {
		return pepUserRec{}, fmt.Errorf("%w: pep user record: %w", ErrCorrupt, d.err)
	}
	return m, nil
}

// pepNodeRec is a node's "meta" record.
type pepNodeRec struct {
	seq, items, bytes uint64
	config            []byte
}

func encodePEPNode(m pepNodeRec) []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(m.config))
	b = append(b, pepV1)
	b = binary.AppendUvarint(b, m.seq)
	b = binary.AppendUvarint(b, m.items)
	b = binary.AppendUvarint(b, m.bytes)
	return append(b, m.config...)
}

// decodePEPNode decodes the record of node name. The config shares no
// memory with data; it is nil if empty.
func decodePEPNode(name string, data []byte) (pepNodeRec, error) {
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != pepV1 {
		d.fail("unknown version %d", v)
	}
	m := pepNodeRec{seq: d.uvarint("seq"), items: d.uvarint("items"), bytes: d.uvarint("bytes")}
	if d.err == nil && (m.items > m.seq || m.bytes > math.MaxInt64) {
		d.fail("counts %d and %d out of range", m.items, m.bytes)
	}
	if d.err != nil {
		return pepNodeRec{}, fmt.Errorf("%w: pep node %q: %w", ErrCorrupt, name, d.err)
	}
	m.config = bytes.Clone(d.data)
	if len(m.config) == 0 {
		m.config = nil
	}
	return m, nil
}

// encodePEPItem encodes an item's record; Published must lie in years 1
// to 9999.
func encodePEPItem(it storage.PEPItem) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(it.ID)+len(it.Payload))
	b = append(b, pepV1)
	b = binary.AppendVarint(b, it.Published.UnixMicro())
	b = appendBytes(b, []byte(it.ID))
	return append(b, it.Payload...)
}

// pepItemRec is a decoded item record. id and payload share memory with
// the record.
type pepItemRec struct {
	published   int64
	id, payload []byte
}

func (r pepItemRec) size() uint64 { return uint64(len(r.id)) + uint64(len(r.payload)) }

// item returns the item, sharing no memory with the record.
func (r pepItemRec) item() storage.PEPItem {
	it := storage.PEPItem{ID: string(r.id), Published: time.UnixMicro(r.published).UTC()}
	if len(r.payload) > 0 {
		it.Payload = bytes.Clone(r.payload)
	}
	return it
}

// decodePEPItem decodes the item record stored under key.
func decodePEPItem(key, data []byte) (pepItemRec, error) {
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != pepV1 {
		d.fail("unknown version %d", v)
	}
	r := pepItemRec{published: d.varint("published")}
	if d.err == nil && (r.published < minPEPMicro || r.published > maxPEPMicro) {
		d.fail("published %d outside years 1 to 9999", r.published)
	}
	n := d.uvarint("id length")
	if d.err == nil && (n == 0 || n > uint64(len(d.data))) {
		d.fail("id length %d with %d bytes left", n, len(d.data))
	}
	if d.err != nil {
		return pepItemRec{}, fmt.Errorf("%w: pep item %x: %w", ErrCorrupt, key, d.err)
	}
	r.id, r.payload = d.data[:n], d.data[n:]
	return r, nil
}

// checkPEPLimits rejects negative limits.
func checkPEPLimits(lim storage.PEPLimits) error {
	if lim.MaxItems < 0 || lim.MaxNodes < 0 || lim.MaxBytes < 0 {
		return fmt.Errorf("negative limit in %+v", lim)
	}
	return nil
}

// pepUser is a user's bucket in a transaction.
type pepUser struct {
	b, nodes *bolt.Bucket
	rec      pepUserRec
}

// pepUserOf returns user's bucket, or nil if the user has no nodes.
func pepUserOf(tx *bolt.Tx, user string) (*pepUser, error) {
	b := userBucket(tx, pepBucket, user)
	if b == nil {
		return nil, nil
	}
	data := b.Get([]byte(pepMeta))
	if data == nil {
		return nil, fmt.Errorf("%w: pep user without record", ErrCorrupt)
	}
	rec, err := decodePEPUser(data)
	if err != nil {
		return nil, err
	}
	nodes := b.Bucket([]byte(pepNodes))
	if nodes == nil {
		return nil, fmt.Errorf("%w: pep user without %q bucket", ErrCorrupt, pepNodes)
	}
	return &pepUser{b: b, nodes: nodes, rec: rec}, nil
}

// pepNode is a node's bucket in a transaction.
type pepNode struct {
	name          string
	b, items, ids *bolt.Bucket
	rec           pepNodeRec
}

// node returns u's node name, or nil if it has none; u may be nil.
// pepExisting opens user's node for a change that needs it to exist; if
// it does not, refused is storage.ErrNotFound.
func pepExisting(tx *bolt.Tx, user, node string) (u *pepUser, n *pepNode, refused, err error) {
	if u, err = pepUserOf(tx, user); err != nil {
		return nil, nil, nil, err
	}
	if n, err = u.node(node); err == nil && n == nil {
		refused = storage.ErrNotFound
	}
	return u, n, refused, err
}

func (u *pepUser) node(name string) (*pepNode, error) {
	if u == nil || name == "" {
		return nil, nil
	}
	return openPEPNode(u.nodes, name)
}

func openPEPNode(nodes *bolt.Bucket, name string) (*pepNode, error) {
	b := nodes.Bucket([]byte(name))
	if b == nil {
		return nil, nil
	}
	n := &pepNode{name: name, b: b, items: b.Bucket([]byte(pepItems)), ids: b.Bucket([]byte(pepIDs))}
	data := b.Get([]byte(pepMeta))
	if data == nil || n.items == nil || n.ids == nil {
		return nil, fmt.Errorf("%w: pep node %q incomplete", ErrCorrupt, name)
	}
	var err error
	n.rec, err = decodePEPNode(name, data)
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (n *pepNode) out() storage.PEPNode {
	return storage.PEPNode{Name: n.name, Config: bytes.Clone(n.rec.config), Items: int(n.rec.items), Bytes: int64(n.rec.bytes)}
}

// itemAt returns the record of the item with sequence number key (8
// bytes), which the index says exists, and checks that its ID is id.
func (n *pepNode) itemAt(key []byte, id string) (pepItemRec, error) {
	data := n.items.Get(key)
	if data == nil {
		return pepItemRec{}, fmt.Errorf("%w: pep node %q: index entry %q without item", ErrCorrupt, n.name, id)
	}
	r, err := decodePEPItem(key, data)
	if err != nil {
		return pepItemRec{}, err
	}
	if string(r.id) != id {
		return pepItemRec{}, fmt.Errorf("%w: pep node %q: index entry %q names item %q", ErrCorrupt, n.name, id, r.id)
	}
	return r, nil
}

// seqOf returns the 8-byte sequence number of item id, or nil.
func (n *pepNode) seqOf(id string) ([]byte, error) {
	if id == "" {
		return nil, nil
	}
	seq := n.ids.Get([]byte(id))
	if seq != nil && len(seq) != 8 {
		return nil, fmt.Errorf("%w: pep node %q: index entry %q of %d bytes", ErrCorrupt, n.name, id, len(seq))
	}
	return seq, nil
}

// pepDrop is an item to delete.
type pepDrop struct {
	key  []byte // its sequence number
	id   string
	size uint64
}

// oldest returns the count oldest items of the node, leaving out the one
// under skip (nil for none).
func (n *pepNode) oldest(count int, skip []byte) ([]pepDrop, error) {
	var out []pepDrop
	c := n.items.Cursor()
	for k, v := c.First(); k != nil && len(out) < count; k, v = c.Next() {
		if bytes.Equal(k, skip) {
			continue
		}
		r, err := decodePEPItem(k, v)
		if err != nil {
			return nil, err
		}
		out = append(out, pepDrop{key: bytes.Clone(k), id: string(r.id), size: r.size()})
	}
	if len(out) < count {
		return nil, fmt.Errorf("%w: pep node %q counts %d items, has fewer", ErrCorrupt, n.name, n.rec.items)
	}
	return out, nil
}

// drop deletes items and their index entries, and takes them off the
// node's and the user's counts.
func (n *pepNode) drop(u *pepUser, items []pepDrop) error {
	for _, d := range items {
		if err := n.items.Delete(d.key); err != nil {
			return err
		}
		if seq := n.ids.Get([]byte(d.id)); !bytes.Equal(seq, d.key) {
			return fmt.Errorf("%w: pep node %q: item %q indexed at %x, not %x", ErrCorrupt, n.name, d.id, seq, d.key)
		}
		if err := n.ids.Delete([]byte(d.id)); err != nil {
			return err
		}
		if n.rec.items == 0 || n.rec.bytes < d.size || u.rec.bytes < d.size {
			return fmt.Errorf("%w: pep node %q: counts below its items", ErrCorrupt, n.name)
		}
		n.rec.items--
		n.rec.bytes -= d.size
		u.rec.bytes -= d.size
	}
	return nil
}

// trim drops the node's oldest items beyond max (if max > 0).
func (n *pepNode) trim(u *pepUser, max int) error {
	if max <= 0 || n.rec.items <= uint64(max) {
		return nil
	}
	old, err := n.oldest(int(n.rec.items-uint64(max)), nil)
	if err != nil {
		return err
	}
	return n.drop(u, old)
}

// save writes the node's and the user's records.
func (n *pepNode) save(u *pepUser) error {
	if err := n.b.Put([]byte(pepMeta), encodePEPNode(n.rec)); err != nil {
		return err
	}
	return u.save()
}

func (u *pepUser) save() error { return u.b.Put([]byte(pepMeta), encodePEPUser(u.rec)) }

// createPEPNode creates node name of user with config and returns it
// and the user; u is the user as read (nil if the user has no nodes).
func createPEPNode(tx *bolt.Tx, user string, u *pepUser, name string, config []byte) (*pepUser, *pepNode, error) {
	if u == nil {
		top, err := tx.CreateBucketIfNotExists([]byte(pepBucket))
		if err != nil {
			return nil, nil, err
		}
		b, err := top.CreateBucket([]byte(user))
		if err != nil {
			return nil, nil, err
		}
		nodes, err := b.CreateBucket([]byte(pepNodes))
		if err != nil {
			return nil, nil, err
		}
		u = &pepUser{b: b, nodes: nodes}
	}
	b, err := u.nodes.CreateBucket([]byte(name))
	if err != nil {
		return nil, nil, err
	}
	n := &pepNode{name: name, b: b, rec: pepNodeRec{config: config}}
	if n.items, err = b.CreateBucket([]byte(pepItems)); err != nil {
		return nil, nil, err
	}
	if n.ids, err = b.CreateBucket([]byte(pepIDs)); err != nil {
		return nil, nil, err
	}
	u.rec.nodes++
	return u, n, nil
}

// pepUpdate runs fn in a write transaction shared with other writes. fn
// returns refused (an error wrapping ErrNotFound, ErrExists or ErrLimit)
// only before it has written anything: then its request commits nothing
// and the others of its batch commit. fn may run more than once.
func (s *Store) pepUpdate(ctx context.Context, fn func(tx *bolt.Tx) (refused, err error)) error {
	var refused error
	err := s.commit.do(ctx, func(tx *bolt.Tx) error {
		var err error
		refused, err = fn(tx)
		return err
	})
	if err != nil {
		return err
	}
	return refused
}

// PEPNodes implements storage.PEP.
func (s *Store) PEPNodes(ctx context.Context, user string) ([]storage.PEPNode, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var nodes []storage.PEPNode
	err := s.db.View(func(tx *bolt.Tx) error {
		u, err := pepUserOf(tx, user)
		if u == nil || err != nil {
			return err
		}
		// Keys come sorted by bytes, which is how Go sorts strings.
		return u.nodes.ForEach(func(k, v []byte) error {
			if v != nil {
				return fmt.Errorf("%w: pep node %q is not a bucket", ErrCorrupt, k)
			}
			n, err := openPEPNode(u.nodes, string(k))
			if err != nil {
				return err
			}
			nodes = append(nodes, n.out())
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bbolt: pep nodes of %q: %w", user, err)
	}
	return nodes, nil
}

// PEPNode implements storage.PEP.
func (s *Store) PEPNode(ctx context.Context, user, node string) (storage.PEPNode, error) {
	if err := ctx.Err(); err != nil {
		return storage.PEPNode{}, err
	}
	var out storage.PEPNode
	err := s.db.View(func(tx *bolt.Tx) error {
		u, err := pepUserOf(tx, user)
		if err != nil {
			return err
		}
		n, err := u.node(node)
		if err != nil {
			return err
		}
		if n == nil {
			return storage.ErrNotFound
		}
		out = n.out()
		return nil
	})
	if err != nil {
		return storage.PEPNode{}, fmt.Errorf("bbolt: pep node %q of %q: %w", node, user, err)
	}
	return out, nil
}

// CreatePEPNode implements storage.PEP.
func (s *Store) CreatePEPNode(ctx context.Context, user string, node storage.PEPNode, lim storage.PEPLimits) error {
	if user == "" || node.Name == "" {
		return fmt.Errorf("bbolt: create pep node %q of %q: empty user or node", node.Name, user)
	}
	if err := checkPEPLimits(lim); err != nil {
		return fmt.Errorf("bbolt: create pep node %q of %q: %w", node.Name, user, err)
	}
	config := bytes.Clone(node.Config)
	err := s.pepUpdate(ctx, func(tx *bolt.Tx) (error, error) {
		u, err := pepUserOf(tx, user)
		if err != nil {
			return nil, err
		}
		n, err := u.node(node.Name)
		if err != nil {
			return nil, err
		}
		if n != nil {
			return storage.ErrExists, nil
		}
		if u != nil && lim.MaxNodes > 0 && u.rec.nodes >= uint64(lim.MaxNodes) {
			return fmt.Errorf("%d nodes: %w", u.rec.nodes, storage.ErrLimit), nil
		}
		u, n, err = createPEPNode(tx, user, u, node.Name, config)
		if err != nil {
			return nil, err
		}
		return nil, n.save(u)
	})
	if err != nil {
		return fmt.Errorf("bbolt: create pep node %q of %q: %w", node.Name, user, err)
	}
	return nil
}

// ConfigurePEPNode implements storage.PEP.
func (s *Store) ConfigurePEPNode(ctx context.Context, user, node string, config []byte, lim storage.PEPLimits) error {
	if err := checkPEPLimits(lim); err != nil {
		return fmt.Errorf("bbolt: configure pep node %q of %q: %w", node, user, err)
	}
	config = bytes.Clone(config)
	err := s.pepUpdate(ctx, func(tx *bolt.Tx) (error, error) {
		u, n, refused, err := pepExisting(tx, user, node)
		if refused != nil || err != nil {
			return refused, err
		}
		n.rec.config = config
		if err := n.trim(u, lim.MaxItems); err != nil {
			return nil, err
		}
		return nil, n.save(u)
	})
	if err != nil {
		return fmt.Errorf("bbolt: configure pep node %q of %q: %w", node, user, err)
	}
	return nil
}

// DeletePEPNode implements storage.PEP. Deleting a user's last node drops
// the user's bucket.
func (s *Store) DeletePEPNode(ctx context.Context, user, node string) error {
	err := s.pepUpdate(ctx, func(tx *bolt.Tx) (error, error) {
		u, n, refused, err := pepExisting(tx, user, node)
		if refused != nil || err != nil {
			return refused, err
		}
		if err := u.nodes.DeleteBucket([]byte(node)); err != nil {
			return nil, err
		}
		if k, _ := u.nodes.Cursor().First(); k == nil {
			return nil, tx.Bucket([]byte(pepBucket)).DeleteBucket([]byte(user))
		}
		if u.rec.nodes == 0 || u.rec.bytes < n.rec.bytes {
			return nil, fmt.Errorf("%w: pep user counts below node %q", ErrCorrupt, node)
		}
		u.rec.nodes--
		u.rec.bytes -= n.rec.bytes
		return nil, u.save()
	})
	if err != nil {
		return fmt.Errorf("bbolt: delete pep node %q of %q: %w", node, user, err)
	}
	return nil
}

// PublishPEPItem implements storage.PEP. It reads the replaced item and
// the items it drops, and nothing else of the node.
func (s *Store) PublishPEPItem(ctx context.Context, user, node string, config []byte, item storage.PEPItem, lim storage.PEPLimits) (bool, []string, error) {
	if user == "" || node == "" || item.ID == "" {
		return false, nil, fmt.Errorf("bbolt: publish %q to pep node %q of %q: empty user, node or item ID", item.ID, node, user)
	}
	if y := item.Published.UTC().Year(); y < 1 || y > 9999 {
		return false, nil, fmt.Errorf("bbolt: publish %q to pep node %q of %q: published %v outside years 1 to 9999", item.ID, node, user, item.Published)
	}
	if err := checkPEPLimits(lim); err != nil {
		return false, nil, fmt.Errorf("bbolt: publish %q to pep node %q of %q: %w", item.ID, node, user, err)
	}
	rec := encodePEPItem(item)
	size := uint64(len(item.ID)) + uint64(len(item.Payload))
	config = bytes.Clone(config)
	var (
		created bool
		dropped []string
	)
	err := s.pepUpdate(ctx, func(tx *bolt.Tx) (error, error) {
		created, dropped = false, nil
		u, err := pepUserOf(tx, user)
		if err != nil {
			return nil, err
		}
		n, err := u.node(node)
		if err != nil {
			return nil, err
		}
		var users pepUserRec
		if u != nil {
			users = u.rec
		}
		if n == nil && lim.MaxNodes > 0 && users.nodes >= uint64(lim.MaxNodes) {
			return fmt.Errorf("new node past %d nodes: %w", users.nodes, storage.ErrLimit), nil
		}
		// Work out what changes before writing anything.
		var (
			replaced     []byte // the replaced item's sequence number
			replacedSize uint64
			old          []pepDrop
			items        uint64 // after the publish, before dropping
		)
		if n != nil {
			if replaced, err = n.seqOf(item.ID); err != nil {
				return nil, err
			}
			if replaced != nil {
				r, err := n.itemAt(replaced, item.ID)
				if err != nil {
					return nil, err
				}
				replacedSize = r.size()
			}
			items = n.rec.items + 1
			if replaced != nil {
				items--
			}
			if lim.MaxItems > 0 && items > uint64(lim.MaxItems) {
				if old, err = n.oldest(int(items-uint64(lim.MaxItems)), replaced); err != nil {
					return nil, err
				}
			}
		}
		total := int64(users.bytes) + int64(size) - int64(replacedSize)
		for _, d := range old {
			total -= int64(d.size)
		}
		if lim.MaxBytes > 0 && total > lim.MaxBytes {
			return fmt.Errorf("%d bytes in all: %w", total, storage.ErrLimit), nil
		}

		if n == nil {
			if u, n, err = createPEPNode(tx, user, u, node, config); err != nil {
				return nil, err
			}
			created = true
		}
		if replaced != nil {
			d := pepDrop{key: bytes.Clone(replaced), id: item.ID, size: replacedSize}
			if err := n.drop(u, []pepDrop{d}); err != nil {
				return nil, err
			}
		}
		if err := n.drop(u, old); err != nil {
			return nil, err
		}
		n.rec.seq++
		key := be64(n.rec.seq)
		if err := n.items.Put(key, rec); err != nil {
			return nil, err
		}
		if err := n.ids.Put([]byte(item.ID), be64(n.rec.seq)); err != nil {
			return nil, err
		}
		n.rec.items++
		n.rec.bytes += size
		u.rec.bytes += size
		for _, d := range old {
			dropped = append(dropped, d.id)
		}
		return nil, n.save(u)
	})
	if err != nil {
		return false, nil, fmt.Errorf("bbolt: publish %q to pep node %q of %q: %w", item.ID, node, user, err)
	}
	return created, dropped, nil
}

// RetractPEPItem implements storage.PEP.
func (s *Store) RetractPEPItem(ctx context.Context, user, node, id string) error {
	err := s.pepUpdate(ctx, func(tx *bolt.Tx) (error, error) {
		u, n, refused, err := pepExisting(tx, user, node)
		if refused != nil || err != nil {
			return refused, err
		}
		seq, err := n.seqOf(id)
		if err != nil {
			return nil, err
		}
		if seq == nil {
			return fmt.Errorf("no such item: %w", storage.ErrNotFound), nil
		}
		r, err := n.itemAt(seq, id)
		if err != nil {
			return nil, err
		}
		if err := n.drop(u, []pepDrop{{key: bytes.Clone(seq), id: id, size: r.size()}}); err != nil {
			return nil, err
		}
		return nil, n.save(u)
	})
	if err != nil {
		return fmt.Errorf("bbolt: retract %q from pep node %q of %q: %w", id, node, user, err)
	}
	return nil
}

// PurgePEPNode implements storage.PEP. It drops the node's item and index
// buckets whole.
func (s *Store) PurgePEPNode(ctx context.Context, user, node string) error {
	err := s.pepUpdate(ctx, func(tx *bolt.Tx) (error, error) {
		u, n, refused, err := pepExisting(tx, user, node)
		if refused != nil || err != nil {
			return refused, err
		}
		if n.rec.items == 0 {
			return nil, nil
		}
		for _, name := range []string{pepItems, pepIDs} {
			if err := n.b.DeleteBucket([]byte(name)); err != nil {
				return nil, err
			}
			if _, err := n.b.CreateBucket([]byte(name)); err != nil {
				return nil, err
			}
		}
		if u.rec.bytes < n.rec.bytes {
			return nil, fmt.Errorf("%w: pep user counts below node %q", ErrCorrupt, node)
		}
		u.rec.bytes -= n.rec.bytes
		n.rec.items, n.rec.bytes = 0, 0
		return nil, n.save(u)
	})
	if err != nil {
		return fmt.Errorf("bbolt: purge pep node %q of %q: %w", node, user, err)
	}
	return nil
}

// PEPItems implements storage.PEP. Items asked for by ID cost an index
// lookup each; the max newest are read from the end.
func (s *Store) PEPItems(ctx context.Context, user, node string, ids []string, max int) ([]storage.PEPItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var items []storage.PEPItem
	err := s.db.View(func(tx *bolt.Tx) error {
		items = nil
		u, err := pepUserOf(tx, user)
		if err != nil {
			return err
		}
		n, err := u.node(node)
		if err != nil {
			return err
		}
		if n == nil {
			return storage.ErrNotFound
		}
		if len(ids) > 0 {
			items, err = n.itemsByID(ids, max)
			return err
		}
		c := n.items.Cursor()
		if max > 0 {
			for k, v := c.Last(); k != nil && len(items) < max; k, v = c.Prev() {
				r, err := decodePEPItem(k, v)
				if err != nil {
					return err
				}
				items = append(items, r.item())
			}
			slices.Reverse(items)
			return nil
		}
		for k, v := c.First(); k != nil; k, v = c.Next() {
			r, err := decodePEPItem(k, v)
			if err != nil {
				return err
			}
			items = append(items, r.item())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bbolt: items of pep node %q of %q: %w", node, user, err)
	}
	return items, nil
}

// itemsByID returns the node's items with the given IDs, oldest first, or
// with max > 0 the max newest of them.
func (n *pepNode) itemsByID(ids []string, max int) ([]storage.PEPItem, error) {
	type found struct {
		seq []byte
		rec pepItemRec
	}
	var all []found
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		seq, err := n.seqOf(id)
		if err != nil {
			return nil, err
		}
		if seq == nil {
			continue
		}
		r, err := n.itemAt(seq, id)
		if err != nil {
			return nil, err
		}
		all = append(all, found{seq, r})
	}
	slices.SortFunc(all, func(a, b found) int { return bytes.Compare(a.seq, b.seq) })
	if max > 0 && len(all) > max {
		all = all[len(all)-max:]
	}
	var items []storage.PEPItem
	for _, f := range all {
		items = append(items, f.rec.item())
	}
	return items, nil
}

// DeletePEP implements storage.PEP. It drops the user's bucket in the pep
// store.
func (s *Store) DeletePEP(ctx context.Context, user string) error {
	if err := s.dropUser(ctx, pepBucket, user); err != nil {
		return fmt.Errorf("bbolt: delete pep of %q: %w", user, err)
	}
	return nil
}

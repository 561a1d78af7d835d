package bbolt

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/internal/rosterver"
)

// The roster store (storage.Roster) is the top-level bucket "roster",
// created by the first write so that older files need no migration. Inside
// it each user has a nested bucket named by their bare JID, holding:
//
//	"meta"     a record: version byte 1, then uvarints gen, n, floor and
//	           the number of tombstones
//	"items"    a bucket of item records keyed by contact JID
//	"removed"  a bucket of tombstones: contact JID → version byte 1 and
//	           the uvarint counter it was removed at
//
// The roster's version is "<gen in hex>.<n>" (package
// storage/internal/rosterver): gen is drawn when the user's bucket is
// created, n counts modifications. floor is the newest removal
// forgotten when the tombstones outgrew storage.MaxRosterTombstones;
// versions below it are unknown. An item record is:
//
//	version       byte, 1
//	ver           uvarint, the counter at its last change
//	subscription  byte: 0 none, 1 to, 2 from, 3 both
//	flags         byte: 1 ask, 2 approved, 4 pending in, 8 hidden
//	name          uvarint length, then bytes
//	groups        uvarint count, then each as uvarint length and bytes
const (
	rosterBucket   = "roster"
	rosterMeta     = "meta"
	rosterItems    = "items"
	rosterRemoved  = "removed"
	rosterRecordV1 = 1
)

const (
	flagAsk = 1 << iota
	flagApproved
	flagPendingIn
	flagHidden
)

var subCodes = []storage.Subscription{storage.SubNone, storage.SubTo, storage.SubFrom, storage.SubBoth}

// rosterMetaRec is a user's "meta" record.
type rosterMetaRec struct {
	ver          rosterver.Version
	floor, tombs uint64
}

func encodeRosterMeta(m rosterMetaRec) []byte {
	b := []byte{rosterRecordV1}
	b = binary.AppendUvarint(b, uint64(m.ver.Gen))
	b = binary.AppendUvarint(b, m.ver.N)
	b = binary.AppendUvarint(b, m.floor)
	return binary.AppendUvarint(b, m.tombs)
}

func decodeRosterMeta(data []byte) (rosterMetaRec, error) {
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != rosterRecordV1 {
		d.fail("unknown roster meta version %d", v)
	}
	gen := d.uvarint("gen")
	m := rosterMetaRec{ver: rosterver.Version{N: d.uvarint("counter")}, floor: d.uvarint("floor"), tombs: d.uvarint("tombstones")}
	if d.err == nil && gen > 0xffffffff {
		d.fail("gen %d out of range", gen)
	}
	if d.err == nil && len(d.data) != 0 {
		d.fail("%d trailing bytes", len(d.data))
	}
	if d.err != nil {
		return rosterMetaRec{}, fmt.Errorf("%w: roster meta: %w", ErrCorrupt, d.err)
	}
	m.ver.Gen = uint32(gen)
	return m, nil
}

func encodeRosterItem(it storage.RosterItem, ver uint64) []byte {
	size := 4 + 2*binary.MaxVarintLen64 + len(it.Name)
	for _, g := range it.Groups {
		size += binary.MaxVarintLen64 + len(g)
	}
	b := make([]byte, 0, size)
	b = append(b, rosterRecordV1)
	b = binary.AppendUvarint(b, ver)
	b = append(b, byte(slices.Index(subCodes, it.Subscription)))
	var flags byte
	if it.Ask {
		flags |= flagAsk
	}
	if it.Approved {
		flags |= flagApproved
	}
	if it.PendingIn {
		flags |= flagPendingIn
	}
	if it.Hidden {
		flags |= flagHidden
	}
	b = append(b, flags)
	b = appendBytes(b, []byte(it.Name))
	b = binary.AppendUvarint(b, uint64(len(it.Groups)))
	for _, g := range it.Groups {
		b = appendBytes(b, []byte(g))
	}
	return b
}

// decodeRosterItem decodes an item record of contact. The result shares
// no memory with data.
func decodeRosterItem(contact string, data []byte) (storage.RosterItem, uint64, error) {
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != rosterRecordV1 {
		d.fail("unknown roster item version %d", v)
	}
	ver := d.uvarint("version")
	sub := d.u8()
	flags := d.u8()
	it := storage.RosterItem{JID: contact}
	it.Name = string(d.field("name"))
	n := d.uvarint("group count")
	if d.err == nil && int(sub) >= len(subCodes) {
		d.fail("unknown subscription %d", sub)
	}
	if d.err == nil && flags&^(flagAsk|flagApproved|flagPendingIn|flagHidden) != 0 {
		d.fail("unknown flags %#x", flags)
	}
	// Each group takes at least one byte; a larger count is a lie and must
	// not make us allocate.
	if d.err == nil && n > uint64(len(d.data)) {
		d.fail("group count %d exceeds the %d bytes left", n, len(d.data))
	}
	if d.err == nil && n > 0 {
		it.Groups = make([]string, 0, n)
		for range n {
			it.Groups = append(it.Groups, string(d.field("group")))
		}
	}
	if d.err == nil && len(d.data) != 0 {
		d.fail("%d trailing bytes", len(d.data))
	}
	if d.err != nil {
		return storage.RosterItem{}, 0, fmt.Errorf("%w: roster item %q: %w", ErrCorrupt, contact, d.err)
	}
	it.Subscription = subCodes[sub]
	it.Ask = flags&flagAsk != 0
	it.Approved = flags&flagApproved != 0
	it.PendingIn = flags&flagPendingIn != 0
	it.Hidden = flags&flagHidden != 0
	return it, ver, nil
}

func encodeTombstone(ver uint64) []byte {
	return binary.AppendUvarint([]byte{rosterRecordV1}, ver)
}

func decodeTombstone(contact string, data []byte) (uint64, error) {
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != rosterRecordV1 {
		d.fail("unknown tombstone version %d", v)
	}
	ver := d.uvarint("version")
	if d.err == nil && len(d.data) != 0 {
		d.fail("%d trailing bytes", len(d.data))
	}
	if d.err != nil {
		return 0, fmt.Errorf("%w: roster tombstone %q: %w", ErrCorrupt, contact, d.err)
	}
	return ver, nil
}

// rosterUser returns user's roster bucket, or nil if there is none.
func rosterUser(tx *bolt.Tx, user string) *bolt.Bucket { return userBucket(tx, rosterBucket, user) }

// readMeta returns the meta record of a user's bucket.
func readMeta(b *bolt.Bucket) (rosterMetaRec, error) {
	data := b.Get([]byte(rosterMeta))
	if data == nil {
		return rosterMetaRec{}, fmt.Errorf("%w: roster without meta record", ErrCorrupt)
	}
	return decodeRosterMeta(data)
}

// subBucket returns the named bucket inside a user's bucket; a missing one
// is corrupt.
func subBucket(b *bolt.Bucket, name string) (*bolt.Bucket, error) {
	sb := b.Bucket([]byte(name))
	if sb == nil {
		return nil, fmt.Errorf("%w: roster without %q bucket", ErrCorrupt, name)
	}
	return sb, nil
}

// Roster implements storage.Roster.
func (s *Store) Roster(ctx context.Context, user string) ([]storage.RosterItem, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	var (
		items []storage.RosterItem
		ver   string
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := rosterUser(tx, user)
		if b == nil {
			return nil
		}
		m, err := readMeta(b)
		if err != nil {
			return err
		}
		ib, err := subBucket(b, rosterItems)
		if err != nil {
			return err
		}
		ver = m.ver.String()
		// Keys come sorted by bytes, which is how Go sorts strings.
		return ib.ForEach(func(k, v []byte) error {
			it, _, err := decodeRosterItem(string(k), v)
			if err != nil {
				return err
			}
			items = append(items, it)
			return nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("bbolt: roster of %q: %w", user, err)
	}
	return items, ver, nil
}

// RosterItem implements storage.Roster.
func (s *Store) RosterItem(ctx context.Context, user, contact string) (storage.RosterItem, error) {
	if err := ctx.Err(); err != nil {
		return storage.RosterItem{}, err
	}
	var it storage.RosterItem
	err := s.db.View(func(tx *bolt.Tx) error {
		b := rosterUser(tx, user)
		if b == nil || contact == "" {
			return storage.ErrNotFound
		}
		ib, err := subBucket(b, rosterItems)
		if err != nil {
			return err
		}
		v := ib.Get([]byte(contact))
		if v == nil {
			return storage.ErrNotFound
		}
		it, _, err = decodeRosterItem(contact, v)
		return err
	})
	if err != nil {
		return storage.RosterItem{}, fmt.Errorf("bbolt: roster item %q of %q: %w", contact, user, err)
	}
	return it, nil
}

// SetRosterItem implements storage.Roster.
func (s *Store) SetRosterItem(ctx context.Context, user string, item storage.RosterItem) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if user == "" || item.JID == "" || !item.Subscription.Valid() {
		return "", fmt.Errorf("bbolt: set roster item %q of %q (subscription %q): %w", item.JID, user, item.Subscription, storage.ErrInvalidItem)
	}
	if item.Subscription == "" {
		item.Subscription = storage.SubNone
	}
	var ver string
	err := s.db.Update(func(tx *bolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists([]byte(rosterBucket))
		if err != nil {
			return err
		}
		var m rosterMetaRec
		b := top.Bucket([]byte(user))
		if b == nil {
			if b, err = top.CreateBucket([]byte(user)); err != nil {
				return err
			}
			for _, name := range []string{rosterItems, rosterRemoved} {
				if _, err := b.CreateBucket([]byte(name)); err != nil {
					return err
				}
			}
			m.ver = rosterver.New()
		} else if m, err = readMeta(b); err != nil {
			return err
		}
		ib, err := subBucket(b, rosterItems)
		if err != nil {
			return err
		}
		rb, err := subBucket(b, rosterRemoved)
		if err != nil {
			return err
		}
		m.ver = m.ver.Next()
		if err := ib.Put([]byte(item.JID), encodeRosterItem(item, m.ver.N)); err != nil {
			return err
		}
		if rb.Get([]byte(item.JID)) != nil {
			if err := rb.Delete([]byte(item.JID)); err != nil {
				return err
			}
			m.tombs--
		}
		ver = m.ver.String()
		return b.Put([]byte(rosterMeta), encodeRosterMeta(m))
	})
	if err != nil {
		return "", fmt.Errorf("bbolt: set roster item %q of %q: %w", item.JID, user, err)
	}
	return ver, nil
}

// DeleteRosterItem implements storage.Roster.
func (s *Store) DeleteRosterItem(ctx context.Context, user, contact string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var ver string
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := rosterUser(tx, user)
		if b == nil || contact == "" {
			return storage.ErrNotFound
		}
		m, err := readMeta(b)
		if err != nil {
			return err
		}
		ib, err := subBucket(b, rosterItems)
		if err != nil {
			return err
		}
		rb, err := subBucket(b, rosterRemoved)
		if err != nil {
			return err
		}
		if ib.Get([]byte(contact)) == nil {
			return storage.ErrNotFound
		}
		if err := ib.Delete([]byte(contact)); err != nil {
			return err
		}
		m.ver = m.ver.Next()
		if err := rb.Put([]byte(contact), encodeTombstone(m.ver.N)); err != nil {
			return err
		}
		m.tombs++
		if m.tombs > storage.MaxRosterTombstones {
			if err := forgetOldestRemoval(rb, &m); err != nil {
				return err
			}
		}
		ver = m.ver.String()
		return b.Put([]byte(rosterMeta), encodeRosterMeta(m))
	})
	if err != nil {
		return "", fmt.Errorf("bbolt: delete roster item %q of %q: %w", contact, user, err)
	}
	return ver, nil
}

// forgetOldestRemoval drops the oldest tombstone and raises m.floor to its
// version.
func forgetOldestRemoval(rb *bolt.Bucket, m *rosterMetaRec) error {
	var (
		oldest []byte
		at     uint64
	)
	err := rb.ForEach(func(k, v []byte) error {
		ver, err := decodeTombstone(string(k), v)
		if err != nil {
			return err
		}
		if oldest == nil || ver < at {
			oldest, at = append(oldest[:0], k...), ver
		}
		return nil
	})
	if err != nil || oldest == nil {
		return err
	}
	if err := rb.Delete(oldest); err != nil {
		return err
	}
	m.tombs--
	m.floor = max(m.floor, at)
	return nil
}

// RosterChangesSince implements storage.Roster.
func (s *Store) RosterChangesSince(ctx context.Context, user, ver string) ([]storage.RosterChange, string, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", false, err
	}
	type change struct {
		item storage.RosterItem
		ver  uint64
	}
	var (
		changes []change
		cur     rosterver.Version
		exists  bool
		known   bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := rosterUser(tx, user)
		if b == nil {
			return nil
		}
		m, err := readMeta(b)
		if err != nil {
			return err
		}
		cur, exists = m.ver, true
		n, ok := cur.Since(ver, m.floor)
		if !ok {
			return nil
		}
		known = true
		if n == cur.N {
			return nil
		}
		ib, err := subBucket(b, rosterItems)
		if err != nil {
			return err
		}
		rb, err := subBucket(b, rosterRemoved)
		if err != nil {
			return err
		}
		err = ib.ForEach(func(k, v []byte) error {
			// The version is the second field; decode the whole record
			// only for changed items.
			if len(v) < 2 {
				return fmt.Errorf("%w: roster item %q: truncated", ErrCorrupt, k)
			}
			if iv, w := binary.Uvarint(v[1:]); w > 0 && iv <= n {
				return nil
			}
			it, iv, err := decodeRosterItem(string(k), v)
			if err != nil {
				return err
			}
			changes = append(changes, change{it, iv})
			return nil
		})
		if err != nil {
			return err
		}
		return rb.ForEach(func(k, v []byte) error {
			rv, err := decodeTombstone(string(k), v)
			if err != nil {
				return err
			}
			if rv > n {
				changes = append(changes, change{storage.RosterItem{JID: string(k), Subscription: storage.SubRemove}, rv})
			}
			return nil
		})
	})
	if err != nil {
		return nil, "", false, fmt.Errorf("bbolt: roster changes of %q since %q: %w", user, ver, err)
	}
	if !exists {
		return nil, "", false, nil
	}
	if !known {
		return nil, cur.String(), false, nil
	}
	slices.SortFunc(changes, func(a, b change) int { return cmp.Compare(a.ver, b.ver) })
	out := make([]storage.RosterChange, len(changes))
	for i, c := range changes {
		out[i] = storage.RosterChange{Item: c.item, Ver: cur.At(c.ver).String()}
	}
	return out, cur.String(), true, nil
}

// DeleteRoster implements storage.Roster. It drops the user's bucket in
// the roster store.
func (s *Store) DeleteRoster(ctx context.Context, user string) error {
	if err := s.dropUser(ctx, rosterBucket, user); err != nil {
		return fmt.Errorf("bbolt: delete roster of %q: %w", user, err)
	}
	return nil
}

var _ storage.Roster = (*Store)(nil)

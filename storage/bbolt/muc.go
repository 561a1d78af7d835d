package bbolt

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
)

// The MUC store (storage.MUC) is the top-level bucket "muc", made by Open
// with its three buckets:
//
//	"rooms"  each room's record under its bare JID
//	"affs"   a bucket per room with at least one entry, named by the
//	         room's JID, holding each entry's record under the
//	         affiliated JID (an account's bare JID, or a domain)
//	"users"  the by-user index: a bucket per affiliated JID with at least
//	         one entry, named by it, holding the JIDs of the rooms it has
//	         an entry in as keys, with empty values
//
// A room record is:
//
//	version     byte, 1
//	created     varint, days since 1970-01-01 UTC
//	lastActive  varint, days since 1970-01-01 UTC
//	config      the bytes to the end
//
// and an entry record:
//
//	version      byte, 1
//	affiliation  byte: 0 none, 1 owner, 2 admin, 3 member, 4 outcast
//	nick         uvarint length, then bytes
//	reason       the bytes to the end
//
// An entry with neither an affiliation nor a nick is never stored. Days
// are whole UTC days, as in account records; the zero time.Time is stored
// like any other day. Every write is one transaction, shared with
// concurrent writes (group commit), and keeps "affs" and "users" in step:
// a room's bucket in "affs" and a JID's bucket in "users" are dropped with
// their last entry, and DeleteRoom removes the room's entries from both.
// UserAffiliations and DeleteUserAffiliations read the JID's index bucket
// and one entry per room, never other rooms; Rooms reads every room's key.
// Room and affiliated JIDs are bolt keys and bucket names, so they are at
// most 32,768 bytes long.
const (
	mucBucket = "muc"
	mucRooms  = "rooms"
	mucAffs   = "affs"
	mucUsers  = "users"
	mucV1     = 1
)

var _ storage.MUC = (*Store)(nil)

// mucAffCodes are the affiliations by their byte in an entry record.
var mucAffCodes = [...]string{"", storage.AffOwner, storage.AffAdmin, storage.AffMember, storage.AffOutcast}

// mucAffCode returns the byte of affiliation aff, and false if aff is not
// one.
func mucAffCode(aff string) (byte, bool) {
	for i, a := range mucAffCodes {
		if a == aff {
			return byte(i), true
		}
	}
	return 0, false
}

// createMUCBuckets makes the MUC buckets in tx, if they are not there yet.
// Open calls it.
func createMUCBuckets(tx *bolt.Tx) error {
	top, err := tx.CreateBucketIfNotExists([]byte(mucBucket))
	if err != nil {
		return fmt.Errorf("bucket %q: %w", mucBucket, err)
	}
	for _, name := range []string{mucRooms, mucAffs, mucUsers} {
		if _, err := top.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("bucket %q in %q: %w", name, mucBucket, err)
		}
	}
	return nil
}

// encodeMUCRoom encodes r's record; r.JID is not part of it. Its days must
// lie in years 1 to 9999.
func encodeMUCRoom(r storage.MUCRoom) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(r.Config))
	b = append(b, mucV1)
	b = binary.AppendVarint(b, epochDays(r.Created))
	b = binary.AppendVarint(b, epochDays(r.LastActive))
	return append(b, r.Config...)
}

// decodeMUCRoom decodes the record of room. Its result shares no memory
// with data; anything but a well-formed record gives an error wrapping
// ErrCorrupt.
func decodeMUCRoom(room string, data []byte) (storage.MUCRoom, error) {
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != mucV1 {
		d.fail("unknown version %d", v)
	}
	r := storage.MUCRoom{JID: room, Created: d.day("created"), LastActive: d.day("last active")}
	if d.err != nil {
		return storage.MUCRoom{}, fmt.Errorf("%w: room %q: %w", ErrCorrupt, room, d.err)
	}
	if len(d.data) > 0 {
		r.Config = append([]byte{}, d.data...)
	}
	return r, nil
}

// encodeMUCAff encodes a's record; a.Room and a.JID are not part of it.
// a.Affiliation must be valid.
func encodeMUCAff(a storage.MUCAffiliation) []byte {
	code, _ := mucAffCode(a.Affiliation)
	b := make([]byte, 0, 2+binary.MaxVarintLen64+len(a.Nick)+len(a.Reason))
	b = append(b, mucV1, code)
	b = appendBytes(b, []byte(a.Nick))
	return append(b, a.Reason...)
}

// decodeMUCAff decodes the record of jid's entry in room. Its result
// shares no memory with data; anything but a well-formed record gives an
// error wrapping ErrCorrupt.
func decodeMUCAff(room, jid string, data []byte) (storage.MUCAffiliation, error) {
	d := decoder{data: data}
	if v := d.u8(); d.err == nil && v != mucV1 {
		d.fail("unknown version %d", v)
	}
	code := d.u8()
	if d.err == nil && int(code) >= len(mucAffCodes) {
		d.fail("unknown affiliation %d", code)
	}
	nick := d.field("nick")
	if d.err == nil && code == 0 && len(nick) == 0 {
		d.fail("neither an affiliation nor a nick")
	}
	if d.err != nil {
		return storage.MUCAffiliation{}, fmt.Errorf("%w: entry of %q in room %q: %w", ErrCorrupt, jid, room, d.err)
	}
	return storage.MUCAffiliation{
		Room:        room,
		JID:         jid,
		Affiliation: mucAffCodes[code],
		Nick:        string(nick),
		Reason:      string(d.data),
	}, nil
}

// mucTx is the MUC buckets of a transaction.
type mucTx struct {
	rooms, affs, users *bolt.Bucket
}

func openMUC(tx *bolt.Tx) (mucTx, error) {
	var t mucTx
	if top := tx.Bucket([]byte(mucBucket)); top != nil {
		t = mucTx{rooms: top.Bucket([]byte(mucRooms)), affs: top.Bucket([]byte(mucAffs)), users: top.Bucket([]byte(mucUsers))}
	}
	if t.rooms == nil || t.affs == nil || t.users == nil {
		return t, fmt.Errorf("%w: %q bucket missing or incomplete", ErrCorrupt, mucBucket)
	}
	return t, nil
}

// hasRoom reports whether room is stored.
func (t mucTx) hasRoom(room string) bool {
	return room != "" && t.rooms.Get([]byte(room)) != nil
}

// entry returns jid's entry in room and whether it exists.
func (t mucTx) entry(room, jid string) (storage.MUCAffiliation, bool, error) {
	b := t.affs.Bucket([]byte(room))
	if b == nil || jid == "" {
		return storage.MUCAffiliation{}, false, nil
	}
	data := b.Get([]byte(jid))
	if data == nil {
		return storage.MUCAffiliation{}, false, nil
	}
	a, err := decodeMUCAff(room, jid, data)
	return a, err == nil, err
}

// mucDrop deletes the key k from the nested bucket name of parent, and that
// bucket if k was its last key. A missing bucket or key is not an error.
func mucDrop(parent *bolt.Bucket, name, k []byte) error {
	b := parent.Bucket(name)
	if b == nil {
		return nil
	}
	if err := b.Delete(k); err != nil {
		return err
	}
	if first, _ := b.Cursor().First(); first == nil {
		return parent.DeleteBucket(name)
	}
	return nil
}

// mucView runs fn in a read transaction.
func (s *Store) mucView(ctx context.Context, fn func(t mucTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		t, err := openMUC(tx)
		if err != nil {
			return err
		}
		return fn(t)
	})
}

// mucUpdate runs fn in a write transaction shared with other writes. fn
// returns refused (an error wrapping ErrNotFound) only before it has
// written anything: then its request commits nothing and the others of its
// batch commit. fn may run more than once.
func (s *Store) mucUpdate(ctx context.Context, fn func(t mucTx) (refused, err error)) error {
	var refused error
	err := s.commit.do(ctx, func(tx *bolt.Tx) error {
		t, err := openMUC(tx)
		if err != nil {
			return err
		}
		refused, err = fn(t)
		return err
	})
	if err != nil {
		return err
	}
	return refused
}

// checkMUCKey returns an error if a JID cannot be a bolt key.
func checkMUCKey(what, jid string) error {
	switch {
	case jid == "":
		return fmt.Errorf("empty %s", what)
	case len(jid) > bolt.MaxKeySize:
		return fmt.Errorf("%s of %d bytes too long", what, len(jid))
	}
	return nil
}

// mucYears checks that t's day lies in years 1 to 9999.
func mucYears(what string, t time.Time) error {
	if d := epochDays(t); d < minDay || d > maxDay {
		return fmt.Errorf("%s %v outside years 1 to 9999", what, t)
	}
	return nil
}

// PutRoom implements storage.MUC.
func (s *Store) PutRoom(ctx context.Context, r storage.MUCRoom) error {
	err := checkMUCKey("room JID", r.JID)
	if err == nil {
		err = mucYears("created", r.Created)
	}
	if err == nil {
		err = mucYears("last active", r.LastActive)
	}
	if err == nil {
		rec := encodeMUCRoom(r)
		err = s.mucUpdate(ctx, func(t mucTx) (error, error) {
			return nil, t.rooms.Put([]byte(r.JID), rec)
		})
	}
	if err != nil {
		return fmt.Errorf("bbolt: put room %q: %w", r.JID, err)
	}
	return nil
}

// Room implements storage.MUC.
func (s *Store) Room(ctx context.Context, room string) (storage.MUCRoom, error) {
	var r storage.MUCRoom
	err := s.mucView(ctx, func(t mucTx) error {
		data := t.rooms.Get([]byte(room))
		if data == nil || room == "" {
			return storage.ErrNotFound
		}
		var err error
		r, err = decodeMUCRoom(room, data)
		return err
	})
	if err != nil {
		return storage.MUCRoom{}, fmt.Errorf("bbolt: room %q: %w", room, err)
	}
	return r, nil
}

// Rooms implements storage.MUC. It reads the key of every room, and no
// record.
func (s *Store) Rooms(ctx context.Context, service string) ([]string, error) {
	var out []string
	err := s.mucView(ctx, func(t mucTx) error {
		c := t.rooms.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil && t.rooms.Bucket(k) != nil {
				return fmt.Errorf("%w: bucket %q among the rooms", ErrCorrupt, k)
			}
			if room := string(k); service == "" || domainOf(room) == service {
				out = append(out, room)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bbolt: rooms of %q: %w", service, err)
	}
	return out, nil
}

// DeleteRoom implements storage.MUC. It removes the room's entries from
// the by-user index too.
func (s *Store) DeleteRoom(ctx context.Context, room string) error {
	if room == "" {
		return nil
	}
	// Look first in a read transaction: deleting what is not there costs
	// no write.
	var found bool
	err := s.mucView(ctx, func(t mucTx) error {
		found = t.hasRoom(room) || t.affs.Bucket([]byte(room)) != nil
		return nil
	})
	if err == nil && found {
		err = s.mucUpdate(ctx, func(t mucTx) (error, error) {
			key := []byte(room)
			if b := t.affs.Bucket(key); b != nil {
				c := b.Cursor()
				for jid, _ := c.First(); jid != nil; jid, _ = c.Next() {
					if err := mucDrop(t.users, jid, key); err != nil {
						return nil, err
					}
				}
				if err := t.affs.DeleteBucket(key); err != nil {
					return nil, err
				}
			}
			return nil, t.rooms.Delete(key)
		})
	}
	if err != nil {
		return fmt.Errorf("bbolt: delete room %q: %w", room, err)
	}
	return nil
}

// SetAffiliation implements storage.MUC. It writes the entry and its
// index entry in one transaction.
func (s *Store) SetAffiliation(ctx context.Context, a storage.MUCAffiliation) error {
	err := checkMUCKey("room JID", a.Room)
	if err == nil {
		err = checkMUCKey("JID", a.JID)
	}
	if _, ok := mucAffCode(a.Affiliation); err == nil && !ok {
		err = fmt.Errorf("unknown affiliation %q", a.Affiliation)
	}
	if err == nil {
		room, jid := []byte(a.Room), []byte(a.JID)
		del := a.Affiliation == "" && a.Nick == ""
		rec := encodeMUCAff(a)
		err = s.mucUpdate(ctx, func(t mucTx) (error, error) {
			if !t.hasRoom(a.Room) {
				return storage.ErrNotFound, nil
			}
			if del {
				if err := mucDrop(t.affs, room, jid); err != nil {
					return nil, err
				}
				return nil, mucDrop(t.users, jid, room)
			}
			b, err := t.affs.CreateBucketIfNotExists(room)
			if err != nil {
				return nil, err
			}
			if err := b.Put(jid, rec); err != nil {
				return nil, err
			}
			u, err := t.users.CreateBucketIfNotExists(jid)
			if err != nil {
				return nil, err
			}
			return nil, u.Put(room, []byte{})
		})
	}
	if err != nil {
		return fmt.Errorf("bbolt: set affiliation of %q in room %q: %w", a.JID, a.Room, err)
	}
	return nil
}

// Affiliation implements storage.MUC.
func (s *Store) Affiliation(ctx context.Context, room, jid string) (storage.MUCAffiliation, error) {
	var a storage.MUCAffiliation
	err := s.mucView(ctx, func(t mucTx) error {
		var (
			ok  bool
			err error
		)
		a, ok, err = t.entry(room, jid)
		if err == nil && !ok {
			err = storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return storage.MUCAffiliation{}, fmt.Errorf("bbolt: affiliation of %q in room %q: %w", jid, room, err)
	}
	return a, nil
}

// Affiliations implements storage.MUC. It reads the room's entries.
func (s *Store) Affiliations(ctx context.Context, room string) ([]storage.MUCAffiliation, error) {
	var out []storage.MUCAffiliation
	err := s.mucView(ctx, func(t mucTx) error {
		if !t.hasRoom(room) {
			return storage.ErrNotFound
		}
		b := t.affs.Bucket([]byte(room))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil && b.Bucket(k) != nil {
				return fmt.Errorf("%w: bucket %q among the entries of room %q", ErrCorrupt, k, room)
			}
			a, err := decodeMUCAff(room, string(k), v)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bbolt: affiliations of room %q: %w", room, err)
	}
	return out, nil
}

// UserAffiliations implements storage.MUC. It reads jid's index bucket
// and its entry in each room named there.
func (s *Store) UserAffiliations(ctx context.Context, jid string) ([]storage.MUCAffiliation, error) {
	var out []storage.MUCAffiliation
	err := s.mucView(ctx, func(t mucTx) error {
		if jid == "" {
			return nil
		}
		u := t.users.Bucket([]byte(jid))
		if u == nil {
			return nil
		}
		c := u.Cursor()
		for room, v := c.First(); room != nil; room, v = c.Next() {
			if v == nil && u.Bucket(room) != nil {
				return fmt.Errorf("%w: bucket %q in the index of %q", ErrCorrupt, room, jid)
			}
			a, ok, err := t.entry(string(room), jid)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: index of %q names room %q without an entry", ErrCorrupt, jid, room)
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bbolt: affiliations of %q: %w", jid, err)
	}
	return out, nil
}

// DeleteUserAffiliations implements storage.MUC. It reads jid's index
// bucket and deletes it and jid's entry in each room named there; a user
// without entries costs no write. An index entry whose room entry is
// missing is deleted all the same.
func (s *Store) DeleteUserAffiliations(ctx context.Context, jid string) ([]string, error) {
	if jid == "" {
		return nil, nil
	}
	key := []byte(jid)
	var found bool
	err := s.mucView(ctx, func(t mucTx) error {
		found = t.users.Bucket(key) != nil
		return nil
	})
	var rooms []string
	if err == nil && found {
		err = s.mucUpdate(ctx, func(t mucTx) (error, error) {
			rooms = nil
			u := t.users.Bucket(key)
			if u == nil {
				return nil, nil
			}
			c := u.Cursor()
			for room, _ := c.First(); room != nil; room, _ = c.Next() {
				if err := mucDrop(t.affs, room, key); err != nil {
					return nil, err
				}
				rooms = append(rooms, string(room))
			}
			return nil, t.users.DeleteBucket(key)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("bbolt: delete affiliations of %q: %w", jid, err)
	}
	return rooms, nil
}

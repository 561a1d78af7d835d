package bbolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// recordVersion is the first byte of every account record. A decoder meeting
// a version it does not know returns an error wrapping ErrCorrupt.
const recordVersion = 1

// recordVersionRemoved marks a record of an account removed within its
// grace period: a version 1 record followed by the day of the removal.
const recordVersionRemoved = 2

// An account record (version 1) is, in order:
//
//	version     byte, 1
//	created     varint, days since 1970-01-01 UTC
//	lastLogin   varint, days since 1970-01-01 UTC
//	count       uvarint, number of hashes
//	count times, sorted by hash name:
//	  hash        uvarint length, then the name ("SHA-256")
//	  salt        uvarint length, then bytes
//	  iterations  varint
//	  storedKey   uvarint length, then bytes
//	  serverKey   uvarint length, then bytes
//
// Version 2 is the same followed by
//
//	removed     varint, days since 1970-01-01 UTC
//
// and is written only for an account with a Removed day, so a record
// without one reads the same in a Kiez that predates removals.
//
// The JID is not part of the record: it is the name of the user's bucket.
// Days are whole UTC days, so a record cannot reveal a time of day; the zero
// time.Time (year 1) is stored like any other day.

// Days since 1970-01-01 of the first and last days a record may hold,
// 0001-01-01 and 9999-12-31; anything outside is corrupt.
const (
	minDay = -719162
	maxDay = 2932896
)

// epochDays returns the number of days from 1970-01-01 to t's UTC day.
func epochDays(t time.Time) int64 {
	// Floor division: days before 1970 count down, not toward zero.
	s := storage.Day(t).Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return d
}

// dayFromEpoch is the inverse of epochDays. It returns the zero Time for
// 0001-01-01 so that "never logged in" decodes to exactly time.Time{}.
func dayFromEpoch(d int64) time.Time {
	if d == minDay {
		return time.Time{}
	}
	return time.Unix(d*86400, 0).UTC()
}

// encodeAccount encodes the record of a; a.JID is not part of it. It fails
// only for days outside years 1 to 9999, which a record cannot hold.
func encodeAccount(a storage.Account) ([]byte, error) {
	created, lastLogin, removed := epochDays(a.Created), epochDays(a.LastLogin), epochDays(a.Removed)
	for _, d := range []int64{created, lastLogin, removed} {
		if d < minDay || d > maxDay {
			return nil, fmt.Errorf("day %d is outside years 1 to 9999", d)
		}
	}
	size := 1 + 2*binary.MaxVarintLen64 + binary.MaxVarintLen64
	for h, k := range a.Keys {
		size += 5*binary.MaxVarintLen64 + len(h) + len(k.Salt) + len(k.StoredKey) + len(k.ServerKey)
	}
	b := make([]byte, 0, size+binary.MaxVarintLen64)
	if a.Removed.IsZero() {
		b = append(b, recordVersion)
	} else {
		b = append(b, recordVersionRemoved)
	}
	b = binary.AppendVarint(b, created)
	b = binary.AppendVarint(b, lastLogin)
	b = binary.AppendUvarint(b, uint64(len(a.Keys)))
	hashes := make([]storage.Hash, 0, len(a.Keys))
	for h := range a.Keys {
		hashes = append(hashes, h)
	}
	slices.Sort(hashes)
	for _, h := range hashes {
		k := a.Keys[h]
		b = appendBytes(b, []byte(h))
		b = appendBytes(b, k.Salt)
		b = binary.AppendVarint(b, int64(k.Iterations))
		b = appendBytes(b, k.StoredKey)
		b = appendBytes(b, k.ServerKey)
	}
	if !a.Removed.IsZero() {
		b = binary.AppendVarint(b, removed)
	}
	return b, nil
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// decodeAccount decodes a record made by encodeAccount into an Account with
// the given JID. The result shares no memory with data, so data may be a
// value that is only valid inside a bolt transaction. Anything but a
// well-formed record gives an error wrapping ErrCorrupt.
func decodeAccount(jid string, data []byte) (storage.Account, error) {
	a, err := decodeRecord(jid, data)
	if err != nil {
		return storage.Account{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return a, nil
}

func decodeRecord(jid string, data []byte) (storage.Account, error) {
	d := decoder{data: data}
	if len(data) == 0 {
		return storage.Account{}, errors.New("empty record")
	}
	v := d.u8()
	if v != recordVersion && v != recordVersionRemoved {
		return storage.Account{}, fmt.Errorf("unknown record version %d", v)
	}
	a := storage.Account{JID: jid}
	a.Created = d.day("created")
	a.LastLogin = d.day("last login")
	n := d.uvarint("hash count")
	// Each hash takes at least five bytes; a larger count is a lie, and must
	// not make us allocate.
	if d.err == nil && n > uint64(len(d.data))/5 {
		d.fail("hash count %d exceeds the %d bytes left", n, len(d.data))
	}
	if d.err != nil {
		return storage.Account{}, d.err
	}
	a.Keys = make(map[storage.Hash]storage.SCRAMKeys, n)
	var prev storage.Hash
	for i := range n {
		h := storage.Hash(d.field("hash name"))
		var k storage.SCRAMKeys
		k.Salt = d.field("salt")
		k.Iterations = d.intval("iterations")
		k.StoredKey = d.field("StoredKey")
		k.ServerKey = d.field("ServerKey")
		if d.err != nil {
			return storage.Account{}, d.err
		}
		if i > 0 && h <= prev {
			return storage.Account{}, fmt.Errorf("hash %q out of order or repeated", h)
		}
		prev = h
		a.Keys[h] = k
	}
	if v == recordVersionRemoved {
		if a.Removed = d.day("removed"); d.err != nil {
			return storage.Account{}, d.err
		}
		if a.Removed.IsZero() {
			return storage.Account{}, errors.New("version 2 record without a removal day")
		}
	}
	if len(d.data) != 0 {
		return storage.Account{}, fmt.Errorf("%d trailing bytes", len(d.data))
	}
	return a, nil
}

// decoder reads a record. After the first failure every read returns a
// zero value and err keeps that failure.
type decoder struct {
	data []byte
	err  error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) u8() byte {
	if d.err != nil || len(d.data) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.data[0]
	d.data = d.data[1:]
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.data)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.data = d.data[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.data)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.data = d.data[n:]
	return v
}

func (d *decoder) intval(what string) int {
	v := d.varint(what)
	if v < math.MinInt || v > math.MaxInt {
		d.fail("%s %d out of range", what, v)
		return 0
	}
	return int(v)
}

func (d *decoder) day(what string) time.Time {
	v := d.varint(what)
	if d.err != nil {
		return time.Time{}
	}
	if v < minDay || v > maxDay {
		d.fail("%s day %d outside years 1 to 9999", what, v)
		return time.Time{}
	}
	return dayFromEpoch(v)
}

// bytes returns a copy of the next length-prefixed field, or nil if it is
// empty.
func (d *decoder) field(what string) []byte {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.data)) {
		d.fail("%s length %d exceeds the %d bytes left", what, n, len(d.data))
		return nil
	}
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	copy(b, d.data)
	d.data = d.data[n:]
	return b
}

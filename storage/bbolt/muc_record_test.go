package bbolt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// TestMUCRecordFormats pins the bytes of the MUC records (version 1), so
// that a change of format cannot go unnoticed: files written by older
// versions must still read.
func TestMUCRecordFormats(t *testing.T) {
	june1 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	june3 := time.Date(2025, 6, 3, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		got  []byte
		want string
	}{
		// 2025-06-01 is day 20240, 2025-06-03 day 20242 (zigzag varints).
		{"room", encodeMUCRoom(storage.MUCRoom{JID: "r@muc", Config: []byte("<c/>"), Created: june1, LastActive: june3}), "01a0bc02a4bc023c632f3e"},
		// The zero time is 0001-01-01, day -719162.
		{"empty room", encodeMUCRoom(storage.MUCRoom{JID: "r@muc"}), "01f3e457f3e457"},
		{"entry", encodeMUCAff(storage.MUCAffiliation{Affiliation: storage.AffOwner, Nick: "al", Reason: "why"}), "010102616c776879"},
		{"nick only", encodeMUCAff(storage.MUCAffiliation{Nick: "n"}), "0100016e"},
		{"outcast", encodeMUCAff(storage.MUCAffiliation{Affiliation: storage.AffOutcast}), "010400"},
	} {
		if h := hex.EncodeToString(tt.got); h != tt.want {
			t.Errorf("%s = %s, want %s", tt.name, h, tt.want)
		}
	}
	hexBytes := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	r, err := decodeMUCRoom("r@muc", hexBytes("01a0bc02a4bc023c632f3e"))
	if want := (storage.MUCRoom{JID: "r@muc", Config: []byte("<c/>"), Created: june1, LastActive: june3}); err != nil || !reflect.DeepEqual(r, want) {
		t.Errorf("decodeMUCRoom = %+v, %v; want %+v", r, err, want)
	}
	if r, err := decodeMUCRoom("r@muc", hexBytes("01f3e457f3e457")); err != nil || !reflect.DeepEqual(r, storage.MUCRoom{JID: "r@muc"}) {
		t.Errorf("decodeMUCRoom of an empty room = %+v, %v", r, err)
	}
	a, err := decodeMUCAff("r@muc", "a@x", hexBytes("010102616c776879"))
	if want := (storage.MUCAffiliation{Room: "r@muc", JID: "a@x", Affiliation: storage.AffOwner, Nick: "al", Reason: "why"}); err != nil || a != want {
		t.Errorf("decodeMUCAff = %+v, %v; want %+v", a, err, want)
	}
	tooLate := binary.AppendVarint([]byte{mucV1}, maxDay+1)
	for _, bad := range [][]byte{
		{},
		hexBytes("02f3e457f3e457"), // unknown version
		hexBytes("01"),
		hexBytes("01a0bc02"), // no last active day
		append(bytes.Clone(tooLate), 0),
		append(hexBytes("01a0bc02"), tooLate[1:]...),
	} {
		if r, err := decodeMUCRoom("r@muc", bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeMUCRoom(%x) = %+v, %v; want ErrCorrupt", bad, r, err)
		}
	}
	for _, bad := range []string{
		"",
		"02016e",     // unknown version
		"01",         // no affiliation
		"0105016e",   // unknown affiliation
		"010000",     // neither an affiliation nor a nick
		"0101",       // no nick length
		"010103616c", // a nick longer than the record
	} {
		if a, err := decodeMUCAff("r@muc", "a@x", hexBytes(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeMUCAff(%s) = %+v, %v; want ErrCorrupt", bad, a, err)
		}
	}
}

func FuzzDecodeMUCRecords(f *testing.F) {
	f.Add(encodeMUCRoom(storage.MUCRoom{Config: []byte("<c/>"), Created: time.Unix(0, 0), LastActive: time.Unix(86400, 0)}))
	f.Add(encodeMUCRoom(storage.MUCRoom{}))
	f.Add(encodeMUCAff(storage.MUCAffiliation{Affiliation: storage.AffOwner, Nick: "al", Reason: "why"}))
	f.Add(encodeMUCAff(storage.MUCAffiliation{Nick: "n"}))
	f.Add([]byte{})
	f.Add([]byte{mucV1, 0x80, 0}) // a non-minimal varint
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		if r, err := decodeMUCRoom("r@muc", in); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeMUCRoom error %v does not wrap ErrCorrupt", err)
			}
		} else {
			for i := range in {
				in[i] ^= 0xff // the result must not share memory with its input
			}
			again, err := decodeMUCRoom("r@muc", encodeMUCRoom(r))
			if err != nil || !reflect.DeepEqual(again, r) {
				t.Fatalf("room round trip: %+v → %+v, %v", r, again, err)
			}
			copy(in, data)
		}
		if a, err := decodeMUCAff("r@muc", "a@x", in); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeMUCAff error %v does not wrap ErrCorrupt", err)
			}
		} else if again, err := decodeMUCAff("r@muc", "a@x", encodeMUCAff(a)); err != nil || again != a {
			t.Fatalf("entry round trip: %+v → %+v, %v", a, again, err)
		}
	})
}

// TestMUCAgainstMemory runs one random sequence of operations on a Store
// and on the memory backend and compares every result; at points on the
// way and after it, the by-user index must agree with the entries.
func TestMUCAgainstMemory(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "kiez.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := memory.New()
	rng := rand.New(rand.NewPCG(3, 4))
	rooms := []string{"a@muc.example.org", "b@muc.example.org", "c@chat.example.net"}
	jids := []string{"u@example.org", "v@example.org", "example.com", "w@example.org.uk"}
	affs := []string{"", storage.AffOwner, storage.AffAdmin, storage.AffMember, storage.AffOutcast}
	nicks := []string{"", "", "n1", "n2"}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	kind := func(err error) string {
		if errors.Is(err, storage.ErrNotFound) {
			return "not found"
		}
		if err != nil {
			return "error: " + err.Error()
		}
		return "ok"
	}
	for op := range 2000 {
		room, jid := pick(rooms), pick(jids)
		var got, want string
		switch r := rng.IntN(20); {
		case r < 3:
			day := time.Unix(rng.Int64N(1<<35), 0)
			rm := storage.MUCRoom{JID: room, Config: fmt.Appendf(nil, "<c%d/>", op), Created: day, LastActive: day.Add(time.Duration(rng.IntN(1e6)) * time.Second)}
			got, want = kind(s.PutRoom(ctx, rm)), kind(m.PutRoom(ctx, rm))
		case r < 4:
			got, want = kind(s.DeleteRoom(ctx, room)), kind(m.DeleteRoom(ctx, room))
		case r < 12:
			a := storage.MUCAffiliation{Room: room, JID: jid, Affiliation: pick(affs), Nick: pick(nicks), Reason: pick(nicks)}
			got, want = kind(s.SetAffiliation(ctx, a)), kind(m.SetAffiliation(ctx, a))
		case r < 13:
			r1, e1 := s.DeleteUserAffiliations(ctx, jid)
			r2, e2 := m.DeleteUserAffiliations(ctx, jid)
			got, want = fmt.Sprint(r1, kind(e1)), fmt.Sprint(r2, kind(e2))
		case r < 15:
			a1, e1 := s.Affiliation(ctx, room, jid)
			a2, e2 := m.Affiliation(ctx, room, jid)
			got, want = fmt.Sprint(a1, kind(e1)), fmt.Sprint(a2, kind(e2))
		case r < 17:
			r1, e1 := s.Room(ctx, room)
			r2, e2 := m.Room(ctx, room)
			got, want = fmt.Sprint(r1, kind(e1)), fmt.Sprint(r2, kind(e2))
		default:
			service := pick([]string{"", "muc.example.org", "chat.example.net"})
			r1, e1 := s.Rooms(ctx, service)
			r2, e2 := m.Rooms(ctx, service)
			got, want = fmt.Sprint(r1, kind(e1)), fmt.Sprint(r2, kind(e2))
		}
		if got != want {
			t.Fatalf("operation %d: bbolt %s, memory %s", op, got, want)
		}
		if op%100 == 99 || op == 1999 {
			compareMUC(t, s, m, rooms, jids)
		}
	}
}

// compareMUC fails unless s and m hold the same rooms and entries, seen
// by room and by user.
func compareMUC(t *testing.T, s *Store, m *memory.Store, rooms, jids []string) {
	t.Helper()
	ctx := t.Context()
	r1, e1 := s.Rooms(ctx, "")
	r2, e2 := m.Rooms(ctx, "")
	if fmt.Sprint(r1, e1) != fmt.Sprint(r2, e2) {
		t.Fatalf("Rooms: bbolt %v %v, memory %v %v", r1, e1, r2, e2)
	}
	for _, room := range rooms {
		a1, e1 := s.Affiliations(ctx, room)
		a2, e2 := m.Affiliations(ctx, room)
		if fmt.Sprint(a1, errors.Is(e1, storage.ErrNotFound)) != fmt.Sprint(a2, errors.Is(e2, storage.ErrNotFound)) {
			t.Fatalf("Affiliations(%s): bbolt %v %v, memory %v %v", room, a1, e1, a2, e2)
		}
	}
	for _, jid := range jids {
		a1, e1 := s.UserAffiliations(ctx, jid)
		a2, e2 := m.UserAffiliations(ctx, jid)
		if e1 != nil || e2 != nil || fmt.Sprint(a1) != fmt.Sprint(a2) {
			t.Fatalf("UserAffiliations(%s): bbolt %v %v, memory %v %v", jid, a1, e1, a2, e2)
		}
	}
}

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

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

var pepGoldenTime = time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)

// TestPEPRecordFormats pins the bytes of the PEP records (version 1), so
// that a change of format cannot go unnoticed: files written by older
// versions must still read.
func TestPEPRecordFormats(t *testing.T) {
	for _, tt := range []struct {
		name string
		got  []byte
		want string
	}{
		{"user", encodePEPUser(pepUserRec{nodes: 3, bytes: 300}), "0103ac02"},
		{"node", encodePEPNode(pepNodeRec{seq: 300, items: 2, bytes: 20, config: []byte("<c/>")}), "01ac0202143c632f3e"},
		{"node without config", encodePEPNode(pepNodeRec{}), "01000000"},
		{"item", encodePEPItem(storage.PEPItem{ID: "a", Payload: []byte("<p/>"), Published: pepGoldenTime}), "0180c99cb0aca09b0601613c702f3e"},
		{"item without payload", encodePEPItem(storage.PEPItem{ID: "a"}), "01ffffddf2dfffdfdc010161"},
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
	if u, err := decodePEPUser(hexBytes("0103ac02")); err != nil || u != (pepUserRec{nodes: 3, bytes: 300}) {
		t.Errorf("decodePEPUser = %+v, %v", u, err)
	}
	n, err := decodePEPNode("n", hexBytes("01ac0202143c632f3e"))
	if err != nil || !reflect.DeepEqual(n, pepNodeRec{seq: 300, items: 2, bytes: 20, config: []byte("<c/>")}) {
		t.Errorf("decodePEPNode = %+v, %v", n, err)
	}
	r, err := decodePEPItem(be64(1), hexBytes("0180c99cb0aca09b0601613c702f3e"))
	want := storage.PEPItem{ID: "a", Payload: []byte("<p/>"), Published: pepGoldenTime}
	if err != nil || !reflect.DeepEqual(r.item(), want) || r.size() != 5 {
		t.Errorf("decodePEPItem = %+v, %v; want %+v", r.item(), err, want)
	}
	r, err = decodePEPItem(be64(1), hexBytes("01ffffddf2dfffdfdc010161"))
	if err != nil || !reflect.DeepEqual(r.item(), storage.PEPItem{ID: "a"}) {
		t.Errorf("decodePEPItem of the zero time = %+v, %v", r.item(), err)
	}
}

func FuzzDecodePEPRecords(f *testing.F) {
	f.Add(encodePEPUser(pepUserRec{nodes: 3, bytes: 300}))
	f.Add(encodePEPNode(pepNodeRec{seq: 300, items: 2, bytes: 20, config: []byte("<c/>")}))
	f.Add(encodePEPItem(storage.PEPItem{ID: "a", Payload: []byte("<p/>"), Published: pepGoldenTime}))
	f.Add(encodePEPItem(storage.PEPItem{ID: "a"}))
	f.Add([]byte{})
	f.Add([]byte{pepV1, 0x80, 0}) // a non-minimal varint
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		if u, err := decodePEPUser(in); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodePEPUser error %v does not wrap ErrCorrupt", err)
			}
		} else if again, err := decodePEPUser(encodePEPUser(u)); err != nil || again != u {
			t.Fatalf("user round trip: %+v → %+v, %v", u, again, err)
		}
		if n, err := decodePEPNode("n", in); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodePEPNode error %v does not wrap ErrCorrupt", err)
			}
		} else {
			for i := range in {
				in[i] ^= 0xff // the result must not share memory with its input
			}
			again, err := decodePEPNode("n", encodePEPNode(n))
			if err != nil || !reflect.DeepEqual(again, n) {
				t.Fatalf("node round trip: %+v → %+v, %v", n, again, err)
			}
			copy(in, data)
		}
		if r, err := decodePEPItem(be64(1), in); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodePEPItem error %v does not wrap ErrCorrupt", err)
			}
		} else {
			it := r.item()
			for i := range in {
				in[i] ^= 0xff
			}
			r2, err := decodePEPItem(be64(1), encodePEPItem(it))
			if err != nil || !reflect.DeepEqual(r2.item(), it) || r2.size() != uint64(len(it.ID)+len(it.Payload)) {
				t.Fatalf("item round trip: %+v → %+v, %v", it, r2.item(), err)
			}
		}
	})
}

// TestPEPAgainstMemory runs one random sequence of operations on a Store
// and on the memory backend and compares every result; after it, and
// at points on the way, the file's counts and index must agree with the
// items stored.
func TestPEPAgainstMemory(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "kiez.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := memory.New()
	rng := rand.New(rand.NewPCG(1, 2))
	users := []string{"a@example.org", "b@example.org", "c@example.org"}
	nodes := []string{"n1", "n2", "n3", "n4"}
	ids := []string{"i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8"}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	limits := func() storage.PEPLimits {
		var lim storage.PEPLimits
		if rng.IntN(2) == 0 {
			lim.MaxItems = 1 + rng.IntN(4)
		}
		if rng.IntN(3) == 0 {
			lim.MaxNodes = 1 + rng.IntN(3)
		}
		if rng.IntN(3) == 0 {
			lim.MaxBytes = int64(50 + rng.IntN(200))
		}
		return lim
	}
	kind := func(err error) string {
		for _, e := range []error{storage.ErrNotFound, storage.ErrExists, storage.ErrLimit} {
			if errors.Is(err, e) {
				return e.Error()
			}
		}
		if err != nil {
			return "error: " + err.Error()
		}
		return "ok"
	}
	for op := range 3000 {
		user, node, id := pick(users), pick(nodes), pick(ids)
		var got, want string
		switch r := rng.IntN(20); {
		case r < 10:
			it := storage.PEPItem{ID: id, Payload: bytes.Repeat([]byte{'x'}, rng.IntN(40)), Published: time.UnixMicro(rng.Int64N(1 << 50))}
			config := fmt.Appendf(nil, "<c%d/>", op)
			lim := limits()
			c1, d1, e1 := s.PublishPEPItem(ctx, user, node, config, it, lim)
			c2, d2, e2 := m.PublishPEPItem(ctx, user, node, config, it, lim)
			got, want = fmt.Sprint(c1, d1, kind(e1)), fmt.Sprint(c2, d2, kind(e2))
		case r < 12:
			got, want = kind(s.RetractPEPItem(ctx, user, node, id)), kind(m.RetractPEPItem(ctx, user, node, id))
		case r < 14:
			n := storage.PEPNode{Name: node, Config: []byte("<created/>")}
			lim := limits()
			got, want = kind(s.CreatePEPNode(ctx, user, n, lim)), kind(m.CreatePEPNode(ctx, user, n, lim))
		case r < 16:
			lim := limits()
			config := fmt.Appendf(nil, "<configured%d/>", op)
			got, want = kind(s.ConfigurePEPNode(ctx, user, node, config, lim)), kind(m.ConfigurePEPNode(ctx, user, node, config, lim))
		case r < 17:
			got, want = kind(s.PurgePEPNode(ctx, user, node)), kind(m.PurgePEPNode(ctx, user, node))
		case r < 19:
			got, want = kind(s.DeletePEPNode(ctx, user, node)), kind(m.DeletePEPNode(ctx, user, node))
		default:
			if rng.IntN(5) == 0 {
				got, want = kind(s.DeletePEP(ctx, user)), kind(m.DeletePEP(ctx, user))
			} else {
				filter := []string{pick(ids), pick(ids)}
				max := rng.IntN(3)
				i1, e1 := s.PEPItems(ctx, user, node, filter, max)
				i2, e2 := m.PEPItems(ctx, user, node, filter, max)
				got, want = fmt.Sprint(i1, kind(e1)), fmt.Sprint(i2, kind(e2))
			}
		}
		if got != want {
			t.Fatalf("operation %d: bbolt %s, memory %s", op, got, want)
		}
		if op%100 == 99 {
			comparePEP(t, s, m, users, nodes)
			checkPEPFile(t, s.db)
		}
	}
	comparePEP(t, s, m, users, nodes)
	checkPEPFile(t, s.db)
}

// comparePEP fails unless s and m hold the same nodes and items.
func comparePEP(t *testing.T, s *Store, m *memory.Store, users, nodes []string) {
	t.Helper()
	ctx := t.Context()
	norm := func(ns []storage.PEPNode) []storage.PEPNode {
		for i := range ns {
			if len(ns[i].Config) == 0 {
				ns[i].Config = nil
			}
		}
		return ns
	}
	for _, u := range users {
		n1, e1 := s.PEPNodes(ctx, u)
		n2, e2 := m.PEPNodes(ctx, u)
		if e1 != nil || e2 != nil || !reflect.DeepEqual(norm(n1), norm(n2)) {
			t.Fatalf("nodes of %s: bbolt %+v, %v; memory %+v, %v", u, n1, e1, n2, e2)
		}
		for _, n := range nodes {
			i1, e1 := s.PEPItems(ctx, u, n, nil, 0)
			i2, e2 := m.PEPItems(ctx, u, n, nil, 0)
			if fmt.Sprint(i1) != fmt.Sprint(i2) || errors.Is(e1, storage.ErrNotFound) != errors.Is(e2, storage.ErrNotFound) {
				t.Fatalf("items of %s %s: bbolt %v, %v; memory %v, %v", u, n, i1, e1, i2, e2)
			}
		}
	}
}

// checkPEPFile fails unless every count in the pep bucket agrees with
// what it counts, and the ID index with the items.
func checkPEPFile(t *testing.T, db *bolt.DB) {
	t.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		top := tx.Bucket([]byte(pepBucket))
		if top == nil {
			return nil
		}
		return top.ForEach(func(user, _ []byte) error {
			u, err := pepUserOf(tx, string(user))
			if err != nil {
				return err
			}
			var nodes, total uint64
			err = u.nodes.ForEach(func(name, _ []byte) error {
				n, err := openPEPNode(u.nodes, string(name))
				if err != nil {
					return err
				}
				nodes++
				total += n.rec.bytes
				var items, size uint64
				seen := map[string]bool{}
				err = n.items.ForEach(func(k, v []byte) error {
					r, err := decodePEPItem(k, v)
					if err != nil {
						return err
					}
					if len(k) != 8 || binary.BigEndian.Uint64(k) > n.rec.seq || seen[string(r.id)] {
						return fmt.Errorf("node %s: item %x (%s) past seq %d or twice", name, k, r.id, n.rec.seq)
					}
					seen[string(r.id)] = true
					if seq := n.ids.Get(r.id); !bytes.Equal(seq, k) {
						return fmt.Errorf("node %s: index of %s is %x, not %x", name, r.id, seq, k)
					}
					items++
					size += r.size()
					return nil
				})
				if err != nil {
					return err
				}
				if idx := n.ids.Stats().KeyN; idx != int(items) {
					return fmt.Errorf("node %s: %d index entries for %d items", name, idx, items)
				}
				if items != n.rec.items || size != n.rec.bytes {
					return fmt.Errorf("node %s counts %d items of %d bytes, has %d of %d", name, n.rec.items, n.rec.bytes, items, size)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("user %s: %w", user, err)
			}
			if nodes == 0 || nodes != u.rec.nodes || total != u.rec.bytes {
				return fmt.Errorf("user %s counts %d nodes of %d bytes, has %d of %d", user, u.rec.nodes, u.rec.bytes, nodes, total)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

package bbolt_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
)

const pepTestNode = "urn:xmpp:avatar:metadata"

func pepPublish(t *testing.T, s *bbolt.Store, user, node, id, payload string, lim storage.PEPLimits) []string {
	t.Helper()
	it := storage.PEPItem{ID: id, Payload: []byte(payload), Published: time.Now()}
	_, dropped, err := s.PublishPEPItem(t.Context(), user, node, []byte("<config of "+user+"/>"), it, lim)
	if err != nil {
		t.Fatalf("PublishPEPItem(%q, %q, %q): %v", user, node, id, err)
	}
	return dropped
}

func pepIDs(t *testing.T, s *bbolt.Store, user, node string) []string {
	t.Helper()
	items, err := s.PEPItems(t.Context(), user, node, nil, 0)
	if err != nil {
		t.Fatalf("PEPItems(%q, %q): %v", user, node, err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	return ids
}

// PEP data survives closing and opening the file: items keep their order,
// publishing goes on after the newest, and the byte total still counts.
func TestPEPReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	// Reads and deletes before anything was stored work without the
	// bucket.
	if nodes, err := s.PEPNodes(ctx, "alice@example.org"); err != nil || nodes != nil {
		t.Fatalf("PEPNodes before the first write = %v, %v", nodes, err)
	}
	if err := s.DeletePEP(ctx, "alice@example.org"); err != nil {
		t.Fatalf("DeletePEP before the first write: %v", err)
	}
	for _, id := range []string{"a", "b", "c"} {
		pepPublish(t, s, "alice@example.org", pepTestNode, id, "1234567890", storage.PEPLimits{})
	}
	pepPublish(t, s, "alice@example.org", pepTestNode, "a", "1234567890", storage.PEPLimits{})
	mustClose(t, s)

	s = open(t, path)
	if got := pepIDs(t, s, "alice@example.org", pepTestNode); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("after reopening: %q, want [b c a]", got)
	}
	pepPublish(t, s, "alice@example.org", pepTestNode, "d", "1234567890", storage.PEPLimits{})
	pepPublish(t, s, "alice@example.org", pepTestNode, "b", "1234567890", storage.PEPLimits{})
	if got := pepIDs(t, s, "alice@example.org", pepTestNode); !slices.Equal(got, []string{"c", "a", "d", "b"}) {
		t.Errorf("publishing after reopening: %q, want [c a d b]", got)
	}
	n, err := s.PEPNode(ctx, "alice@example.org", pepTestNode)
	if err != nil || n.Items != 4 || n.Bytes != 44 || string(n.Config) != "<config of alice@example.org/>" {
		t.Errorf("PEPNode after reopening = %+v, %v; want 4 items of 44 bytes", n, err)
	}
	// 44 bytes are stored: 11 more fit in 55, 12 do not.
	lim := storage.PEPLimits{MaxBytes: 55}
	it := storage.PEPItem{ID: "e", Payload: []byte("12345678901")}
	if _, _, err := s.PublishPEPItem(ctx, "alice@example.org", "other", nil, it, lim); !errors.Is(err, storage.ErrLimit) {
		t.Errorf("publishing past MaxBytes after reopening = %v, want ErrLimit", err)
	}
	it.Payload = it.Payload[:10]
	if _, _, err := s.PublishPEPItem(ctx, "alice@example.org", "other", nil, it, lim); err != nil {
		t.Errorf("publishing up to MaxBytes after reopening: %v", err)
	}
}

// Retracted, dropped, purged and deleted items, deleted nodes and a user
// whose nodes are all gone leave no byte in the file, and others' data
// stays.
func TestPEPRawWalk(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	const (
		gone     = "deletedalice@example.org"
		emptied  = "emptiedcarol@example.org"
		kept     = "keptbob@example.org"
		keptNode = "urn:keptnode"
	)
	for _, u := range []string{gone, emptied, kept} {
		pepPublish(t, s, u, pepTestNode, "id-"+u[:4], "<payload of "+u+"/>", storage.PEPLimits{})
		pepPublish(t, s, u, "urn:node-of-"+u[:4], "x", "<x of "+u+"/>", storage.PEPLimits{})
	}
	if err := s.DeletePEP(ctx, gone); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{pepTestNode, "urn:node-of-empt"} {
		if err := s.DeletePEPNode(ctx, emptied, n); err != nil {
			t.Fatal(err)
		}
	}

	// Of kept's items: one retracted, two dropped by MaxItems on publish
	// and on configure, a purged node, a deleted node.
	pepPublish(t, s, kept, keptNode, "retracted-id", "<retracted payload/>", storage.PEPLimits{})
	pepPublish(t, s, kept, keptNode, "dropped-id", "<dropped payload/>", storage.PEPLimits{})
	pepPublish(t, s, kept, keptNode, "configured-away-id", "<configured-away payload/>", storage.PEPLimits{})
	pepPublish(t, s, kept, keptNode, "replaced-id", "<replaced payload/>", storage.PEPLimits{})
	pepPublish(t, s, kept, keptNode, "kept-id", "<kept payload/>", storage.PEPLimits{})
	if err := s.RetractPEPItem(ctx, kept, keptNode, "retracted-id"); err != nil {
		t.Fatal(err)
	}
	if dropped := pepPublish(t, s, kept, keptNode, "replaced-id", "<new payload/>", storage.PEPLimits{MaxItems: 3}); !slices.Equal(dropped, []string{"dropped-id"}) {
		t.Fatalf("dropped %q", dropped)
	}
	if err := s.ConfigurePEPNode(ctx, kept, keptNode, []byte("<config/>"), storage.PEPLimits{MaxItems: 2}); err != nil {
		t.Fatal(err)
	}
	pepPublish(t, s, kept, "urn:purged", "purged-id", "<purged payload/>", storage.PEPLimits{})
	if err := s.PurgePEPNode(ctx, kept, "urn:purged"); err != nil {
		t.Fatal(err)
	}
	pepPublish(t, s, kept, "urn:deleted-node", "deleted-node-id", "<deleted-node payload/>", storage.PEPLimits{})
	if err := s.DeletePEPNode(ctx, kept, "urn:deleted-node"); err != nil {
		t.Fatal(err)
	}
	if got := pepIDs(t, s, kept, keptNode); !slices.Equal(got, []string{"kept-id", "replaced-id"}) {
		t.Fatalf("kept's node holds %q", got)
	}
	mustClose(t, s)

	all := everything(t, path)
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"pep", true},
		{"deletedalice", false},
		{"id-dele", false},
		{"urn:node-of-dele", false},
		{"emptiedcarol", false},
		{"id-empt", false},
		{"urn:node-of-empt", false},
		{"retracted", false},
		{"dropped", false},
		{"configured-away", false},
		{"replaced payload", false},
		{"purged-id", false},
		{"purged payload", false},
		{"deleted-node", false},
		{"keptbob", true},
		{"id-kept", true},
		{"urn:node-of-kept", true},
		{"<payload of keptbob@example.org/>", true},
		{"kept-id", true},
		{"<kept payload/>", true},
		{"replaced-id", true},
		{"<new payload/>", true},
		{"urn:purged", true},
	} {
		if got := containsAnywhere(all, tt.s); got != tt.want {
			t.Errorf("%q appears in the database: %v, want %v", tt.s, got, tt.want)
		}
	}
}

// A damaged record makes reads and writes that meet it fail with
// ErrCorrupt, not ErrNotFound; it is left as it is, DeletePEP removes
// it, and other users and nodes are not affected.
func TestPEPCorrupt(t *testing.T) {
	be64 := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	for _, tt := range []struct {
		name string
		// damage changes the bucket of node "n" of the user.
		damage func(user, node *bolt.Bucket) error
		// nodeReads is whether PEPNode and PEPNodes still work.
		nodeReads bool
	}{
		{"user record", func(u, _ *bolt.Bucket) error { return u.Put([]byte("meta"), []byte{9}) }, false},
		{"no user record", func(u, _ *bolt.Bucket) error { return u.Delete([]byte("meta")) }, false},
		{"node record", func(_, n *bolt.Bucket) error { return n.Put([]byte("meta"), []byte{1, 0x80}) }, false},
		{"node without items", func(_, n *bolt.Bucket) error { return n.DeleteBucket([]byte("items")) }, false},
		{"item record", func(_, n *bolt.Bucket) error { return n.Bucket([]byte("items")).Put(be64(1), []byte{7, 7}) }, true},
		{"index without item", func(_, n *bolt.Bucket) error { return n.Bucket([]byte("items")).Delete(be64(1)) }, true},
		{"index to another item", func(_, n *bolt.Bucket) error { return n.Bucket([]byte("ids")).Put([]byte("a"), be64(2)) }, true},
		{"short index entry", func(_, n *bolt.Bucket) error { return n.Bucket([]byte("ids")).Put([]byte("a"), []byte{1}) }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "kiez.db")
			s := open(t, path)
			const user, other = "alice@example.org", "bob@example.org"
			for _, u := range []string{user, other} {
				for _, id := range []string{"a", "b"} {
					pepPublish(t, s, u, "n", id, "<p/>", storage.PEPLimits{})
				}
			}
			mustClose(t, s)
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				u := tx.Bucket([]byte("pep")).Bucket([]byte(user))
				return tt.damage(u, u.Bucket([]byte("nodes")).Bucket([]byte("n")))
			})
			s = open(t, path)
			corrupt := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, bbolt.ErrCorrupt) || errors.Is(err, storage.ErrNotFound) {
					t.Errorf("%s = %v, want ErrCorrupt", what, err)
				}
			}
			_, err := s.PEPItems(ctx, user, "n", []string{"a"}, 0)
			corrupt("PEPItems(a)", err)
			_, _, err = s.PublishPEPItem(ctx, user, "n", nil, storage.PEPItem{ID: "a"}, storage.PEPLimits{})
			corrupt("PublishPEPItem(a)", err)
			corrupt("RetractPEPItem(a)", s.RetractPEPItem(ctx, user, "n", "a"))
			_, err = s.PEPNode(ctx, user, "n")
			if tt.nodeReads {
				if err != nil {
					t.Errorf("PEPNode: %v", err)
				}
			} else {
				corrupt("PEPNode", err)
				_, err = s.PEPNodes(ctx, user)
				corrupt("PEPNodes", err)
			}
			if got := pepIDs(t, s, other, "n"); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("another user's items: %q", got)
			}
			pepPublish(t, s, other, "n", "c", "<p/>", storage.PEPLimits{})
			if err := s.DeletePEP(ctx, user); err != nil {
				t.Fatalf("DeletePEP of a damaged user: %v", err)
			}
			if nodes, err := s.PEPNodes(ctx, user); err != nil || nodes != nil {
				t.Errorf("after DeletePEP: %v, %v", nodes, err)
			}
			pepPublish(t, s, user, "n", "a", "<p/>", storage.PEPLimits{})
		})
	}
}

// Concurrent publishes that are refused share their transaction with
// publishes that are not, and neither changes the other's outcome.
func TestPEPRefusedInBatch(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "kiez.db"))
	const workers = 16
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			user := fmt.Sprintf("u%d@example.org", w)
			lim := storage.PEPLimits{}
			if w%2 == 1 {
				lim.MaxBytes = 1 // refused
			}
			_, _, err := s.PublishPEPItem(ctx, user, "n", nil, storage.PEPItem{ID: "id", Payload: []byte("<p/>")}, lim)
			errs <- err
		}()
	}
	refused := 0
	for range workers {
		if err := <-errs; errors.Is(err, storage.ErrLimit) {
			refused++
		} else if err != nil {
			t.Errorf("publish: %v", err)
		}
	}
	if refused != workers/2 {
		t.Errorf("%d publishes refused, want %d", refused, workers/2)
	}
	for w := range workers {
		nodes, err := s.PEPNodes(ctx, fmt.Sprintf("u%d@example.org", w))
		if err != nil || len(nodes) != 1-w%2 {
			t.Errorf("user %d has nodes %v, %v", w, nodes, err)
		}
	}
}

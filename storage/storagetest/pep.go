package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// TestPEP checks an implementation of storage.PEP. newStore must return a
// fresh, empty store each time it is called; it may use t to register
// cleanup. Every subtest gets its own store.
func TestPEP(t *testing.T, newStore func(t *testing.T) storage.PEP) {
	tests := []struct {
		name string
		test func(t *testing.T, s storage.PEP)
	}{
		{"Empty", testPEPEmpty},
		{"CreateAndList", testPEPCreateAndList},
		{"Publish", testPEPPublish},
		{"Republish", testPEPRepublish},
		{"Published", testPEPPublished},
		{"MaxItems", testPEPMaxItems},
		{"Configure", testPEPConfigure},
		{"MaxNodes", testPEPMaxNodes},
		{"MaxBytes", testPEPMaxBytes},
		{"Items", testPEPItems},
		{"Retract", testPEPRetract},
		{"Purge", testPEPPurge},
		{"DeleteNode", testPEPDeleteNode},
		{"DeletePEP", testPEPDeletePEP},
		{"Copies", testPEPCopies},
		{"Invalid", testPEPInvalid},
		{"Concurrent", testPEPConcurrent},
		{"ConcurrentNodes", testPEPConcurrentNodes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, newStore(t))
		})
	}
}

const (
	pUser  = "alice@example.org"
	pOther = "bob@example.org"
	pNode  = "urn:xmpp:avatar:metadata"
	pNode2 = "http://jabber.org/protocol/tune"
)

// pepT0 is the first publication time of the tests; item i of a test is
// published i seconds later.
var pepT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// pepPayload is the payload the tests publish under id.
func pepPayload(id string) []byte { return []byte("<data xmlns='urn:x'>" + id + "</data>") }

// pepSize is what the item id with pepPayload(id) counts towards
// PEPLimits.MaxBytes.
func pepSize(id string) int64 { return int64(len(id) + len(pepPayload(id))) }

func pepItem(id string, i int) storage.PEPItem {
	return storage.PEPItem{ID: id, Payload: pepPayload(id), Published: pepT0.Add(time.Duration(i) * time.Second)}
}

// isRefusal reports whether err wraps one of the errors the contract
// names for a refused write.
func isRefusal(err error) bool {
	return errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrExists) || errors.Is(err, storage.ErrLimit)
}

func mustCreateNode(t *testing.T, s storage.PEP, user, node string, config []byte, lim storage.PEPLimits) {
	t.Helper()
	if err := s.CreatePEPNode(t.Context(), user, storage.PEPNode{Name: node, Config: config}, lim); err != nil {
		t.Fatalf("CreatePEPNode(%q, %q): %v", user, node, err)
	}
}

// mustPublish publishes id with pepPayload(id), published i seconds after
// pepT0, and returns whether the node was created and the dropped IDs.
func mustPublish(t *testing.T, s storage.PEP, user, node, id string, i int, lim storage.PEPLimits) (bool, []string) {
	t.Helper()
	created, dropped, err := s.PublishPEPItem(t.Context(), user, node, []byte("<x/>"), pepItem(id, i), lim)
	if err != nil {
		t.Fatalf("PublishPEPItem(%q, %q, %q): %v", user, node, id, err)
	}
	return created, dropped
}

// publishAll publishes ids in order without limits.
func publishAll(t *testing.T, s storage.PEP, user, node string, ids ...string) {
	t.Helper()
	for i, id := range ids {
		mustPublish(t, s, user, node, id, i, storage.PEPLimits{})
	}
}

func mustNode(t *testing.T, s storage.PEP, user, node string) storage.PEPNode {
	t.Helper()
	n, err := s.PEPNode(t.Context(), user, node)
	if err != nil {
		t.Fatalf("PEPNode(%q, %q): %v", user, node, err)
	}
	return n
}

func mustItems(t *testing.T, s storage.PEP, user, node string, ids []string, max int) []storage.PEPItem {
	t.Helper()
	items, err := s.PEPItems(t.Context(), user, node, ids, max)
	if err != nil {
		t.Fatalf("PEPItems(%q, %q, %q, %d): %v", user, node, ids, max, err)
	}
	return items
}

func itemIDs(items []storage.PEPItem) []string {
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	return ids
}

// checkPEPItems fails unless node holds exactly the items want, oldest
// first, each with pepPayload as its payload, and unless the node's counts
// agree.
func checkPEPItems(t *testing.T, s storage.PEP, user, node string, want ...string) {
	t.Helper()
	items := mustItems(t, s, user, node, nil, 0)
	if got := itemIDs(items); !slices.Equal(got, want) {
		t.Errorf("items of %q of %q = %q, want %q", node, user, got, want)
	}
	var size int64
	for _, it := range items {
		if !bytes.Equal(it.Payload, pepPayload(it.ID)) {
			t.Errorf("item %q of %q of %q has payload %s", it.ID, node, user, abbrev(it.Payload))
		}
		size += int64(len(it.ID) + len(it.Payload))
	}
	n := mustNode(t, s, user, node)
	if n.Items != len(items) || n.Bytes != size {
		t.Errorf("node %q of %q counts %d items of %d bytes, has %d of %d", node, user, n.Items, n.Bytes, len(items), size)
	}
}

// checkNodeNames fails unless user has exactly the nodes want, in order.
func checkNodeNames(t *testing.T, s storage.PEP, user string, want ...string) {
	t.Helper()
	nodes, err := s.PEPNodes(t.Context(), user)
	if err != nil {
		t.Fatalf("PEPNodes(%q): %v", user, err)
	}
	var got []string
	for _, n := range nodes {
		got = append(got, n.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("PEPNodes(%q) = %q, want %q", user, got, want)
	}
}

func checkNodeGone(t *testing.T, s storage.PEP, user, node string) {
	t.Helper()
	if n, err := s.PEPNode(t.Context(), user, node); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PEPNode(%q, %q) = %+v, %v; want ErrNotFound", user, node, n, err)
	}
	if items, err := s.PEPItems(t.Context(), user, node, nil, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PEPItems(%q, %q) = %d items, %v; want ErrNotFound", user, node, len(items), err)
	}
}

func checkErrIs(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s = %v, want an error wrapping %v", what, err, want)
	}
}

func testPEPEmpty(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	for _, user := range []string{pUser, ""} {
		if nodes, err := s.PEPNodes(ctx, user); err != nil || nodes != nil {
			t.Errorf("PEPNodes(%q) of a new store = %v, %v; want nil, nil", user, nodes, err)
		}
		checkNodeGone(t, s, user, pNode)
		checkErrIs(t, "ConfigurePEPNode of a missing node", s.ConfigurePEPNode(ctx, user, pNode, nil, storage.PEPLimits{}), storage.ErrNotFound)
		checkErrIs(t, "DeletePEPNode of a missing node", s.DeletePEPNode(ctx, user, pNode), storage.ErrNotFound)
		checkErrIs(t, "RetractPEPItem of a missing node", s.RetractPEPItem(ctx, user, pNode, "x"), storage.ErrNotFound)
		checkErrIs(t, "PurgePEPNode of a missing node", s.PurgePEPNode(ctx, user, pNode), storage.ErrNotFound)
		if err := s.DeletePEP(ctx, user); err != nil {
			t.Errorf("DeletePEP(%q) of a user without nodes: %v", user, err)
		}
	}
	checkNodeNames(t, s, pUser)
}

func testPEPCreateAndList(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	names := []string{pNode, pNode2, "urn:xmpp:avatar:data", "Z", "a", "ä", "0", "urn:xmpp:omemo:2:bundles", "eu.siacs.conversations.axolotl.devicelist"}
	for i, name := range names {
		n := storage.PEPNode{Name: name, Config: []byte("<config n='" + name + "'/>"), Items: 99 + i, Bytes: 1234}
		if err := s.CreatePEPNode(ctx, pUser, n, storage.PEPLimits{}); err != nil {
			t.Fatalf("CreatePEPNode(%q): %v", name, err)
		}
	}
	mustCreateNode(t, s, pUser, "no config", nil, storage.PEPLimits{})
	want := append(slices.Clone(names), "no config")
	slices.Sort(want)
	checkNodeNames(t, s, pUser, want...)

	nodes, err := s.PEPNodes(ctx, pUser)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		wantConfig := []byte("<config n='" + n.Name + "'/>")
		if n.Name == "no config" {
			wantConfig = nil
		}
		if !bytes.Equal(n.Config, wantConfig) || n.Items != 0 || n.Bytes != 0 {
			t.Errorf("PEPNodes: node %+v, want config %s and no items", n, wantConfig)
		}
		if one := mustNode(t, s, pUser, n.Name); one.Name != n.Name || !bytes.Equal(one.Config, n.Config) || one.Items != 0 || one.Bytes != 0 {
			t.Errorf("PEPNode(%q) = %+v, PEPNodes has %+v", n.Name, one, n)
		}
		if items := mustItems(t, s, pUser, n.Name, nil, 0); len(items) != 0 {
			t.Errorf("a new node has items %q", itemIDs(items))
		}
	}

	// Creating a node again fails and changes nothing.
	err = s.CreatePEPNode(ctx, pUser, storage.PEPNode{Name: pNode, Config: []byte("other")}, storage.PEPLimits{})
	checkErrIs(t, "CreatePEPNode of an existing node", err, storage.ErrExists)
	if n := mustNode(t, s, pUser, pNode); string(n.Config) != "<config n='"+pNode+"'/>" {
		t.Errorf("a second CreatePEPNode changed the config to %q", n.Config)
	}

	// Other users, also ones whose JIDs share a prefix, have their own.
	for _, other := range []string{pOther, "alice@example.org.evil", "alic@example.org", "example.org"} {
		checkNodeNames(t, s, other)
		checkNodeGone(t, s, other, pNode)
	}
	mustCreateNode(t, s, pOther, pNode, []byte("bob's"), storage.PEPLimits{})
	checkNodeNames(t, s, pOther, pNode)
	if n := mustNode(t, s, pUser, pNode); string(n.Config) != "<config n='"+pNode+"'/>" {
		t.Errorf("another user's node changed the config to %q", n.Config)
	}
}

func testPEPPublish(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	created, dropped, err := s.PublishPEPItem(ctx, pUser, pNode, []byte("<config/>"), pepItem("a", 0), storage.PEPLimits{})
	if err != nil || !created || dropped != nil {
		t.Fatalf("first PublishPEPItem = %v, %q, %v; want created, nothing dropped", created, dropped, err)
	}
	if n := mustNode(t, s, pUser, pNode); string(n.Config) != "<config/>" {
		t.Errorf("a node created by publishing has config %q, want <config/>", n.Config)
	}
	created, dropped, err = s.PublishPEPItem(ctx, pUser, pNode, []byte("<other/>"), pepItem("b", 1), storage.PEPLimits{})
	if err != nil || created || dropped != nil {
		t.Fatalf("second PublishPEPItem = %v, %q, %v; want not created, nothing dropped", created, dropped, err)
	}
	if n := mustNode(t, s, pUser, pNode); string(n.Config) != "<config/>" {
		t.Errorf("publishing to an existing node changed its config to %q", n.Config)
	}
	publishAll(t, s, pUser, pNode, "c", "d")
	checkPEPItems(t, s, pUser, pNode, "a", "b", "c", "d")
	items := mustItems(t, s, pUser, pNode, nil, 0)
	for i, it := range items {
		if want := pepT0.Add(time.Duration(i) * time.Second); i < 2 && !it.Published.Equal(want) {
			t.Errorf("item %q published %v, want %v", it.ID, it.Published, want)
		}
	}

	// An empty and a nil payload are stored.
	if _, _, err := s.PublishPEPItem(ctx, pUser, pNode2, nil, storage.PEPItem{ID: "empty", Payload: []byte{}}, storage.PEPLimits{}); err != nil {
		t.Fatalf("publish an empty payload: %v", err)
	}
	if _, _, err := s.PublishPEPItem(ctx, pUser, pNode2, nil, storage.PEPItem{ID: "nil"}, storage.PEPLimits{}); err != nil {
		t.Fatalf("publish a nil payload: %v", err)
	}
	got := mustItems(t, s, pUser, pNode2, nil, 0)
	if len(got) != 2 || got[0].ID != "empty" || len(got[0].Payload) != 0 || got[1].ID != "nil" || len(got[1].Payload) != 0 {
		t.Errorf("items with empty payloads = %+v", got)
	}
	if n := mustNode(t, s, pUser, pNode2); n.Items != 2 || n.Bytes != int64(len("empty")+len("nil")) || len(n.Config) != 0 {
		t.Errorf("node with empty payloads = %+v", n)
	}

	// Odd IDs are IDs like others.
	odd := []string{"ключ with spaces", "\x00\xff", "a:b/c", "2025-06-01T12:00:00Z"}
	publishAll(t, s, pUser, "odd", odd...)
	checkPEPItems(t, s, pUser, "odd", odd...)
	checkNodeNames(t, s, pUser, pNode2, "odd", pNode)
	// Another user's node of the same name is another node.
	checkNodeGone(t, s, pOther, pNode)
}

func testPEPRepublish(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	publishAll(t, s, pUser, pNode, "a", "b", "c")
	newer := storage.PEPItem{ID: "a", Payload: pepPayload("a"), Published: pepT0.Add(time.Hour)}
	created, dropped, err := s.PublishPEPItem(ctx, pUser, pNode, nil, newer, storage.PEPLimits{})
	if err != nil || created || dropped != nil {
		t.Fatalf("re-publish = %v, %q, %v; want not created, nothing dropped", created, dropped, err)
	}
	checkPEPItems(t, s, pUser, pNode, "b", "c", "a")
	items := mustItems(t, s, pUser, pNode, []string{"a"}, 0)
	if len(items) != 1 || !items[0].Published.Equal(newer.Published) {
		t.Errorf("re-published item = %+v, want published %v", items, newer.Published)
	}

	// A bigger, then a smaller payload replace the old one and its size.
	for _, p := range [][]byte{big(10 << 10), []byte("s")} {
		if _, _, err := s.PublishPEPItem(ctx, pUser, pNode, nil, storage.PEPItem{ID: "b", Payload: p}, storage.PEPLimits{}); err != nil {
			t.Fatal(err)
		}
		items := mustItems(t, s, pUser, pNode, nil, 0)
		if got := itemIDs(items); !slices.Equal(got, []string{"c", "a", "b"}) || !bytes.Equal(items[2].Payload, p) {
			t.Fatalf("after re-publishing b with %s: %q, b = %s", abbrev(p), got, abbrev(items[2].Payload))
		}
		want := pepSize("c") + pepSize("a") + int64(1+len(p))
		if n := mustNode(t, s, pUser, pNode); n.Items != 3 || n.Bytes != want {
			t.Errorf("after re-publishing b with %s: node %+v, want 3 items of %d bytes", abbrev(p), n, want)
		}
	}
	// Publishing the newest again keeps the order.
	mustPublish(t, s, pUser, pNode, "b", 9, storage.PEPLimits{})
	checkPEPItems(t, s, pUser, pNode, "c", "a", "b")
	mustPublish(t, s, pUser, pNode, "c", 10, storage.PEPLimits{})
	mustPublish(t, s, pUser, pNode, "d", 11, storage.PEPLimits{})
	mustPublish(t, s, pUser, pNode, "a", 12, storage.PEPLimits{})
	checkPEPItems(t, s, pUser, pNode, "b", "c", "d", "a")
	if got := itemIDs(mustItems(t, s, pUser, pNode, nil, 2)); !slices.Equal(got, []string{"d", "a"}) {
		t.Errorf("2 newest after re-publishing = %q, want [d a]", got)
	}
}

func testPEPPublished(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+5", 5*3600)
	for i, p := range []time.Time{
		pepT0.Add(123456789 * time.Nanosecond),
		pepT0.In(zone).Add(999 * time.Nanosecond),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Now(), // with a monotonic reading
		{},
	} {
		id := fmt.Sprint(i)
		if _, _, err := s.PublishPEPItem(ctx, pUser, pNode, nil, storage.PEPItem{ID: id, Published: p}, storage.PEPLimits{}); err != nil {
			t.Fatalf("publish at %v: %v", p, err)
		}
		items := mustItems(t, s, pUser, pNode, []string{id}, 0)
		if len(items) != 1 {
			t.Fatalf("item %s is gone", id)
		}
		got, want := items[0].Published, p.Truncate(time.Microsecond)
		if !got.Equal(want) || got.Location() != time.UTC || got.IsZero() != p.IsZero() {
			t.Errorf("published %v comes back as %v (%v), want %v in UTC", p, got, got.Location(), want)
		}
	}
}

func testPEPMaxItems(t *testing.T, s storage.PEP) {
	lim := storage.PEPLimits{MaxItems: 3}
	var all [][]string
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		_, dropped := mustPublish(t, s, pUser, pNode, id, i, lim)
		all = append(all, dropped)
	}
	if want := [][]string{nil, nil, nil, {"a"}, {"b"}}; fmt.Sprint(all) != fmt.Sprint(want) {
		t.Errorf("dropped %q, want %q", all, want)
	}
	checkPEPItems(t, s, pUser, pNode, "c", "d", "e")

	// Re-publishing drops nothing when the count stays, and the replaced
	// item is never reported as dropped.
	if _, dropped := mustPublish(t, s, pUser, pNode, "c", 5, lim); dropped != nil {
		t.Errorf("re-publishing c dropped %q, want nothing", dropped)
	}
	checkPEPItems(t, s, pUser, pNode, "d", "e", "c")
	if _, dropped := mustPublish(t, s, pUser, pNode, "d", 6, storage.PEPLimits{MaxItems: 2}); !slices.Equal(dropped, []string{"e"}) {
		t.Errorf("re-publishing d with MaxItems 2 dropped %q, want [e]", dropped)
	}
	checkPEPItems(t, s, pUser, pNode, "c", "d")

	// A lower limit drops every item beyond it, oldest first.
	publishAll(t, s, pUser, pNode, "f", "g", "h")
	checkPEPItems(t, s, pUser, pNode, "c", "d", "f", "g", "h")
	if _, dropped := mustPublish(t, s, pUser, pNode, "i", 9, storage.PEPLimits{MaxItems: 2}); !slices.Equal(dropped, []string{"c", "d", "f", "g"}) {
		t.Errorf("publishing with MaxItems 2 dropped %q, want [c d f g]", dropped)
	}
	checkPEPItems(t, s, pUser, pNode, "h", "i")

	// With MaxItems 1, re-publishing the one item drops nothing, and a
	// new one drops the old.
	lim = storage.PEPLimits{MaxItems: 1}
	if _, dropped := mustPublish(t, s, pUser, pNode2, "only", 0, lim); dropped != nil {
		t.Errorf("dropped %q", dropped)
	}
	if _, dropped := mustPublish(t, s, pUser, pNode2, "only", 1, lim); dropped != nil {
		t.Errorf("re-publishing the only item dropped %q", dropped)
	}
	if _, dropped := mustPublish(t, s, pUser, pNode2, "next", 2, lim); !slices.Equal(dropped, []string{"only"}) {
		t.Errorf("dropped %q, want [only]", dropped)
	}
	checkPEPItems(t, s, pUser, pNode2, "next")
	// The other node kept its items.
	checkPEPItems(t, s, pUser, pNode, "h", "i")

	// Dropped items are gone: retracting one fails, publishing it again
	// makes it new.
	checkErrIs(t, "RetractPEPItem of a dropped item", s.RetractPEPItem(t.Context(), pUser, pNode2, "only"), storage.ErrNotFound)
	if got := mustItems(t, s, pUser, pNode2, []string{"only"}, 0); len(got) != 0 {
		t.Errorf("PEPItems finds the dropped item: %q", itemIDs(got))
	}
}

func testPEPConfigure(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	mustCreateNode(t, s, pUser, pNode, []byte("<old/>"), storage.PEPLimits{})
	publishAll(t, s, pUser, pNode, "a", "b", "c", "d")
	if err := s.ConfigurePEPNode(ctx, pUser, pNode, []byte("<new/>"), storage.PEPLimits{}); err != nil {
		t.Fatalf("ConfigurePEPNode: %v", err)
	}
	if n := mustNode(t, s, pUser, pNode); string(n.Config) != "<new/>" {
		t.Errorf("config = %q, want <new/>", n.Config)
	}
	checkPEPItems(t, s, pUser, pNode, "a", "b", "c", "d")
	if err := s.ConfigurePEPNode(ctx, pUser, pNode, []byte("<max2/>"), storage.PEPLimits{MaxItems: 2}); err != nil {
		t.Fatalf("ConfigurePEPNode with MaxItems 2: %v", err)
	}
	checkPEPItems(t, s, pUser, pNode, "c", "d")
	if n := mustNode(t, s, pUser, pNode); string(n.Config) != "<max2/>" {
		t.Errorf("config = %q, want <max2/>", n.Config)
	}
	if err := s.ConfigurePEPNode(ctx, pUser, pNode, nil, storage.PEPLimits{MaxItems: 5}); err != nil {
		t.Fatal(err)
	}
	checkPEPItems(t, s, pUser, pNode, "c", "d")
	if n := mustNode(t, s, pUser, pNode); len(n.Config) != 0 {
		t.Errorf("config = %q, want none", n.Config)
	}
	// The bytes dropped are free again.
	lim := storage.PEPLimits{MaxBytes: pepSize("c") + pepSize("d") + pepSize("e")}
	mustPublish(t, s, pUser, pNode, "e", 5, lim)
	checkErrIs(t, "ConfigurePEPNode of another user's node", s.ConfigurePEPNode(ctx, pOther, pNode, nil, storage.PEPLimits{}), storage.ErrNotFound)
}

func testPEPMaxNodes(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	lim := storage.PEPLimits{MaxNodes: 2}
	mustCreateNode(t, s, pUser, "n1", nil, lim)
	if created, _ := mustPublish(t, s, pUser, "n2", "a", 0, lim); !created {
		t.Error("publishing to a new node did not report it created")
	}
	err := s.CreatePEPNode(ctx, pUser, storage.PEPNode{Name: "n3"}, lim)
	checkErrIs(t, "CreatePEPNode past MaxNodes", err, storage.ErrLimit)
	created, dropped, err := s.PublishPEPItem(ctx, pUser, "n3", nil, pepItem("a", 1), lim)
	checkErrIs(t, "PublishPEPItem to a new node past MaxNodes", err, storage.ErrLimit)
	if created || dropped != nil {
		t.Errorf("a failed publish reports created %v, dropped %q", created, dropped)
	}
	checkNodeNames(t, s, pUser, "n1", "n2")
	checkNodeGone(t, s, pUser, "n3")
	// An existing node: ErrExists, not ErrLimit; publishing to it works.
	err = s.CreatePEPNode(ctx, pUser, storage.PEPNode{Name: "n1"}, lim)
	checkErrIs(t, "CreatePEPNode of an existing node at MaxNodes", err, storage.ErrExists)
	mustPublish(t, s, pUser, "n1", "b", 2, lim)
	mustPublish(t, s, pUser, "n2", "c", 3, lim)
	// The limit is per user.
	mustCreateNode(t, s, pOther, "n3", nil, lim)
	mustCreateNode(t, s, pOther, "n4", nil, lim)
	// A deleted node makes room; a purged one does not.
	if err := s.PurgePEPNode(ctx, pUser, "n1"); err != nil {
		t.Fatal(err)
	}
	checkErrIs(t, "CreatePEPNode past MaxNodes after a purge", s.CreatePEPNode(ctx, pUser, storage.PEPNode{Name: "n3"}, lim), storage.ErrLimit)
	if err := s.DeletePEPNode(ctx, pUser, "n1"); err != nil {
		t.Fatal(err)
	}
	mustCreateNode(t, s, pUser, "n3", nil, lim)
	checkNodeNames(t, s, pUser, "n2", "n3")
	// A lower limit keeps the nodes there are but allows no new one.
	checkErrIs(t, "CreatePEPNode past a lower MaxNodes", s.CreatePEPNode(ctx, pUser, storage.PEPNode{Name: "n5"}, storage.PEPLimits{MaxNodes: 1}), storage.ErrLimit)
	mustPublish(t, s, pUser, "n3", "d", 4, storage.PEPLimits{MaxNodes: 1})
	// No limit, no bound.
	for i := range 5 {
		mustCreateNode(t, s, pUser, fmt.Sprint("free", i), nil, storage.PEPLimits{})
	}
}

func testPEPMaxBytes(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	// Room for exactly a, b and c, over two nodes.
	limit := pepSize("a") + pepSize("b") + pepSize("c")
	lim := storage.PEPLimits{MaxBytes: limit}
	mustPublish(t, s, pUser, pNode, "a", 0, lim)
	mustPublish(t, s, pUser, pNode, "b", 1, lim)
	mustPublish(t, s, pUser, pNode2, "c", 2, lim)

	// One byte more fails and changes nothing, also on a new node.
	refuse := func(node string, it storage.PEPItem, lim storage.PEPLimits) {
		t.Helper()
		created, dropped, err := s.PublishPEPItem(ctx, pUser, node, []byte("<new/>"), it, lim)
		checkErrIs(t, fmt.Sprintf("PublishPEPItem(%q, %q) past MaxBytes", node, it.ID), err, storage.ErrLimit)
		if created || dropped != nil {
			t.Errorf("a refused publish reports created %v, dropped %q", created, dropped)
		}
	}
	refuse(pNode, pepItem("d", 3), lim)
	refuse("new", pepItem("d", 3), lim)
	refuse(pNode, storage.PEPItem{ID: "a", Payload: append(pepPayload("a"), 'x')}, lim)
	refuse(pNode, pepItem("d", 3), storage.PEPLimits{MaxBytes: limit, MaxItems: 5})
	checkNodeNames(t, s, pUser, pNode2, pNode)
	checkNodeGone(t, s, pUser, "new")
	checkPEPItems(t, s, pUser, pNode, "a", "b")
	checkPEPItems(t, s, pUser, pNode2, "c")
	if items := mustItems(t, s, pUser, pNode, []string{"a"}, 0); len(items) != 1 || !items[0].Published.Equal(pepT0) {
		t.Errorf("a refused re-publish changed item a: %+v", items)
	}

	// Replacing counts the replaced item: the same size fits, and a
	// smaller one makes room.
	mustPublish(t, s, pUser, pNode, "a", 4, lim)
	checkPEPItems(t, s, pUser, pNode, "b", "a")
	if _, _, err := s.PublishPEPItem(ctx, pUser, pNode, nil, storage.PEPItem{ID: "b"}, lim); err != nil {
		t.Fatalf("re-publishing b smaller: %v", err)
	}
	tiny := storage.PEPItem{ID: "t", Payload: pepPayload("b")[:len(pepPayload("b"))-1]}
	if _, _, err := s.PublishPEPItem(ctx, pUser, pNode2, nil, tiny, lim); err != nil {
		t.Fatalf("publishing into the room made: %v", err)
	}
	refuse(pNode2, storage.PEPItem{ID: "u"}, lim)

	// Dropping counts the dropped items: with MaxItems 1, a publish
	// that replaces the node's only other item fits.
	if _, dropped := mustPublish(t, s, pUser, pNode2, "d", 5, storage.PEPLimits{MaxBytes: limit, MaxItems: 1}); !slices.Equal(dropped, []string{"c", "t"}) {
		t.Errorf("dropped %q, want [c t]", dropped)
	}
	checkPEPItems(t, s, pUser, pNode2, "d")

	// Retracting, purging and deleting free their bytes.
	if err := s.RetractPEPItem(ctx, pUser, pNode2, "d"); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, s, pUser, pNode2, "c", 6, lim)
	if err := s.PurgePEPNode(ctx, pUser, pNode2); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, s, pUser, pNode2, "c", 7, lim)
	if err := s.DeletePEPNode(ctx, pUser, pNode2); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, s, pUser, "third", "c", 8, lim)
	refuse("fourth", pepItem("e", 9), lim)

	// The limit is per user.
	mustPublish(t, s, pOther, pNode, "a", 0, lim)
	mustPublish(t, s, pOther, pNode, "b", 1, lim)
	mustPublish(t, s, pOther, pNode, "c", 2, lim)

	// An item bigger than the limit fits nowhere, not even alone.
	huge := storage.PEPItem{ID: "huge", Payload: big(int(limit))}
	created, _, err := s.PublishPEPItem(ctx, "carol@example.org", pNode, nil, huge, lim)
	checkErrIs(t, "publishing an item bigger than MaxBytes", err, storage.ErrLimit)
	if created {
		t.Error("a refused publish created its node")
	}
	checkNodeNames(t, s, "carol@example.org")
	// Exactly the limit fits.
	huge.Payload = big(int(limit) - len(huge.ID))
	if _, _, err := s.PublishPEPItem(ctx, "carol@example.org", pNode, nil, huge, lim); err != nil {
		t.Errorf("publishing exactly MaxBytes: %v", err)
	}
	if n := mustNode(t, s, "carol@example.org", pNode); n.Bytes != limit {
		t.Errorf("node of exactly MaxBytes counts %d bytes, want %d", n.Bytes, limit)
	}
	// Without a limit there is no bound.
	huge.ID = "huger"
	huge.Payload = big(300 << 10)
	if _, _, err := s.PublishPEPItem(ctx, "carol@example.org", pNode, nil, huge, storage.PEPLimits{}); err != nil {
		t.Errorf("publishing without MaxBytes: %v", err)
	}
	if got := mustItems(t, s, "carol@example.org", pNode, []string{"huger"}, 0); len(got) != 1 || !bytes.Equal(got[0].Payload, huge.Payload) {
		t.Error("a big payload did not come back whole")
	}
}

func testPEPItems(t *testing.T, s storage.PEP) {
	publishAll(t, s, pUser, pNode, "a", "b", "c", "d", "e")
	for _, tt := range []struct {
		ids  []string
		max  int
		want []string
	}{
		{nil, 0, []string{"a", "b", "c", "d", "e"}},
		{[]string{}, 0, []string{"a", "b", "c", "d", "e"}},
		{nil, 2, []string{"d", "e"}},
		{nil, 1, []string{"e"}},
		{nil, 5, []string{"a", "b", "c", "d", "e"}},
		{nil, 99, []string{"a", "b", "c", "d", "e"}},
		{nil, -1, []string{"a", "b", "c", "d", "e"}},
		{[]string{"d", "a", "c"}, 0, []string{"a", "c", "d"}},
		{[]string{"c"}, 0, []string{"c"}},
		{[]string{"x", "c", "y", ""}, 0, []string{"c"}},
		{[]string{"x", "y"}, 0, nil},
		{[]string{"e", "e", "b", "e"}, 0, []string{"b", "e"}},
		{[]string{"e", "a", "c", "b"}, 2, []string{"c", "e"}},
		{[]string{"a", "b"}, 5, []string{"a", "b"}},
		{[]string{"A", "a "}, 0, nil},
	} {
		got := mustItems(t, s, pUser, pNode, tt.ids, tt.max)
		if ids := itemIDs(got); !slices.Equal(ids, tt.want) {
			t.Errorf("PEPItems(%q, %d) = %q, want %q", tt.ids, tt.max, ids, tt.want)
		}
		for i, it := range got {
			if !bytes.Equal(it.Payload, pepPayload(it.ID)) || i > 0 && !it.Published.After(got[i-1].Published) {
				t.Errorf("PEPItems(%q, %d): item %d = %+v", tt.ids, tt.max, i, it)
			}
		}
	}
	// Order is by publication, not by ID or time stamp.
	mustPublish(t, s, pUser, pNode2, "z", 5, storage.PEPLimits{})
	mustPublish(t, s, pUser, pNode2, "m", 1, storage.PEPLimits{})
	mustPublish(t, s, pUser, pNode2, "a", 3, storage.PEPLimits{})
	checkPEPItems(t, s, pUser, pNode2, "z", "m", "a")
	if got := itemIDs(mustItems(t, s, pUser, pNode2, []string{"a", "z"}, 0)); !slices.Equal(got, []string{"z", "a"}) {
		t.Errorf("PEPItems([a z]) = %q, want [z a]", got)
	}
	if got := itemIDs(mustItems(t, s, pUser, pNode2, nil, 2)); !slices.Equal(got, []string{"m", "a"}) {
		t.Errorf("PEPItems(max 2) = %q, want [m a]", got)
	}
	// A node without items has none, also by ID.
	mustCreateNode(t, s, pUser, "empty", nil, storage.PEPLimits{})
	if got := mustItems(t, s, pUser, "empty", []string{"a"}, 3); len(got) != 0 {
		t.Errorf("items of an empty node: %q", itemIDs(got))
	}
	checkErrIs(t, "PEPItems of another user's node", errOf(s.PEPItems(t.Context(), pOther, pNode, nil, 0)), storage.ErrNotFound)
}

func errOf[T any](_ T, err error) error { return err }

func testPEPRetract(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	publishAll(t, s, pUser, pNode, "a", "b", "c")
	publishAll(t, s, pUser, pNode2, "b")
	if err := s.RetractPEPItem(ctx, pUser, pNode, "b"); err != nil {
		t.Fatalf("RetractPEPItem: %v", err)
	}
	checkPEPItems(t, s, pUser, pNode, "a", "c")
	checkPEPItems(t, s, pUser, pNode2, "b")
	checkErrIs(t, "RetractPEPItem a second time", s.RetractPEPItem(ctx, pUser, pNode, "b"), storage.ErrNotFound)
	checkErrIs(t, "RetractPEPItem of a missing item", s.RetractPEPItem(ctx, pUser, pNode, "x"), storage.ErrNotFound)
	checkErrIs(t, "RetractPEPItem with an empty ID", s.RetractPEPItem(ctx, pUser, pNode, ""), storage.ErrNotFound)
	checkErrIs(t, "RetractPEPItem of a missing node", s.RetractPEPItem(ctx, pUser, "missing", "a"), storage.ErrNotFound)
	checkErrIs(t, "RetractPEPItem of another user's item", s.RetractPEPItem(ctx, pOther, pNode, "a"), storage.ErrNotFound)
	// Publishing a retracted ID again makes it the newest.
	mustPublish(t, s, pUser, pNode, "b", 5, storage.PEPLimits{})
	checkPEPItems(t, s, pUser, pNode, "a", "c", "b")
	// Retracting every item leaves the node, empty.
	for _, id := range []string{"a", "c", "b"} {
		if err := s.RetractPEPItem(ctx, pUser, pNode, id); err != nil {
			t.Fatal(err)
		}
	}
	checkPEPItems(t, s, pUser, pNode)
	checkNodeNames(t, s, pUser, pNode2, pNode)
	mustPublish(t, s, pUser, pNode, "d", 6, storage.PEPLimits{})
	checkPEPItems(t, s, pUser, pNode, "d")
}

func testPEPPurge(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	mustCreateNode(t, s, pUser, pNode, []byte("<kept/>"), storage.PEPLimits{})
	publishAll(t, s, pUser, pNode, "a", "b", "c")
	publishAll(t, s, pUser, pNode2, "a")
	publishAll(t, s, pOther, pNode, "a")
	if err := s.PurgePEPNode(ctx, pUser, pNode); err != nil {
		t.Fatalf("PurgePEPNode: %v", err)
	}
	checkPEPItems(t, s, pUser, pNode)
	if n := mustNode(t, s, pUser, pNode); string(n.Config) != "<kept/>" || n.Items != 0 || n.Bytes != 0 {
		t.Errorf("purged node = %+v, want its config and no items", n)
	}
	checkPEPItems(t, s, pUser, pNode2, "a")
	checkPEPItems(t, s, pOther, pNode, "a")
	if err := s.PurgePEPNode(ctx, pUser, pNode); err != nil {
		t.Errorf("purging an empty node: %v", err)
	}
	checkErrIs(t, "RetractPEPItem of a purged item", s.RetractPEPItem(ctx, pUser, pNode, "a"), storage.ErrNotFound)
	publishAll(t, s, pUser, pNode, "c", "a")
	checkPEPItems(t, s, pUser, pNode, "c", "a")
	checkErrIs(t, "PurgePEPNode of a missing node", s.PurgePEPNode(ctx, pUser, "missing"), storage.ErrNotFound)
}

func testPEPDeleteNode(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	mustCreateNode(t, s, pUser, pNode, []byte("<old/>"), storage.PEPLimits{})
	publishAll(t, s, pUser, pNode, "a", "b")
	publishAll(t, s, pUser, pNode2, "a")
	publishAll(t, s, pOther, pNode, "a")
	if err := s.DeletePEPNode(ctx, pUser, pNode); err != nil {
		t.Fatalf("DeletePEPNode: %v", err)
	}
	checkNodeGone(t, s, pUser, pNode)
	checkNodeNames(t, s, pUser, pNode2)
	checkPEPItems(t, s, pUser, pNode2, "a")
	checkPEPItems(t, s, pOther, pNode, "a")
	checkErrIs(t, "DeletePEPNode a second time", s.DeletePEPNode(ctx, pUser, pNode), storage.ErrNotFound)
	// A node of the same name starts empty, with the new config.
	if created, _, err := s.PublishPEPItem(ctx, pUser, pNode, []byte("<new/>"), pepItem("c", 0), storage.PEPLimits{}); err != nil || !created {
		t.Fatalf("publish after delete = %v, %v; want created", created, err)
	}
	checkPEPItems(t, s, pUser, pNode, "c")
	if n := mustNode(t, s, pUser, pNode); string(n.Config) != "<new/>" {
		t.Errorf("re-created node has config %q", n.Config)
	}
	// Deleting the last node leaves a user without nodes, who can start
	// again.
	for _, n := range []string{pNode, pNode2} {
		if err := s.DeletePEPNode(ctx, pUser, n); err != nil {
			t.Fatal(err)
		}
	}
	checkNodeNames(t, s, pUser)
	mustCreateNode(t, s, pUser, pNode, nil, storage.PEPLimits{MaxNodes: 1})
	checkPEPItems(t, s, pUser, pNode)
}

func testPEPDeletePEP(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	others := []string{pOther, "alice@example.net", "alice@example.org.evil", "malice@example.org"}
	for _, u := range append([]string{pUser}, others...) {
		publishAll(t, s, u, pNode, "a", "b")
		publishAll(t, s, u, pNode2, "c")
	}
	if err := s.DeletePEP(ctx, pUser); err != nil {
		t.Fatalf("DeletePEP: %v", err)
	}
	checkNodeNames(t, s, pUser)
	checkNodeGone(t, s, pUser, pNode)
	checkNodeGone(t, s, pUser, pNode2)
	for _, u := range others {
		checkNodeNames(t, s, u, pNode2, pNode)
		checkPEPItems(t, s, u, pNode, "a", "b")
		checkPEPItems(t, s, u, pNode2, "c")
	}
	if err := s.DeletePEP(ctx, pUser); err != nil {
		t.Errorf("second DeletePEP: %v", err)
	}
	// The user starts again with nothing counted against the limits.
	lim := storage.PEPLimits{MaxNodes: 1, MaxBytes: pepSize("d")}
	if created, _ := mustPublish(t, s, pUser, pNode, "d", 0, lim); !created {
		t.Error("publish after DeletePEP did not create the node")
	}
	checkPEPItems(t, s, pUser, pNode, "d")
}

func testPEPCopies(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	config := []byte("<config/>")
	mustCreateNode(t, s, pUser, pNode, config, storage.PEPLimits{})
	copy(config, "SCRIBBLE!")
	pubConfig := []byte("<auto/>")
	it := storage.PEPItem{ID: "a", Payload: []byte("<original/>")}
	if _, _, err := s.PublishPEPItem(ctx, pUser, pNode2, pubConfig, it, storage.PEPLimits{}); err != nil {
		t.Fatal(err)
	}
	copy(it.Payload, "SCRIBBLED!!")
	copy(pubConfig, "SCRIBB")
	reconf := []byte("<re/>")
	mustCreateNode(t, s, pUser, "re", nil, storage.PEPLimits{})
	if err := s.ConfigurePEPNode(ctx, pUser, "re", reconf, storage.PEPLimits{}); err != nil {
		t.Fatal(err)
	}
	copy(reconf, "SCRIB")

	check := func() {
		t.Helper()
		if n := mustNode(t, s, pUser, pNode); string(n.Config) != "<config/>" {
			t.Errorf("config = %q, want <config/>", n.Config)
		}
		if n := mustNode(t, s, pUser, pNode2); string(n.Config) != "<auto/>" {
			t.Errorf("config = %q, want <auto/>", n.Config)
		}
		if n := mustNode(t, s, pUser, "re"); string(n.Config) != "<re/>" {
			t.Errorf("config = %q, want <re/>", n.Config)
		}
		if items := mustItems(t, s, pUser, pNode2, nil, 0); len(items) != 1 || string(items[0].Payload) != "<original/>" {
			t.Errorf("items = %+v, want <original/>", items)
		}
	}
	check()

	// Changing what comes out changes nothing stored.
	n := mustNode(t, s, pUser, pNode)
	copy(n.Config, "SCRIBBLE!")
	_ = append(n.Config[:2], "appended past the end"...)
	nodes, err := s.PEPNodes(ctx, pUser)
	if err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		copy(nodes[i].Config, "SCRIBBLED")
		nodes[i].Name = "changed"
	}
	items := mustItems(t, s, pUser, pNode2, nil, 0)
	copy(items[0].Payload, "SCRIBBLED!!")
	_ = append(items[0].Payload[:2], "appended past the end"...)
	items[0].ID = "changed"
	items = mustItems(t, s, pUser, pNode2, []string{"a"}, 1)
	copy(items[0].Payload, "SCRIBBLED!!")
	check()
	checkNodeNames(t, s, pUser, pNode2, "re", pNode)

	// Nor does changing the ids asked for after the call.
	ids := []string{"a"}
	items = mustItems(t, s, pUser, pNode2, ids, 0)
	ids[0] = "b"
	if len(items) != 1 || items[0].ID != "a" {
		t.Errorf("items = %+v", items)
	}
}

func testPEPInvalid(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	invalid := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s succeeded", what)
		} else if isRefusal(err) {
			t.Errorf("%s = %v: an invalid argument is not a refusal", what, err)
		}
	}
	invalid("CreatePEPNode with an empty user", s.CreatePEPNode(ctx, "", storage.PEPNode{Name: pNode}, storage.PEPLimits{}))
	invalid("CreatePEPNode with an empty node", s.CreatePEPNode(ctx, pUser, storage.PEPNode{}, storage.PEPLimits{}))
	publish := func(user, node string, it storage.PEPItem, lim storage.PEPLimits) error {
		created, dropped, err := s.PublishPEPItem(ctx, user, node, nil, it, lim)
		if created || dropped != nil {
			t.Errorf("a failed publish reports created %v, dropped %q", created, dropped)
		}
		return err
	}
	invalid("PublishPEPItem with an empty user", publish("", pNode, pepItem("a", 0), storage.PEPLimits{}))
	invalid("PublishPEPItem with an empty node", publish(pUser, "", pepItem("a", 0), storage.PEPLimits{}))
	invalid("PublishPEPItem with an empty item ID", publish(pUser, pNode, pepItem("", 0), storage.PEPLimits{}))
	for _, p := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(0, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		invalid(fmt.Sprintf("PublishPEPItem published %v", p), publish(pUser, pNode, storage.PEPItem{ID: "a", Published: p}, storage.PEPLimits{}))
	}
	for _, lim := range []storage.PEPLimits{{MaxItems: -1}, {MaxNodes: -1}, {MaxBytes: -1}} {
		invalid(fmt.Sprintf("PublishPEPItem with limits %+v", lim), publish(pUser, pNode, pepItem("a", 0), lim))
		invalid(fmt.Sprintf("CreatePEPNode with limits %+v", lim), s.CreatePEPNode(ctx, pUser, storage.PEPNode{Name: pNode}, lim))
	}
	checkNodeNames(t, s, pUser)
	checkNodeNames(t, s, "")
	for _, lim := range []storage.PEPLimits{{MaxItems: -1}, {MaxNodes: -1}, {MaxBytes: -1}} {
		mustCreateNode(t, s, pUser, pNode, []byte("<c/>"), storage.PEPLimits{})
		invalid(fmt.Sprintf("ConfigurePEPNode with limits %+v", lim), s.ConfigurePEPNode(ctx, pUser, pNode, []byte("<changed/>"), lim))
		if n := mustNode(t, s, pUser, pNode); string(n.Config) != "<c/>" {
			t.Errorf("a failed ConfigurePEPNode changed the config to %q", n.Config)
		}
		if err := s.DeletePEPNode(ctx, pUser, pNode); err != nil {
			t.Fatal(err)
		}
	}

	// Nothing is stored under an empty name, so reads find nothing.
	publishAll(t, s, pUser, pNode, "a")
	checkNodeGone(t, s, pUser, "")
	checkNodeGone(t, s, "", pNode)
	checkErrIs(t, "RetractPEPItem with an empty ID", s.RetractPEPItem(ctx, pUser, pNode, ""), storage.ErrNotFound)
	checkErrIs(t, "DeletePEPNode with an empty node", s.DeletePEPNode(ctx, pUser, ""), storage.ErrNotFound)
	checkErrIs(t, "PurgePEPNode with an empty node", s.PurgePEPNode(ctx, pUser, ""), storage.ErrNotFound)
	checkErrIs(t, "ConfigurePEPNode with an empty node", s.ConfigurePEPNode(ctx, pUser, "", nil, storage.PEPLimits{}), storage.ErrNotFound)
	checkPEPItems(t, s, pUser, pNode, "a")

	// A cancelled context stores nothing.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.PublishPEPItem(cancelled, pUser, pNode, nil, pepItem("b", 1), storage.PEPLimits{}); err == nil {
		t.Error("PublishPEPItem with a cancelled context succeeded")
	}
	if err := s.CreatePEPNode(cancelled, pUser, storage.PEPNode{Name: pNode2}, storage.PEPLimits{}); err == nil {
		t.Error("CreatePEPNode with a cancelled context succeeded")
	}
	if err := s.DeletePEP(cancelled, pUser); err == nil {
		t.Error("DeletePEP with a cancelled context succeeded")
	}
	if _, err := s.PEPNodes(cancelled, pUser); err == nil {
		t.Error("PEPNodes with a cancelled context succeeded")
	}
	checkNodeNames(t, s, pUser, pNode)
	checkPEPItems(t, s, pUser, pNode, "a")
}

// testPEPConcurrent has workers publish to one node with MaxItems, and
// checks that the node ends with exactly MaxItems items, that it was
// created once, and that every item published is either kept or was
// reported dropped, exactly once.
func testPEPConcurrent(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	const (
		workers = 6
		rounds  = 25
		keep    = 7
	)
	lim := storage.PEPLimits{MaxItems: keep, MaxNodes: 1}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		dropped []string
	)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				id := fmt.Sprintf("w%d-%d", w, r)
				c, d, err := s.PublishPEPItem(ctx, pUser, pNode, nil, pepItem(id, r), lim)
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				if _, err := s.PEPItems(ctx, pUser, pNode, nil, 3); err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				mu.Lock()
				if c {
					created++
				}
				dropped = append(dropped, d...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("the node was reported created %d times", created)
	}
	items := mustItems(t, s, pUser, pNode, nil, 0)
	if len(items) != keep {
		t.Errorf("node has %d items, want MaxItems %d", len(items), keep)
	}
	checkPEPItems(t, s, pUser, pNode, itemIDs(items)...)
	seen := make(map[string]int)
	for _, id := range append(dropped, itemIDs(items)...) {
		seen[id]++
	}
	for w := range workers {
		for r := range rounds {
			if id := fmt.Sprintf("w%d-%d", w, r); seen[id] != 1 {
				t.Errorf("item %s was kept or dropped %d times, want once", id, seen[id])
			}
		}
	}
	if len(seen) != workers*rounds {
		t.Errorf("%d distinct items kept or dropped, want %d", len(seen), workers*rounds)
	}
	// Each worker's items are in the order it published them.
	last := make(map[int]int)
	for _, id := range itemIDs(items) {
		var w, r int
		fmt.Sscanf(id, "w%d-%d", &w, &r)
		if prev, ok := last[w]; ok && r <= prev {
			t.Errorf("items out of a worker's order: %q", itemIDs(items))
		}
		last[w] = r
	}
}

// testPEPConcurrentNodes has workers create nodes of one user with
// MaxNodes and a shared MaxBytes: exactly as many succeed as the limits
// allow.
func testPEPConcurrentNodes(t *testing.T, s storage.PEP) {
	ctx := t.Context()
	const (
		workers  = 8
		maxNodes = 3
	)
	lim := storage.PEPLimits{MaxNodes: maxNodes}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			if w%2 == 0 {
				errs[w] = s.CreatePEPNode(ctx, pUser, storage.PEPNode{Name: fmt.Sprint("n", w)}, lim)
			} else {
				_, _, errs[w] = s.PublishPEPItem(ctx, pUser, fmt.Sprint("n", w), nil, pepItem("a", 0), lim)
			}
		})
	}
	wg.Wait()
	ok := 0
	for w, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, storage.ErrLimit):
			t.Errorf("worker %d: %v, want nil or ErrLimit", w, err)
		}
	}
	nodes, err := s.PEPNodes(ctx, pUser)
	if err != nil {
		t.Fatal(err)
	}
	if ok != maxNodes || len(nodes) != maxNodes {
		t.Errorf("%d creations succeeded, %d nodes exist; want %d", ok, len(nodes), maxNodes)
	}

	// Writers to several nodes share one byte limit.
	limit := 10 * pepSize("x0")
	blim := storage.PEPLimits{MaxBytes: limit}
	var mu sync.Mutex
	published := 0
	for w := range workers {
		wg.Go(func() {
			for r := range 4 {
				_, _, err := s.PublishPEPItem(ctx, pOther, fmt.Sprint("n", w%3), nil, pepItem(fmt.Sprintf("%d%d", w, r), r), blim)
				switch {
				case err == nil:
					mu.Lock()
					published++
					mu.Unlock()
				case !errors.Is(err, storage.ErrLimit):
					t.Errorf("worker %d: %v, want nil or ErrLimit", w, err)
				}
			}
		})
	}
	wg.Wait()
	nodes, err = s.PEPNodes(ctx, pOther)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	count := 0
	for _, n := range nodes {
		total += n.Bytes
		count += n.Items
		checkPEPItems(t, s, pOther, n.Name, itemIDs(mustItems(t, s, pOther, n.Name, nil, 0))...)
	}
	if published != 10 || count != 10 || total != limit {
		t.Errorf("%d publishes succeeded, %d items of %d bytes stored; want 10 of %d", published, count, total, limit)
	}
}

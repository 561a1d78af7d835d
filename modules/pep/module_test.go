package pep_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/caps"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/pep"
	"github.com/kiez-im/kiez/modules/presence"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	stanzacaps "github.com/kiez-im/kiez/stanza/caps"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

const (
	nsPubSub   = "http://jabber.org/protocol/pubsub"
	nsOwner    = nsPubSub + "#owner"
	nsEvent    = nsPubSub + "#event"
	nsErrors   = nsPubSub + "#errors"
	nsDisco    = "http://jabber.org/protocol/disco#info"
	nodeMeta   = "urn:xmpp:avatar:metadata"
	nodeDevice = "eu.siacs.conversations.axolotl.devicelist"
	nodeBundle = "eu.siacs.conversations.axolotl.bundles:4223"
)

// env is a server with roster, presence, caps and PEP, and four users.
type env struct {
	srv                     *servertest.Server
	store                   *memory.Store
	roster                  *roster.Module
	caps                    *caps.Module
	alice, bob, carol, dave jid.JID
}

func start(t *testing.T, opts pep.Options) *env {
	t.Helper()
	store := memory.New()
	ros := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: store}))
	pres := modtest.Must(presence.New(presence.Options{}, presence.Deps{Roster: ros}))
	cp := modtest.Must(caps.New(caps.Options{}, caps.Deps{}))
	p := modtest.Must(pep.New(opts, pep.Deps{Store: store, Roster: ros, Caps: cp}))
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{ros, pres, cp, p}})
	return &env{srv: srv, store: store, roster: ros, caps: cp,
		alice: srv.AddUser(t, "alice", "pw"), bob: srv.AddUser(t, "bob", "pw"),
		carol: srv.AddUser(t, "carol", "pw"), dave: srv.AddUser(t, "dave", "pw")}
}

// share makes a and b contacts with a mutual presence subscription.
func (e *env) share(t *testing.T, a, b jid.JID) {
	t.Helper()
	for _, p := range [][2]jid.JID{{a, b}, {b, a}} {
		err := e.roster.Update(context.Background(), p[0], p[1], func(it storage.RosterItem, _ bool) (storage.RosterItem, bool, error) {
			it.Subscription = storage.SubBoth
			return it, false, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

var clientN atomic.Int32

// online connects user and sends presence with entity capabilities
// asking for notifications of the nodes notify, answering the server's
// disco#info query, and waits until the server knows them.
func (e *env) online(t *testing.T, user jid.JID, notify ...string) *servertest.Client {
	t.Helper()
	c := e.srv.Connect(t, user, "pw")
	feats := []string{nsDisco}
	for _, n := range notify {
		feats = append(feats, n+"+notify")
	}
	info := stanzacaps.Info{
		Identities: []stanzacaps.Identity{{Category: "client", Type: "pc", Name: fmt.Sprintf("test client %d", clientN.Add(1))}},
		Features:   feats,
	}
	ver, err := info.Ver("sha-1")
	if err != nil {
		t.Fatal(err)
	}
	cs := stanzacaps.Caps{Hash: "sha-1", Node: "https://kiez.test/client", Ver: ver}
	c.Answer(func(st *stanza.Stanza) bool {
		return st.Type == stanza.Get && st.HasChild(xml.Name{Space: nsDisco, Local: "query"})
	}, func(q *stanza.Stanza) *stanza.Stanza {
		return q.ResultReply(info.Query(cs.DiscoNode()))
	})
	p := &stanza.Stanza{Kind: stanza.Presence}
	p.AppendChild(cs.TokenReader())
	c.Send(p)
	for i := 0; ; i++ {
		if _, ok := e.caps.Features(c.LocalAddr()); ok {
			break
		}
		if i > 500 {
			t.Fatal("the server never learnt the client's capabilities")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

func elem(space, local string, attrs []xml.Attr, children ...xml.TokenReader) xml.TokenReader {
	return stanza.Elem(xml.Name{Space: space, Local: local}, attrs, children...)
}

func node(n string) []xml.Attr { return []xml.Attr{stanza.Attr("node", n)} }

// publishIQ publishes payload as item id ("" for none) on node, with
// publish-options fields if any (var, value pairs).
func publishIQ(id, n, itemID string, payload xml.TokenReader, options ...string) *stanza.Stanza {
	var itemAttrs []xml.Attr
	if itemID != "" {
		itemAttrs = []xml.Attr{stanza.Attr("id", itemID)}
	}
	children := []xml.TokenReader{elem(nsPubSub, "publish", node(n), elem(nsPubSub, "item", itemAttrs, payload))}
	if len(options) > 0 {
		children = append(children, elem(nsPubSub, "publish-options", nil, submitForm(nsPubSub+"#publish-options", options...)))
	}
	return modtest.IQ(id, stanza.Set, jid.JID{}, elem(nsPubSub, "pubsub", nil, children...))
}

func submitForm(formType string, fields ...string) xml.TokenReader {
	field := func(v string, vals ...string) xml.TokenReader {
		var vs []xml.TokenReader
		for _, val := range vals {
			vs = append(vs, stanza.TextElem(xml.Name{Space: "jabber:x:data", Local: "value"}, val))
		}
		return elem("jabber:x:data", "field", []xml.Attr{stanza.Attr("var", v)}, vs...)
	}
	fs := []xml.TokenReader{field("FORM_TYPE", formType)}
	for i := 0; i+1 < len(fields); i += 2 {
		fs = append(fs, field(fields[i], fields[i+1]))
	}
	return elem("jabber:x:data", "x", []xml.Attr{stanza.Attr("type", "submit")}, fs...)
}

func itemsIQ(id string, to jid.JID, n string, max int, ids ...string) *stanza.Stanza {
	var attrs = node(n)
	if max > 0 {
		attrs = append(attrs, stanza.Attr("max_items", fmt.Sprint(max)))
	}
	var its []xml.TokenReader
	for _, i := range ids {
		its = append(its, elem(nsPubSub, "item", []xml.Attr{stanza.Attr("id", i)}))
	}
	return modtest.IQ(id, stanza.Get, to, elem(nsPubSub, "pubsub", nil, elem(nsPubSub, "items", attrs, its...)))
}

func meta(id string) xml.TokenReader {
	return elem(nodeMeta, "metadata", nil, elem(nodeMeta, "info", []xml.Attr{
		stanza.Attr("id", id), stanza.Attr("bytes", "1234"), stanza.Attr("type", "image/png")}))
}

// itemIDs returns the ids of the <item/> elements at any depth of st,
// with the text of their payload's id attribute where present.
func itemIDs(st *stanza.Stanza) []string {
	var ids []string
	for _, t := range st.Inner {
		if se, ok := t.(xml.StartElement); ok && se.Name.Local == "item" && (se.Name.Space == nsPubSub || se.Name.Space == nsEvent) {
			ids = append(ids, stanza.AttrValue(se.Attr, "id"))
		}
	}
	return ids
}

func appCondition(st *stanza.Stanza) string {
	for _, t := range st.Inner {
		if se, ok := t.(xml.StartElement); ok && se.Name.Space == nsErrors {
			return se.Name.Local
		}
	}
	return ""
}

// isEvent matches an event notification about node from owner (or, as
// the owner's own resources see it, from their account: no from).
func isEvent(owner jid.JID, n string) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		if st.Kind != stanza.Message || !st.From.Equal(owner) && st.From.String() != "" {
			return false
		}
		for _, t := range st.Inner {
			if se, ok := t.(xml.StartElement); ok && se.Name.Space == nsEvent && stanza.AttrValue(se.Attr, "node") == n {
				return true
			}
		}
		return false
	}
}

func TestPublishAndRetrieve(t *testing.T) {
	e := start(t, pep.Options{})
	a := e.srv.Connect(t, e.alice, "pw")
	// Without an id the server names the item.
	r := modtest.Do(t, a, publishIQ("p1", "urn:test:node", "", elem("urn:test", "thing", nil, stanza.Tokens(xml.CharData("one")))))
	ids := itemIDs(r)
	if r.Type != stanza.Result || len(ids) != 1 || ids[0] == "" {
		t.Fatalf("publish answered %v with ids %q", r.Type, ids)
	}
	// The default node keeps one item.
	modtest.Do(t, a, publishIQ("p2", "urn:test:node", "second", elem("urn:test", "thing", nil)))
	r = modtest.Do(t, a, itemsIQ("i1", jid.JID{}, "urn:test:node", 0))
	if got := itemIDs(r); len(got) != 1 || got[0] != "second" {
		t.Fatalf("items after two publishes: %q, want [second]", got)
	}
	// max_items=max keeps them all; max_items and ids select.
	for i := range 3 {
		r := modtest.Do(t, a, publishIQ(fmt.Sprint("m", i), "urn:test:many", fmt.Sprint("id", i), elem("urn:test", "thing", nil), "pubsub#max_items", "max"))
		modtest.MustResult(t, r, jid.JID{})
	}
	if got := itemIDs(modtest.Do(t, a, itemsIQ("i2", e.alice, "urn:test:many", 0))); strings.Join(got, ",") != "id0,id1,id2" {
		t.Errorf("all items: %q", got)
	}
	if got := itemIDs(modtest.Do(t, a, itemsIQ("i3", e.alice, "urn:test:many", 2))); strings.Join(got, ",") != "id1,id2" {
		t.Errorf("max_items=2: %q", got)
	}
	if got := itemIDs(modtest.Do(t, a, itemsIQ("i4", e.alice, "urn:test:many", 0, "id0"))); strings.Join(got, ",") != "id0" {
		t.Errorf("by id: %q", got)
	}
	// The payload comes back as it was published.
	r = modtest.Do(t, a, itemsIQ("i5", e.alice, "urn:test:node", 0))
	if !r.HasChild(xml.Name{Space: nsPubSub, Local: "pubsub"}) || !hasElem(r, "urn:test", "thing") {
		t.Errorf("payload missing: %v", r.Inner)
	}
	// Unknown nodes and items.
	r = modtest.Do(t, a, itemsIQ("i6", e.alice, "urn:test:none", 0))
	if modtest.Condition(r) != mstanza.ItemNotFound {
		t.Errorf("unknown node: %v", modtest.Condition(r))
	}
	r = modtest.Do(t, a, itemsIQ("i7", e.alice, "urn:test:many", 0, "nope"))
	if modtest.Condition(r) != mstanza.ItemNotFound {
		t.Errorf("unknown item: %v", modtest.Condition(r))
	}
	// Retract, purge and delete.
	retract := modtest.IQ("r1", stanza.Set, jid.JID{}, elem(nsPubSub, "pubsub", nil, elem(nsPubSub, "retract", node("urn:test:many"), elem(nsPubSub, "item", []xml.Attr{stanza.Attr("id", "id1")}))))
	modtest.MustResult(t, modtest.Do(t, a, retract), jid.JID{})
	if got := itemIDs(modtest.Do(t, a, itemsIQ("i8", e.alice, "urn:test:many", 0))); strings.Join(got, ",") != "id0,id2" {
		t.Errorf("after retract: %q", got)
	}
	purge := modtest.IQ("pu", stanza.Set, jid.JID{}, elem(nsOwner, "pubsub", nil, elem(nsOwner, "purge", node("urn:test:many"))))
	modtest.MustResult(t, modtest.Do(t, a, purge), jid.JID{})
	if got := itemIDs(modtest.Do(t, a, itemsIQ("i9", e.alice, "urn:test:many", 0))); len(got) != 0 {
		t.Errorf("after purge: %q", got)
	}
	del := modtest.IQ("d", stanza.Set, jid.JID{}, elem(nsOwner, "pubsub", nil, elem(nsOwner, "delete", node("urn:test:many"))))
	modtest.MustResult(t, modtest.Do(t, a, del), jid.JID{})
	if r := modtest.Do(t, a, itemsIQ("i10", e.alice, "urn:test:many", 0)); modtest.Condition(r) != mstanza.ItemNotFound {
		t.Errorf("after delete: %v", modtest.Condition(r))
	}
	// Nobody else publishes on alice's service.
	b := e.srv.Connect(t, e.bob, "pw")
	st := publishIQ("x", "urn:test:node", "", elem("urn:test", "thing", nil))
	st.To = e.alice
	if r := modtest.Do(t, b, st); modtest.Condition(r) != mstanza.Forbidden {
		t.Errorf("bob publishing on alice's node: %v", modtest.Condition(r))
	}
}

func hasElem(st *stanza.Stanza, space, local string) bool {
	for _, t := range st.Inner {
		if se, ok := t.(xml.StartElement); ok && se.Name.Space == space && se.Name.Local == local {
			return true
		}
	}
	return false
}

// TestNotifyFilteredByCaps: a contact whose client asks for avatar
// metadata notifications gets the event, one whose client does not gets
// nothing, nor does one who does not receive the owner's presence; the
// owner's own resource gets it too.
func TestNotifyFilteredByCaps(t *testing.T) {
	e := start(t, pep.Options{})
	e.share(t, e.alice, e.bob)
	e.share(t, e.alice, e.carol)
	// Alice is subscribed to dave's presence, dave not to hers.
	for _, p := range []struct {
		user, contact jid.JID
		sub           storage.Subscription
	}{{e.alice, e.dave, storage.SubTo}, {e.dave, e.alice, storage.SubFrom}} {
		err := e.roster.Update(context.Background(), p.user, p.contact, func(it storage.RosterItem, _ bool) (storage.RosterItem, bool, error) {
			it.Subscription = p.sub
			return it, false, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	a := e.online(t, e.alice, nodeMeta)
	b := e.online(t, e.bob, nodeMeta)
	c := e.online(t, e.carol, "urn:xmpp:other")
	d := e.online(t, e.dave, nodeMeta)
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("p", nodeMeta, "h1", meta("h1"))), jid.JID{})
	ev := b.Expect(isEvent(e.alice, nodeMeta))
	if ev.Type != "headline" || strings.Join(itemIDs(ev), ",") != "h1" || !hasElem(ev, nodeMeta, "metadata") {
		t.Errorf("bob's event: type %q items %q", ev.Type, itemIDs(ev))
	}
	a.Expect(isEvent(e.alice, nodeMeta))
	c.SyncNone(isEvent(e.alice, nodeMeta))
	d.SyncNone(isEvent(e.alice, nodeMeta))
}

// TestLastItemOnAvailable: a resource coming online gets the last item of
// each node it asks for, from its contacts and its own account.
func TestLastItemOnAvailable(t *testing.T) {
	e := start(t, pep.Options{})
	e.share(t, e.alice, e.bob)
	a := e.srv.Connect(t, e.alice, "pw")
	modtest.Do(t, a, publishIQ("p1", nodeMeta, "old", meta("old")))
	modtest.Do(t, a, publishIQ("p2", nodeMeta, "new", meta("new")))
	modtest.Do(t, a, publishIQ("p3", "urn:test:unasked", "x", elem("urn:test", "thing", nil)))
	b := e.online(t, e.bob, nodeMeta)
	ev := b.Expect(isEvent(e.alice, nodeMeta))
	if got := itemIDs(ev); strings.Join(got, ",") != "new" {
		t.Errorf("last item: %q, want [new]", got)
	}
	b.SyncNone(isEvent(e.alice, "urn:test:unasked"))
	// A stranger's resource gets nothing of alice's.
	d := e.online(t, e.dave, nodeMeta)
	d.SyncNone(isEvent(e.alice, nodeMeta))
}

// TestAccessModels: an OMEMO bundle published with access_model=open is
// fetched by a stranger; a presence node is refused to a stranger and
// given to a contact; a whitelist node to nobody but the owner.
func TestAccessModels(t *testing.T) {
	e := start(t, pep.Options{})
	e.share(t, e.alice, e.bob)
	a := e.srv.Connect(t, e.alice, "pw")
	bundle := elem("eu.siacs.conversations.axolotl", "bundle", nil, stanza.TextElem(xml.Name{Space: "eu.siacs.conversations.axolotl", Local: "identityKey"}, "BASE64"))
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("b", nodeBundle, "current", bundle, "pubsub#access_model", "open")), jid.JID{})
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("m", nodeMeta, "h", meta("h"))), jid.JID{})
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("w", "urn:xmpp:bookmarks:1", "room@conference.localhost",
		elem("urn:xmpp:bookmarks:1", "conference", nil), "pubsub#access_model", "whitelist", "pubsub#max_items", "max")), jid.JID{})

	d := e.srv.Connect(t, e.dave, "pw")
	if r := modtest.Do(t, d, itemsIQ("s1", e.alice, nodeBundle, 0)); r.Type != stanza.Result || len(itemIDs(r)) != 1 {
		t.Errorf("stranger fetching an open bundle: %v %v", r.Type, modtest.Condition(r))
	}
	r := modtest.Do(t, d, itemsIQ("s2", e.alice, nodeMeta, 0))
	if modtest.Condition(r) != mstanza.NotAuthorized || appCondition(r) != "presence-subscription-required" {
		t.Errorf("stranger fetching a presence node: %v %q", modtest.Condition(r), appCondition(r))
	}
	b := e.srv.Connect(t, e.bob, "pw")
	if r := modtest.Do(t, b, itemsIQ("c1", e.alice, nodeMeta, 0)); r.Type != stanza.Result {
		t.Errorf("contact fetching a presence node: %v", modtest.Condition(r))
	}
	r = modtest.Do(t, b, itemsIQ("c2", e.alice, "urn:xmpp:bookmarks:1", 0))
	if modtest.Condition(r) != mstanza.NotAllowed || appCondition(r) != "closed-node" {
		t.Errorf("contact fetching bookmarks: %v %q", modtest.Condition(r), appCondition(r))
	}
}

// TestPublishOptions: preconditions that do not match the node's
// configuration refuse the publish; matching ones let it through.
func TestPublishOptions(t *testing.T) {
	e := start(t, pep.Options{})
	a := e.srv.Connect(t, e.alice, "pw")
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("p1", nodeDevice, "current", elem("eu.siacs.conversations.axolotl", "list", nil),
		"pubsub#access_model", "open")), jid.JID{})
	r := modtest.Do(t, a, publishIQ("p2", nodeDevice, "current", elem("eu.siacs.conversations.axolotl", "list", nil),
		"pubsub#access_model", "presence"))
	if modtest.Condition(r) != mstanza.Conflict || appCondition(r) != "precondition-not-met" {
		t.Errorf("mismatch: %v %q", modtest.Condition(r), appCondition(r))
	}
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("p3", nodeDevice, "current", elem("eu.siacs.conversations.axolotl", "list", nil),
		"pubsub#access_model", "open")), jid.JID{})
	r = modtest.Do(t, a, publishIQ("p4", nodeDevice, "current", elem("eu.siacs.conversations.axolotl", "list", nil),
		"pubsub#unknown_option", "1"))
	if modtest.Condition(r) != mstanza.Conflict {
		t.Errorf("unknown option: %v", modtest.Condition(r))
	}
	// The node's configuration, read and changed by the owner.
	get := modtest.IQ("c1", stanza.Get, jid.JID{}, elem(nsOwner, "pubsub", nil, elem(nsOwner, "configure", node(nodeDevice))))
	r = modtest.Do(t, a, get)
	if r.Type != stanza.Result || !strings.Contains(formValue(r, "pubsub#access_model"), "open") {
		t.Fatalf("configuration: %v access %q", r.Type, formValue(r, "pubsub#access_model"))
	}
	set := modtest.IQ("c2", stanza.Set, jid.JID{}, elem(nsOwner, "pubsub", nil, elem(nsOwner, "configure", node(nodeDevice),
		submitForm(nsPubSub+"#node_config", "pubsub#access_model", "presence", "pubsub#max_items", "5"))))
	modtest.MustResult(t, modtest.Do(t, a, set), jid.JID{})
	if r := modtest.Do(t, a, get); formValue(r, "pubsub#access_model") != "presence" || formValue(r, "pubsub#max_items") != "5" {
		t.Errorf("after configuring: access %q max %q", formValue(r, "pubsub#access_model"), formValue(r, "pubsub#max_items"))
	}
	bad := modtest.IQ("c3", stanza.Set, jid.JID{}, elem(nsOwner, "pubsub", nil, elem(nsOwner, "configure", node(nodeDevice),
		submitForm(nsPubSub+"#node_config", "pubsub#access_model", "authorize"))))
	if r := modtest.Do(t, a, bad); r.Type != stanza.Error {
		t.Errorf("unsupported access model accepted")
	}
}

// formValue returns the first value of the field var in st's data form.
func formValue(st *stanza.Stanza, v string) string {
	in := false
	for i, t := range st.Inner {
		switch tt := t.(type) {
		case xml.StartElement:
			if tt.Name.Local == "field" {
				in = stanza.AttrValue(tt.Attr, "var") == v
			}
			if in && tt.Name.Local == "value" {
				if cd, ok := st.Inner[i+1].(xml.CharData); ok {
					return string(cd)
				}
				return ""
			}
		}
	}
	return ""
}

// TestRosterRemovalStopsNotifications: once alice removes bob, her
// publishes no longer reach him.
func TestRosterRemovalStopsNotifications(t *testing.T) {
	e := start(t, pep.Options{})
	e.share(t, e.alice, e.bob)
	a := e.srv.Connect(t, e.alice, "pw")
	b := e.online(t, e.bob, nodeMeta)
	modtest.Do(t, a, publishIQ("p1", nodeMeta, "h1", meta("h1")))
	b.Expect(isEvent(e.alice, nodeMeta))
	remove := modtest.IQ("rm", stanza.Set, jid.JID{}, elem(roster.NS, "query", nil,
		elem(roster.NS, "item", []xml.Attr{stanza.Attr("jid", e.bob.String()), stanza.Attr("subscription", "remove")})))
	modtest.MustResult(t, modtest.Do(t, a, remove), jid.JID{})
	modtest.Do(t, a, publishIQ("p2", nodeMeta, "h2", meta("h2")))
	b.SyncNone(isEvent(e.alice, nodeMeta))
}

// TestLimits: an item too big, too many nodes and too many bytes are
// refused with clear errors.
func TestLimits(t *testing.T) {
	e := start(t, pep.Options{MaxItemSize: 200, MaxNodes: 2, MaxBytes: 400})
	a := e.srv.Connect(t, e.alice, "pw")
	big := elem("urn:test", "thing", nil, stanza.Tokens(xml.CharData(strings.Repeat("x", 300))))
	r := modtest.Do(t, a, publishIQ("big", "urn:test:a", "", big))
	if modtest.Condition(r) != mstanza.NotAcceptable || appCondition(r) != "payload-too-big" {
		t.Errorf("item too big: %v %q", modtest.Condition(r), appCondition(r))
	}
	mid := func() xml.TokenReader {
		return elem("urn:test", "thing", nil, stanza.Tokens(xml.CharData(strings.Repeat("x", 150))))
	}
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("a", "urn:test:a", "1", mid())), jid.JID{})
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("b", "urn:test:b", "1", mid())), jid.JID{})
	if r := modtest.Do(t, a, publishIQ("c", "urn:test:c", "1", elem("urn:test", "small", nil))); modtest.Condition(r) != mstanza.PolicyViolation {
		t.Errorf("third node: %v", modtest.Condition(r))
	}
	r = modtest.Do(t, a, publishIQ("d", "urn:test:a", "2", mid(), "pubsub#max_items", "max"))
	if r.Type == stanza.Error && modtest.Condition(r) != mstanza.Conflict {
		// The node exists with max_items 1: the precondition fails first.
		t.Errorf("publish-options on an existing node: %v", modtest.Condition(r))
	}
	// Replacing an item within the byte limit works; growing past it not.
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("e", "urn:test:a", "1", mid())), jid.JID{})
	cfg := modtest.IQ("cfg", stanza.Set, jid.JID{}, elem(nsOwner, "pubsub", nil, elem(nsOwner, "configure", node("urn:test:b"),
		submitForm(nsPubSub+"#node_config", "pubsub#max_items", "10"))))
	modtest.MustResult(t, modtest.Do(t, a, cfg), jid.JID{})
	if r := modtest.Do(t, a, publishIQ("f", "urn:test:b", "2", mid())); modtest.Condition(r) != mstanza.PolicyViolation {
		t.Errorf("past the byte limit: %v", modtest.Condition(r))
	}
}

// TestDiscoAndDeletion: accounts show the pep identity and the features;
// deleting an account deletes its nodes, and a stranger can no longer
// fetch its OMEMO bundle.
func TestDiscoAndDeletion(t *testing.T) {
	e := start(t, pep.Options{})
	a := e.srv.Connect(t, e.alice, "pw")
	d := e.srv.Connect(t, e.dave, "pw")
	info := modtest.DiscoInfo(t, d, e.alice)
	for _, f := range []string{nsPubSub + "#publish", nsPubSub + "#publish-options", nsPubSub + "#access-open", nsPubSub + "#auto-create"} {
		if !modtest.HasFeature(info, f) {
			t.Errorf("account disco#info lacks %s", f)
		}
	}
	if !hasIdentity(info, "pubsub", "pep") {
		t.Errorf("account disco#info lacks the pubsub/pep identity")
	}
	modtest.MustResult(t, modtest.Do(t, a, publishIQ("b", nodeBundle, "current", elem("eu.siacs.conversations.axolotl", "bundle", nil), "pubsub#access_model", "open")), jid.JID{})
	if r := modtest.Do(t, d, itemsIQ("s1", e.alice, nodeBundle, 0)); r.Type != stanza.Result {
		t.Fatalf("before deletion: %v", modtest.Condition(r))
	}
	if err := e.srv.DeleteUser(context.Background(), e.alice); err != nil {
		t.Fatal(err)
	}
	nodes, err := e.store.PEPNodes(context.Background(), e.alice.String())
	if err != nil || len(nodes) != 0 {
		t.Errorf("nodes left after deletion: %v %v", nodes, err)
	}
	if r := modtest.Do(t, d, itemsIQ("s2", e.alice, nodeBundle, 0)); r.Type != stanza.Error {
		t.Errorf("a deleted account's bundle is still served")
	}
}

func hasIdentity(st *stanza.Stanza, category, typ string) bool {
	for _, t := range st.Inner {
		if se, ok := t.(xml.StartElement); ok && se.Name.Local == "identity" &&
			stanza.AttrValue(se.Attr, "category") == category && stanza.AttrValue(se.Attr, "type") == typ {
			return true
		}
	}
	return false
}

// TestBadRequests: malformed pubsub requests get the errors of XEP-0060.
func TestBadRequests(t *testing.T) {
	e := start(t, pep.Options{})
	a := e.srv.Connect(t, e.alice, "pw")
	for _, tc := range []struct {
		name string
		xml  string
		cond mstanza.Condition
		app  string
	}{
		{"no node", `<pubsub xmlns='` + nsPubSub + `'><publish><item><x xmlns='urn:t'/></item></publish></pubsub>`, mstanza.BadRequest, "nodeid-required"},
		{"no payload", `<pubsub xmlns='` + nsPubSub + `'><publish node='n'><item/></publish></pubsub>`, mstanza.BadRequest, "payload-required"},
		{"two payloads", `<pubsub xmlns='` + nsPubSub + `'><publish node='n'><item><x xmlns='urn:t'/><y xmlns='urn:t'/></item></publish></pubsub>`, mstanza.BadRequest, "invalid-payload"},
		{"no item", `<pubsub xmlns='` + nsPubSub + `'><publish node='n'/></pubsub>`, mstanza.BadRequest, "item-required"},
		{"subscribe", `<pubsub xmlns='` + nsPubSub + `'><subscribe node='n' jid='alice@localhost'/></pubsub>`, mstanza.FeatureNotImplemented, "unsupported"},
		{"two actions", `<pubsub xmlns='` + nsPubSub + `'><items node='n'/><items node='m'/></pubsub>`, mstanza.BadRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ := stanza.Set
			if strings.Contains(tc.xml, "<items") {
				typ = stanza.Get
			}
			if err := a.SendRaw(`<iq type='` + typ + `' id='bad'>` + tc.xml + `</iq>`); err != nil {
				t.Fatal(err)
			}
			r := a.Expect(servertest.ByID("bad"))
			if modtest.Condition(r) != tc.cond || appCondition(r) != tc.app {
				t.Errorf("got %v %q, want %v %q", modtest.Condition(r), appCondition(r), tc.cond, tc.app)
			}
		})
	}
}

package pep_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/caps"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/pep"
	"github.com/kiez-im/kiez/modules/presence"
	"github.com/kiez-im/kiez/modules/private"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/modules/vcard"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// Tests of the conversions with real sessions: private XML bookmarks and
// the legacy PEP node against XEP-0402's node, vCard PHOTOs and presence
// hashes against XEP-0084's nodes.

const (
	compatNSPrivate = "jabber:iq:private"
	compatNSLegacy  = "storage:bookmarks"
	compatNSUpdate  = "vcard-temp:x:update"
)

// startCompat runs roster, presence, caps, PEP, private storage and
// vCards wired as modules/stock wires them, on a store it returns with
// the env.
func startCompat(t *testing.T) *env {
	t.Helper()
	return startCompatOn(t, memory.New())
}

func startCompatOn(t *testing.T, store *memory.Store) *env {
	t.Helper()
	ros := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: store}))
	pres := modtest.Must(presence.New(presence.Options{}, presence.Deps{Roster: ros}))
	cp := modtest.Must(caps.New(caps.Options{}, caps.Deps{}))
	p := modtest.Must(pep.New(pep.Options{}, pep.Deps{Store: store, Roster: ros, Caps: cp}))
	priv := modtest.Must(private.New(private.Options{}, private.Deps{Store: store, Bookmarks: p.Bookmarks()}))
	vc := modtest.Must(vcard.New(vcard.Options{}, vcard.Deps{Store: store, Avatar: p.Avatars()}))
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{ros, pres, cp, vc, priv, p}})
	return &env{srv: srv, store: store, roster: ros, caps: cp,
		alice: srv.AddUser(t, "alice", "pw"), bob: srv.AddUser(t, "bob", "pw"),
		carol: srv.AddUser(t, "carol", "pw"), dave: srv.AddUser(t, "dave", "pw")}
}

// compatParse parses XML text into tokens with explicit namespaces.
func compatParse(t *testing.T, s string) xml.TokenReader {
	t.Helper()
	toks, err := stanza.ParseElement([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return stanza.Tokens(toks...)
}

func privateIQ(id, typ string, payload xml.TokenReader) *stanza.Stanza {
	return modtest.IQ(id, typ, jid.JID{}, elem(compatNSPrivate, "query", nil, payload))
}

// compatElems returns the elements named space/local anywhere in st.
func compatElems(st *stanza.Stanza, space, local string) []stanza.Element {
	var out []stanza.Element
	var walk func(els func(func(stanza.Element) bool))
	walk = func(els func(func(stanza.Element) bool)) {
		for el := range els {
			if el.Name.Space == space && el.Name.Local == local {
				out = append(out, el)
			}
			walk(el.Children())
		}
	}
	walk(st.Children())
	return out
}

// conferences returns "jid|name|autojoin|nick|password|extension names"
// of each legacy <conference/> in st, sorted.
func conferences(st *stanza.Stanza) []string {
	var out []string
	for c := range slices.Values(compatElems(st, compatNSLegacy, "conference")) {
		nick, _ := c.Child(xml.Name{Space: compatNSLegacy, Local: "nick"})
		pass, _ := c.Child(xml.Name{Space: compatNSLegacy, Local: "password"})
		var ext []string
		for e := range c.Children() {
			if e.Name.Space != compatNSLegacy {
				ext = append(ext, e.Name.Local)
			}
		}
		out = append(out, strings.Join([]string{c.Attr("jid"), c.Attr("name"), c.Attr("autojoin"), nick.Text(), pass.Text(), strings.Join(ext, ",")}, "|"))
	}
	slices.Sort(out)
	return out
}

func isRetract(owner jid.JID, n, id string) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		if !isEvent(owner, n)(st) {
			return false
		}
		for _, r := range compatElems(st, nsEvent, "retract") {
			if r.Attr("id") == id {
				return true
			}
		}
		return false
	}
}

func isPublishOf(owner jid.JID, n, id string) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		return isEvent(owner, n)(st) && slices.Contains(itemIDs(st), id)
	}
}

const compatBookmarks = `<storage xmlns='storage:bookmarks'>` +
	`<conference jid='council@conference.example.org' name='Council' autojoin='true'><nick>alice</nick><password>s3cret</password>` +
	`<minimize xmlns='xmpp:gajim.org/bookmarks'/></conference>` +
	`<conference jid='orchard@conference.example.org' name='Orchard'/>` +
	`<url name='Docs' url='https://example.org/'/></storage>`

// TestBookmarksFromPrivate: bookmarks a legacy client stores in private
// XML become one whitelisted XEP-0402 item per room, with events to the
// user's resources that ask for them and to no contact; a private get
// returns them; changing the set publishes what changed and retracts
// what is gone.
func TestBookmarksFromPrivate(t *testing.T) {
	e := startCompat(t)
	e.share(t, e.alice, e.bob)
	legacy := e.srv.Connect(t, e.alice, "pw")
	modern := e.online(t, e.alice, pep.NodeBookmarks)
	b := e.online(t, e.bob, pep.NodeBookmarks)

	modtest.MustResult(t, modtest.Do(t, legacy, privateIQ("set1", stanza.Set, compatParse(t, compatBookmarks))), jid.JID{})
	modern.Expect(isPublishOf(e.alice, pep.NodeBookmarks, "council@conference.example.org"))
	modern.Expect(isPublishOf(e.alice, pep.NodeBookmarks, "orchard@conference.example.org"))
	b.SyncNone(isEvent(e.alice, pep.NodeBookmarks))

	r := modtest.Do(t, modern, itemsIQ("i1", jid.JID{}, pep.NodeBookmarks, 0))
	if got := itemIDs(r); strings.Join(got, ",") != "council@conference.example.org,orchard@conference.example.org" {
		t.Fatalf("XEP-0402 items: %q", got)
	}
	confs := compatElems(r, pep.NodeBookmarks, "conference")
	if len(confs) != 2 || confs[0].Attr("name") != "Council" || confs[0].Attr("autojoin") != "true" {
		t.Fatalf("conferences: %d", len(confs))
	}
	nick, _ := confs[0].Child(xml.Name{Space: pep.NodeBookmarks, Local: "nick"})
	pass, _ := confs[0].Child(xml.Name{Space: pep.NodeBookmarks, Local: "password"})
	ext, _ := confs[0].Child(xml.Name{Space: pep.NodeBookmarks, Local: "extensions"})
	if nick.Text() != "alice" || pass.Text() != "s3cret" || !ext.HasChild(xml.Name{Space: "xmpp:gajim.org/bookmarks", Local: "minimize"}) {
		t.Errorf("council: nick %q password %q extensions %v", nick.Text(), pass.Text(), ext.Tokens())
	}
	// The node is configured as XEP-0402 asks.
	cfg := modtest.Do(t, modern, modtest.IQ("c", stanza.Get, jid.JID{}, elem(nsOwner, "pubsub", nil, elem(nsOwner, "configure", node(pep.NodeBookmarks)))))
	for v, want := range map[string]string{"pubsub#access_model": "whitelist", "pubsub#max_items": "max", "pubsub#send_last_published_item": "never"} {
		if got := formValue(cfg, v); got != want {
			t.Errorf("%s = %q, want %q", v, got, want)
		}
	}
	// A contact may not read them.
	if r := modtest.Do(t, b, itemsIQ("b1", e.alice, pep.NodeBookmarks, 0)); modtest.Condition(r) != mstanza.NotAllowed {
		t.Errorf("bob reading alice's bookmarks: %v", modtest.Condition(r))
	}

	// A private get is built from the node; the URL is gone (XEP-0402 has
	// none) and the extension comes back.
	get := modtest.Do(t, legacy, privateIQ("get1", stanza.Get, elem(compatNSLegacy, "storage", nil)))
	want := []string{"council@conference.example.org|Council|true|alice|s3cret|minimize", "orchard@conference.example.org|Orchard||||"}
	if got := conferences(get); !slices.Equal(got, want) {
		t.Fatalf("private get: %q, want %q", got, want)
	}

	// A set that renames orchard, keeps council as it was and adds a
	// room: two publishes, no event for council.
	set2 := `<storage xmlns='storage:bookmarks'>` +
		`<conference jid='council@conference.example.org' name='Council' autojoin='1'><nick>alice</nick><password>s3cret</password></conference>` +
		`<conference jid='orchard@conference.example.org' name='The Orchard'/>` +
		`<conference jid='garden@conference.example.org'/></storage>`
	modtest.MustResult(t, modtest.Do(t, legacy, privateIQ("set2", stanza.Set, compatParse(t, set2))), jid.JID{})
	council := isPublishOf(e.alice, pep.NodeBookmarks, "council@conference.example.org")
	modern.ExpectNoneUntil(council, isPublishOf(e.alice, pep.NodeBookmarks, "orchard@conference.example.org"))
	modern.ExpectNoneUntil(council, isPublishOf(e.alice, pep.NodeBookmarks, "garden@conference.example.org"))
	modern.SyncNone(council)
	// The council's extension, which the legacy client did not keep, is.
	get = modtest.Do(t, legacy, privateIQ("get2", stanza.Get, elem(compatNSLegacy, "storage", nil)))
	want = []string{"council@conference.example.org|Council|true|alice|s3cret|minimize", "garden@conference.example.org|||||", "orchard@conference.example.org|The Orchard||||"}
	if got := conferences(get); !slices.Equal(got, want) {
		t.Fatalf("private get after the second set: %q, want %q", got, want)
	}

	// Removing bookmarks retracts their items, with events.
	set3 := `<storage xmlns='storage:bookmarks'><conference jid='garden@conference.example.org'/></storage>`
	modtest.MustResult(t, modtest.Do(t, legacy, privateIQ("set3", stanza.Set, compatParse(t, set3))), jid.JID{})
	modern.Expect(isRetract(e.alice, pep.NodeBookmarks, "council@conference.example.org"))
	modern.Expect(isRetract(e.alice, pep.NodeBookmarks, "orchard@conference.example.org"))
	if got := itemIDs(modtest.Do(t, modern, itemsIQ("i2", jid.JID{}, pep.NodeBookmarks, 0))); strings.Join(got, ",") != "garden@conference.example.org" {
		t.Fatalf("items after removing two: %q", got)
	}
	modtest.MustResult(t, modtest.Do(t, legacy, privateIQ("set4", stanza.Set, elem(compatNSLegacy, "storage", nil))), jid.JID{})
	modern.Expect(isRetract(e.alice, pep.NodeBookmarks, "garden@conference.example.org"))
	get = modtest.Do(t, legacy, privateIQ("get3", stanza.Get, elem(compatNSLegacy, "storage", nil)))
	if got := conferences(get); len(got) != 0 || len(compatElems(get, compatNSLegacy, "storage")) != 1 {
		t.Fatalf("private get of no bookmarks: %q", got)
	}
	// Nothing of them is in private storage.
	if keys, _ := e.store.Keys(context.Background(), e.alice.String()); len(keys) != 0 {
		t.Errorf("private storage keeps %q", keys)
	}
}

// TestBookmarksFromPEP: what a XEP-0402 client publishes and retracts
// shows in the next private get and in the legacy PEP node, and a
// resource asking for storage:bookmarks gets the whole list on each
// change; a publish to the legacy node converts as a private set does.
func TestBookmarksFromPEP(t *testing.T) {
	e := startCompat(t)
	modern := e.srv.Connect(t, e.alice, "pw")
	old := e.online(t, e.alice, compatNSLegacy)
	legacy := e.srv.Connect(t, e.alice, "pw")

	conf := elem(pep.NodeBookmarks, "conference", []xml.Attr{stanza.Attr("name", "The Play"), stanza.Attr("autojoin", "true")},
		stanza.TextElem(xml.Name{Space: pep.NodeBookmarks, Local: "nick"}, "JC"))
	pub := publishIQ("p1", pep.NodeBookmarks, "theplay@conference.example.org", conf,
		"pubsub#persist_items", "true", "pubsub#max_items", "max", "pubsub#send_last_published_item", "never", "pubsub#access_model", "whitelist")
	modtest.MustResult(t, modtest.Do(t, modern, pub), jid.JID{})
	ev := old.Expect(isEvent(e.alice, compatNSLegacy))
	if got := itemIDs(ev); strings.Join(got, ",") != "current" || len(conferences(ev)) != 1 {
		t.Errorf("storage:bookmarks event: items %q conferences %q", got, conferences(ev))
	}

	get := modtest.Do(t, legacy, privateIQ("g1", stanza.Get, elem(compatNSLegacy, "storage", nil)))
	if got := conferences(get); strings.Join(got, ";") != "theplay@conference.example.org|The Play|true|JC||" {
		t.Fatalf("private get: %q", got)
	}
	r := modtest.Do(t, legacy, itemsIQ("l1", jid.JID{}, compatNSLegacy, 0))
	if got := itemIDs(r); strings.Join(got, ",") != "current" || strings.Join(conferences(r), ";") != "theplay@conference.example.org|The Play|true|JC||" {
		t.Fatalf("legacy PEP items: %q %q", got, conferences(r))
	}

	retract := modtest.IQ("r1", stanza.Set, jid.JID{}, elem(nsPubSub, "pubsub", nil, elem(nsPubSub, "retract",
		[]xml.Attr{stanza.Attr("node", pep.NodeBookmarks), stanza.Attr("notify", "true")},
		elem(nsPubSub, "item", []xml.Attr{stanza.Attr("id", "theplay@conference.example.org")}))))
	modtest.MustResult(t, modtest.Do(t, modern, retract), jid.JID{})
	ev = old.Expect(isEvent(e.alice, compatNSLegacy))
	if got := conferences(ev); len(got) != 0 {
		t.Errorf("storage:bookmarks event after the retraction: %q", got)
	}
	if got := conferences(modtest.Do(t, legacy, privateIQ("g2", stanza.Get, elem(compatNSLegacy, "storage", nil)))); len(got) != 0 {
		t.Fatalf("private get after the retraction: %q", got)
	}

	// A XEP-0048 client publishing to the legacy node.
	list := compatParse(t, `<storage xmlns='storage:bookmarks'><conference jid='orchard@conference.example.org' name='Orchard'/></storage>`)
	r = modtest.Do(t, legacy, publishIQ("l2", compatNSLegacy, "current", list, "pubsub#access_model", "whitelist"))
	if got := itemIDs(r); r.Type != stanza.Result || strings.Join(got, ",") != "current" {
		t.Fatalf("legacy publish: %v %v %q", r.Type, modtest.Condition(r), got)
	}
	if got := itemIDs(modtest.Do(t, modern, itemsIQ("i1", jid.JID{}, pep.NodeBookmarks, 0))); strings.Join(got, ",") != "orchard@conference.example.org" {
		t.Fatalf("XEP-0402 items after the legacy publish: %q", got)
	}
	// Nobody else reads or writes the legacy node.
	b := e.srv.Connect(t, e.bob, "pw")
	if r := modtest.Do(t, b, itemsIQ("b1", e.alice, compatNSLegacy, 0)); modtest.Condition(r) != mstanza.NotAllowed {
		t.Errorf("bob reading alice's legacy node: %v", modtest.Condition(r))
	}
}

// TestBookmarksMoved: bookmarks stored in private XML before the
// conversion move to the XEP-0402 node at the account's next login.
func TestBookmarksMoved(t *testing.T) {
	store := memory.New()
	if err := store.Put(context.Background(), "alice@localhost", private.KeyPrefix+"{storage:bookmarks}storage",
		[]byte(`<storage xmlns="storage:bookmarks"><conference jid="council@conference.example.org" name="Council"/></storage>`)); err != nil {
		t.Fatal(err)
	}
	e := startCompatOn(t, store)
	a := e.srv.Connect(t, e.alice, "pw")
	if got := itemIDs(modtest.Do(t, a, itemsIQ("i", jid.JID{}, pep.NodeBookmarks, 0))); strings.Join(got, ",") != "council@conference.example.org" {
		t.Fatalf("items after login: %q", got)
	}
	if keys, _ := store.Keys(context.Background(), "alice@localhost"); len(keys) != 0 {
		t.Errorf("private storage still keeps %q", keys)
	}
}

// TestCompatFeatures: accounts advertise the conversions.
func TestCompatFeatures(t *testing.T) {
	e := startCompat(t)
	b := e.srv.Connect(t, e.bob, "pw")
	info := modtest.DiscoInfo(t, b, e.alice)
	for _, f := range []string{"urn:xmpp:bookmarks:1#compat", "urn:xmpp:bookmarks:1#compat-pep", "urn:xmpp:bookmarks-conversion:0", "urn:xmpp:pep-vcard-conversion:0", "vcard-temp"} {
		if !modtest.HasFeature(info, f) {
			t.Errorf("account disco#info lacks %s", f)
		}
	}
}

// compatImage is an avatar's bytes.
var compatImage = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte("kiez avatar "), 50)...)

func compatHash(b []byte) string {
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}

// vCardWithPhoto is a vCard with a full name and, if img is not nil, a
// PHOTO of it with its base64 wrapped as legacy clients wrap it.
func vCardWithPhoto(img []byte) xml.TokenReader {
	children := []xml.TokenReader{stanza.TextElem(xml.Name{Space: "vcard-temp", Local: "FN"}, "Alice")}
	if img != nil {
		b64 := base64.StdEncoding.EncodeToString(img)
		var wrapped strings.Builder
		for len(b64) > 76 {
			wrapped.WriteString(b64[:76] + "\n")
			b64 = b64[76:]
		}
		wrapped.WriteString(b64)
		children = append(children, elem("vcard-temp", "PHOTO", nil,
			stanza.TextElem(xml.Name{Space: "vcard-temp", Local: "TYPE"}, "image/png"),
			stanza.TextElem(xml.Name{Space: "vcard-temp", Local: "BINVAL"}, wrapped.String())))
	}
	return elem("vcard-temp", "vCard", nil, children...)
}

// photoOf returns the TYPE and decoded BINVAL of the PHOTO in a vCard
// result, ok false without one.
func photoOf(t *testing.T, st *stanza.Stanza) (typ string, img []byte, ok bool) {
	t.Helper()
	photos := compatElems(st, "vcard-temp", "PHOTO")
	if len(photos) == 0 {
		return "", nil, false
	}
	if len(photos) > 1 {
		t.Fatalf("%d PHOTOs", len(photos))
	}
	ty, _ := photos[0].Child(xml.Name{Space: "vcard-temp", Local: "TYPE"})
	bin, _ := photos[0].Child(xml.Name{Space: "vcard-temp", Local: "BINVAL"})
	img, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(bin.Text()), ""))
	if err != nil {
		t.Fatal(err)
	}
	return ty.Text(), img, true
}

func vCardGet(id string, to jid.JID) *stanza.Stanza {
	return modtest.IQ(id, stanza.Get, to, elem("vcard-temp", "vCard", nil))
}

// TestAvatarFromVCard: a vCard set with a PHOTO publishes the XEP-0084
// avatar (a contact asking for metadata gets the event), shows it as the
// vCard's PHOTO to the user and contacts (not to strangers: the nodes'
// access model is presence), and is stored without it; the same PHOTO
// again publishes nothing; a vCard without PHOTO disables the avatar.
func TestAvatarFromVCard(t *testing.T) {
	e := startCompat(t)
	e.share(t, e.alice, e.bob)
	a := e.srv.Connect(t, e.alice, "pw")
	b := e.online(t, e.bob, nodeMeta)
	id := compatHash(compatImage)

	modtest.MustResult(t, modtest.Do(t, a, modtest.IQ("v1", stanza.Set, jid.JID{}, vCardWithPhoto(compatImage))), jid.JID{})
	ev := b.Expect(isEvent(e.alice, nodeMeta))
	infos := compatElems(ev, nodeMeta, "info")
	if got := itemIDs(ev); strings.Join(got, ",") != id || len(infos) != 1 ||
		infos[0].Attr("id") != id || infos[0].Attr("type") != "image/png" || infos[0].Attr("bytes") != strconv.Itoa(len(compatImage)) {
		t.Fatalf("metadata event: items %q infos %d (%v)", got, len(infos), infos)
	}
	r := modtest.Do(t, b, itemsIQ("d1", e.alice, pep.NodeAvatarData, 0, id))
	datas := compatElems(r, pep.NodeAvatarData, "data")
	if len(datas) != 1 || datas[0].Text() != base64.StdEncoding.EncodeToString(compatImage) {
		t.Fatalf("avatar data: %v %v", r.Type, modtest.Condition(r))
	}
	for _, c := range []struct {
		name string
		c    *servertest.Client
		to   jid.JID
	}{{"own", a, jid.JID{}}, {"contact", b, e.alice}} {
		typ, img, ok := photoOf(t, modtest.Do(t, c.c, vCardGet("g-"+c.name, c.to)))
		if !ok || typ != "image/png" || !bytes.Equal(img, compatImage) {
			t.Errorf("%s vCard: PHOTO %v type %q, %d bytes", c.name, ok, typ, len(img))
		}
	}
	carol := e.srv.Connect(t, e.carol, "pw")
	g := modtest.Do(t, carol, vCardGet("g-stranger", e.alice))
	if _, _, ok := photoOf(t, g); ok || len(compatElems(g, "vcard-temp", "FN")) != 1 {
		t.Errorf("a stranger's view of the vCard: PHOTO %v, FN %d", ok, len(compatElems(g, "vcard-temp", "FN")))
	}
	if stored, _ := e.store.Get(context.Background(), e.alice.String(), vcard.Key); bytes.Contains(stored, []byte("PHOTO")) || !bytes.Contains(stored, []byte("Alice")) {
		t.Errorf("stored vCard: %s", stored)
	}

	// The same vCard again: nothing to tell.
	modtest.MustResult(t, modtest.Do(t, a, modtest.IQ("v2", stanza.Set, jid.JID{}, vCardWithPhoto(compatImage))), jid.JID{})
	a.Sync()
	b.SyncNone(isEvent(e.alice, nodeMeta))

	// A vCard without PHOTO disables the avatar.
	modtest.MustResult(t, modtest.Do(t, a, modtest.IQ("v3", stanza.Set, jid.JID{}, vCardWithPhoto(nil))), jid.JID{})
	ev = b.Expect(isEvent(e.alice, nodeMeta))
	if len(compatElems(ev, nodeMeta, "metadata")) != 1 || len(compatElems(ev, nodeMeta, "info")) != 0 {
		t.Errorf("disabling event: %v", ev.Inner)
	}
	if _, _, ok := photoOf(t, modtest.Do(t, b, vCardGet("g3", e.alice))); ok {
		t.Errorf("PHOTO after disabling the avatar")
	}
	if r := modtest.Do(t, b, itemsIQ("d2", e.alice, pep.NodeAvatarData, 0, id)); modtest.Condition(r) != mstanza.ItemNotFound {
		t.Errorf("avatar data after disabling: %v %v", r.Type, modtest.Condition(r))
	}
}

// avatarPublish publishes img as a XEP-0084 client does: data, then
// metadata.
func avatarPublish(t *testing.T, c *servertest.Client, img []byte) {
	t.Helper()
	id := compatHash(img)
	modtest.MustResult(t, modtest.Do(t, c, publishIQ("ad", pep.NodeAvatarData, id,
		stanza.TextElem(xml.Name{Space: pep.NodeAvatarData, Local: "data"}, base64.StdEncoding.EncodeToString(img)))), jid.JID{})
	info := elem(nodeMeta, "metadata", nil,
		elem(nodeMeta, "info", []xml.Attr{stanza.Attr("id", "remote"), stanza.Attr("bytes", "1"), stanza.Attr("type", "image/gif"), stanza.Attr("url", "https://example.org/a.gif")}),
		elem(nodeMeta, "info", []xml.Attr{stanza.Attr("id", id), stanza.Attr("bytes", strconv.Itoa(len(img))), stanza.Attr("type", "image/webp")}))
	modtest.MustResult(t, modtest.Do(t, c, publishIQ("am", nodeMeta, id, info)), jid.JID{})
}

// TestAvatarFromPEP: an avatar published over PEP is the vCard's PHOTO
// (the info without URL), in place of a PHOTO stored with a URL.
func TestAvatarFromPEP(t *testing.T) {
	e := startCompat(t)
	e.share(t, e.alice, e.bob)
	a := e.srv.Connect(t, e.alice, "pw")
	b := e.srv.Connect(t, e.bob, "pw")
	ext := elem("vcard-temp", "vCard", nil, stanza.TextElem(xml.Name{Space: "vcard-temp", Local: "FN"}, "Alice"),
		elem("vcard-temp", "PHOTO", nil, stanza.TextElem(xml.Name{Space: "vcard-temp", Local: "EXTVAL"}, "https://example.org/a.png")))
	modtest.MustResult(t, modtest.Do(t, a, modtest.IQ("v1", stanza.Set, jid.JID{}, ext)), jid.JID{})
	if n := len(compatElems(modtest.Do(t, b, vCardGet("g1", e.alice)), "vcard-temp", "EXTVAL")); n != 1 {
		t.Fatalf("a PHOTO with a URL: %d EXTVALs", n)
	}
	avatarPublish(t, a, compatImage)
	g := modtest.Do(t, b, vCardGet("g2", e.alice))
	typ, img, ok := photoOf(t, g)
	if !ok || typ != "image/webp" || !bytes.Equal(img, compatImage) || len(compatElems(g, "vcard-temp", "EXTVAL")) != 0 {
		t.Fatalf("vCard PHOTO after the PEP publish: %v %q %d bytes", ok, typ, len(img))
	}
	// An account with no vCard shows the avatar alone.
	bob := e.bob
	avatarPublish(t, b, compatImage[:100])
	if _, img, ok := photoOf(t, modtest.Do(t, b, vCardGet("g3", jid.JID{}))); !ok || !bytes.Equal(img, compatImage[:100]) {
		t.Errorf("%s's own vCard: PHOTO %v", bob, ok)
	}
}

func updateHash(st *stanza.Stanza) (hash string, ok bool) {
	xs := compatElems(st, compatNSUpdate, "x")
	if len(xs) != 1 {
		return "", false
	}
	p, ok := xs[0].Child(xml.Name{Space: compatNSUpdate, Local: "photo"})
	return p.Text(), ok
}

func presenceFrom(from jid.JID) func(*stanza.Stanza) bool {
	return func(st *stanza.Stanza) bool {
		return st.Kind == stanza.Presence && st.Type == "" && st.From.Equal(from)
	}
}

// TestPresenceHash: the presence a client sends gets the avatar's hash,
// in the copies to contacts and to the user's other resources; an
// account without avatar gets an empty <photo/>; an empty <photo/> the
// client sends is left alone, a stale hash replaced.
func TestPresenceHash(t *testing.T) {
	e := startCompat(t)
	e.share(t, e.alice, e.bob)
	b := e.online(t, e.bob)
	a1 := e.srv.Connect(t, e.alice, "pw")
	a1.Send(&stanza.Stanza{Kind: stanza.Presence})
	if h, ok := updateHash(b.Expect(presenceFrom(a1.LocalAddr()))); !ok || h != "" {
		t.Errorf("presence without avatar: photo %q %v, want empty", h, ok)
	}
	avatarPublish(t, a1, compatImage)
	a1.Send(&stanza.Stanza{Kind: stanza.Presence})
	if h, _ := updateHash(b.Expect(presenceFrom(a1.LocalAddr()))); h != compatHash(compatImage) {
		t.Errorf("presence hash %q, want %q", h, compatHash(compatImage))
	}
	a2 := e.srv.Connect(t, e.alice, "pw")
	a2.Send(&stanza.Stanza{Kind: stanza.Presence})
	if h, _ := updateHash(a1.Expect(presenceFrom(a2.LocalAddr()))); h != compatHash(compatImage) {
		t.Errorf("presence hash to a sibling resource %q", h)
	}
	for _, c := range []struct{ sent, want string }{
		{`<x xmlns='vcard-temp:x:update'><photo/></x>`, ""},
		{`<x xmlns='vcard-temp:x:update'/>`, compatHash(compatImage)},
		{`<x xmlns='vcard-temp:x:update'><photo>0123456789abcdef0123456789abcdef01234567</photo></x>`, compatHash(compatImage)},
	} {
		p := &stanza.Stanza{Kind: stanza.Presence}
		p.AppendChild(compatParse(t, c.sent))
		a1.Send(p)
		if h, ok := updateHash(b.Expect(presenceFrom(a1.LocalAddr()))); !ok || h != c.want {
			t.Errorf("sent %s: photo %q %v, want %q", c.sent, h, ok, c.want)
		}
	}
}

// TestVCardPhotoMoved: a vCard stored with a PHOTO before the conversion
// becomes the avatar at the account's next login.
func TestVCardPhotoMoved(t *testing.T) {
	store := memory.New()
	b64 := base64.StdEncoding.EncodeToString(compatImage)
	if err := store.Put(context.Background(), "alice@localhost", vcard.Key,
		[]byte(`<vCard xmlns="vcard-temp"><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>`+b64+`</BINVAL></PHOTO></vCard>`)); err != nil {
		t.Fatal(err)
	}
	e := startCompatOn(t, store)
	a := e.srv.Connect(t, e.alice, "pw")
	r := modtest.Do(t, a, itemsIQ("m", jid.JID{}, nodeMeta, 0))
	if got := itemIDs(r); strings.Join(got, ",") != compatHash(compatImage) {
		t.Fatalf("metadata after login: %q", got)
	}
	if stored, _ := store.Get(context.Background(), "alice@localhost", vcard.Key); bytes.Contains(stored, []byte("PHOTO")) || !bytes.Contains(stored, []byte("Alice")) {
		t.Errorf("stored vCard: %s", stored)
	}
	if _, img, ok := photoOf(t, modtest.Do(t, a, vCardGet("g", jid.JID{}))); !ok || !bytes.Equal(img, compatImage) {
		t.Errorf("vCard PHOTO after moving: %v", ok)
	}
}

// TestCompatDeletion: deleting an account with converted bookmarks and
// avatar leaves nothing of it in the store.
func TestCompatDeletion(t *testing.T) {
	e := startCompat(t)
	a := e.srv.Connect(t, e.alice, "pw")
	modtest.MustResult(t, modtest.Do(t, a, privateIQ("s", stanza.Set, compatParse(t, compatBookmarks))), jid.JID{})
	modtest.MustResult(t, modtest.Do(t, a, privateIQ("n", stanza.Set, compatParse(t, `<note xmlns='urn:example:notes'>hi</note>`))), jid.JID{})
	modtest.MustResult(t, modtest.Do(t, a, modtest.IQ("v", stanza.Set, jid.JID{}, vCardWithPhoto(compatImage))), jid.JID{})
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	a.Sync()
	ctx := context.Background()
	if nodes, _ := e.store.PEPNodes(ctx, e.alice.String()); len(nodes) != 3 {
		t.Fatalf("nodes before deletion: %d", len(nodes))
	}
	if err := e.srv.DeleteUser(ctx, e.alice); err != nil {
		t.Fatal(err)
	}
	if nodes, err := e.store.PEPNodes(ctx, e.alice.String()); err != nil || len(nodes) != 0 {
		t.Errorf("nodes after deletion: %v %v", nodes, err)
	}
	if keys, err := e.store.Keys(ctx, e.alice.String()); err != nil || len(keys) != 0 {
		t.Errorf("keys after deletion: %q %v", keys, err)
	}
	// A new account of the same name starts without either.
	e.srv.AddUser(t, "alice", "pw")
	a = e.srv.Connect(t, e.alice, "pw")
	if got := conferences(modtest.Do(t, a, privateIQ("g", stanza.Get, elem(compatNSLegacy, "storage", nil)))); len(got) != 0 {
		t.Errorf("bookmarks of the new account: %q", got)
	}
	if _, _, ok := photoOf(t, modtest.Do(t, a, vCardGet("gv", jid.JID{}))); ok {
		t.Errorf("the new account has a PHOTO")
	}
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	a.Sync()
}

// TestAPI: Publish creates a node with the options given and notifies
// as a client's publish does; Enforce reconfigures a node that exists;
// Items reads back; Retract notifies and reports a missing item.
func TestAPI(t *testing.T) {
	store := memory.New()
	ros := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: store}))
	pres := modtest.Must(presence.New(presence.Options{}, presence.Deps{Roster: ros}))
	cp := modtest.Must(caps.New(caps.Options{}, caps.Deps{}))
	p := modtest.Must(pep.New(pep.Options{}, pep.Deps{Store: store, Roster: ros, Caps: cp}))
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{ros, pres, cp, p}})
	e := &env{srv: srv, store: store, roster: ros, caps: cp,
		alice: srv.AddUser(t, "alice", "pw"), bob: srv.AddUser(t, "bob", "pw"), carol: srv.AddUser(t, "carol", "pw")}
	e.share(t, e.alice, e.bob)
	b := e.online(t, e.bob, "urn:test:api")
	ctx := context.Background()

	id, err := p.Publish(ctx, e.alice, "urn:test:api", "", elem("urn:test", "thing", nil, stanza.Tokens(xml.CharData("one"))),
		pep.NodeOptions{Access: pep.AccessOpen, MaxItems: pep.MaxItemsMax})
	if err != nil || id == "" {
		t.Fatalf("Publish: %q %v", id, err)
	}
	if ev := b.Expect(isEvent(e.alice, "urn:test:api")); strings.Join(itemIDs(ev), ",") != id {
		t.Errorf("event items %q, want %s", itemIDs(ev), id)
	}
	if _, err := p.Publish(ctx, e.alice, "urn:test:api", "two", elem("urn:test", "thing", nil), pep.NodeOptions{Access: pep.AccessWhitelist}); err != nil {
		t.Fatal(err)
	}
	b.Expect(isEvent(e.alice, "urn:test:api"))
	// Without Enforce the options only configure a new node: still open,
	// both items kept.
	c := e.srv.Connect(t, e.carol, "pw")
	if r := modtest.Do(t, c, itemsIQ("c1", e.alice, "urn:test:api", 0)); len(itemIDs(r)) != 2 {
		t.Fatalf("a stranger's items of an open node: %v %q", modtest.Condition(r), itemIDs(r))
	}
	its, err := p.Items(ctx, e.alice, "urn:test:api", id)
	if err != nil || len(its) != 1 || its[0].ID != id || len(its[0].Payload) != 3 || its[0].Payload[1] == nil {
		t.Fatalf("Items by id: %v %v", its, err)
	}
	if cd, ok := its[0].Payload[1].(xml.CharData); !ok || string(cd) != "one" {
		t.Errorf("payload %v", its[0].Payload)
	}
	// With Enforce the node becomes whitelisted: the contact gets no
	// event, the stranger no items.
	if _, err := p.Publish(ctx, e.alice, "urn:test:api", "three", elem("urn:test", "thing", nil), pep.NodeOptions{Access: pep.AccessWhitelist, Enforce: true}); err != nil {
		t.Fatal(err)
	}
	b.SyncNone(isEvent(e.alice, "urn:test:api"))
	if r := modtest.Do(t, c, itemsIQ("c2", e.alice, "urn:test:api", 0)); modtest.Condition(r) != mstanza.NotAllowed {
		t.Errorf("a stranger's items of a whitelisted node: %v", modtest.Condition(r))
	}
	if err := p.Retract(ctx, e.alice, "urn:test:api", "two"); err != nil {
		t.Fatal(err)
	}
	if err := p.Retract(ctx, e.alice, "urn:test:api", "two"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("retracting a missing item: %v", err)
	}
	if err := p.Retract(ctx, e.alice, "urn:test:none", "x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("retracting on a missing node: %v", err)
	}
	if its, err := p.Items(ctx, e.alice, "urn:test:none"); err != nil || its != nil {
		t.Errorf("Items of a missing node: %v %v", its, err)
	}
	if _, err := p.Publish(ctx, e.alice, "urn:test:bad", "", elem("urn:test", "thing", nil), pep.NodeOptions{Access: "authorize"}); err == nil {
		t.Errorf("an unknown access model was taken")
	}
	big := elem("urn:test", "thing", nil, stanza.Tokens(xml.CharData(strings.Repeat("x", pep.DefaultMaxItemSize))))
	var f stanza.Failure
	if _, err := p.Publish(ctx, e.alice, "urn:test:api", "", big, pep.NodeOptions{}); !errors.As(err, &f) || f.Err.Condition != mstanza.NotAcceptable {
		t.Errorf("a payload too big: %v", err)
	}
}

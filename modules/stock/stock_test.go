package stock_test

import (
	"context"
	"encoding/xml"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/contact"
	"github.com/kiez-im/kiez/modules/extdisco"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/muc"
	"github.com/kiez-im/kiez/modules/offline"
	"github.com/kiez-im/kiez/modules/proxy65"
	"github.com/kiez-im/kiez/modules/stock"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/blob"
	"github.com/kiez-im/kiez/storage/memory"
)

func names(mods []server.Module) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Name())
	}
	return out
}

func TestModules(t *testing.T) {
	all, err := stock.Modules(memory.New(), stock.Options{Contact: contact.Options{Addresses: map[string][]string{"abuse-addresses": {"mailto:abuse@example.org"}}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"blocking", "presence", "roster", "strangers", "mam", "carbons", "offline", "adhoc", "vcard", "private", "ping", "time", "version", "caps", "pep", "muc", "push", "contact"}
	if got := names(all); !slices.Equal(got, want) {
		t.Errorf("modules %v, want %v", got, want)
	}
	// External services and the SOCKS5 proxy run once configured.
	configured, err := stock.Modules(memory.New(), stock.Options{
		ExternalServices: extdisco.Options{Services: []extdisco.Service{{Type: "stun", Host: "stun.example.org"}}},
		Proxy65:          proxy65.Options{Listen: "127.0.0.1:0"},
		Without:          []string{stock.Push},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(configured); !slices.Contains(got, "extdisco") || !slices.Contains(got, "proxy65") || slices.Contains(got, "push") {
		t.Errorf("configured: %v, want extdisco and proxy65 without push", got)
	}
	some, err := stock.Modules(memory.New(), stock.Options{Without: []string{stock.Roster, stock.Archive, stock.Ping}})
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"presence", "roster", "strangers", "mam", "adhoc", "ping", "contact", "pep"} {
		if slices.Contains(names(some), gone) {
			t.Errorf("%s is there without roster, archive and ping: %v", gone, names(some))
		}
	}
	files, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	withFiles, err := stock.Modules(memory.New(), stock.Options{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(withFiles); !slices.Contains(got, "upload") || slices.Index(got, "upload") > slices.Index(got, "adhoc") {
		t.Errorf("with a file store, upload is missing or after adhoc: %v", got)
	}
	off, err := stock.Modules(memory.New(), stock.Options{Files: files, Without: []string{stock.Upload}})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(off); slices.Contains(got, "upload") || !slices.Contains(got, "upload-leftovers") {
		t.Errorf("upload switched off with a file store: %v, want upload-leftovers only", got)
	}
	if _, err := stock.Modules(memory.New(), stock.Options{Without: []string{"mucc"}}); err == nil || !strings.Contains(err.Error(), `no module "mucc"`) {
		t.Errorf("unknown name: %v", err)
	}
	if _, err := stock.Modules(memory.New(), stock.Options{Offline: offlineTooMany()}); err == nil || !strings.Contains(err.Error(), "offline") {
		t.Errorf("a bad module option: %v", err)
	}
	if _, err := stock.Modules(memory.New(), stock.Options{MUC: muc.Options{Creation: muc.CreateAdmins}}); err == nil || !strings.Contains(err.Error(), "muc") {
		t.Errorf("a bad group chat option: %v", err)
	}
	noMUC, err := stock.Modules(memory.New(), stock.Options{Without: []string{stock.MUC}})
	if err != nil || slices.Contains(names(noMUC), "muc") {
		t.Errorf("without muc: %v, %v", names(noMUC), err)
	}
}

// The stock set serves a working server: a message to an offline user is
// archived for both and kept offline; at login it arrives with the
// recipient's archive id.
func TestServes(t *testing.T) {
	store := memory.New()
	mods, err := stock.Modules(store, stock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: mods})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Connect(t, alice, "pw")
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	m := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: bob, ID: "m1"}
	m.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "hello bob"))
	a.Send(m)
	a.Sync()
	b := srv.Connect(t, bob, "pw")
	b.Send(&stanza.Stanza{Kind: stanza.Presence})
	got := b.Expect(servertest.Body("hello bob"))
	if !got.HasChild(xml.Name{Space: "urn:xmpp:sid:0", Local: "stanza-id"}) || !got.HasChild(xml.Name{Space: "urn:xmpp:delay", Local: "delay"}) {
		t.Errorf("offline message without archive id or delay: %v", got.Inner)
	}
	for _, u := range []jid.JID{alice, bob} {
		if st, err := store.ArchiveStats(context.Background(), u.String()); err != nil || st.Count != 1 {
			t.Errorf("%s's archive: %d messages, %v; want 1", u, st.Count, err)
		}
	}
}

func offlineTooMany() offline.Options { return offline.Options{Limit: offline.MaxLimit + 1} }

// With PEP, accounts advertise the bookmarks and avatar conversions and a
// vCard's PHOTO becomes the PEP avatar; without it, vCards and private
// storage keep what clients store, as before.
func TestConversions(t *testing.T) {
	features := []string{"urn:xmpp:bookmarks:1#compat", "urn:xmpp:bookmarks:1#compat-pep", "urn:xmpp:bookmarks-conversion:0", "urn:xmpp:pep-vcard-conversion:0"}
	photo := func() *stanza.Stanza {
		return modtest.IQ("v", stanza.Set, jid.JID{}, stanza.Elem(xml.Name{Space: "vcard-temp", Local: "vCard"}, nil,
			stanza.Elem(xml.Name{Space: "vcard-temp", Local: "PHOTO"}, nil,
				stanza.TextElem(xml.Name{Space: "vcard-temp", Local: "TYPE"}, "image/png"),
				stanza.TextElem(xml.Name{Space: "vcard-temp", Local: "BINVAL"}, "iVBORw0KGgo="))))
	}
	for _, c := range []struct {
		name    string
		without []string
		pep     bool
	}{{"stock", nil, true}, {"without pep", []string{stock.PEP}, false}} {
		t.Run(c.name, func(t *testing.T) {
			store := memory.New()
			mods, err := stock.Modules(store, stock.Options{Without: c.without})
			if err != nil {
				t.Fatal(err)
			}
			srv := servertest.Start(t, server.Config{Accounts: store, Modules: mods})
			alice := srv.AddUser(t, "alice", "pw")
			bob := srv.AddUser(t, "bob", "pw")
			a := srv.Connect(t, alice, "pw")
			info := modtest.DiscoInfo(t, srv.Connect(t, bob, "pw"), alice)
			for _, f := range features {
				if modtest.HasFeature(info, f) != c.pep {
					t.Errorf("feature %s advertised: %v, want %v", f, !c.pep, c.pep)
				}
			}
			modtest.MustResult(t, modtest.Do(t, a, photo()), jid.JID{})
			stored, _ := store.Get(context.Background(), alice.String(), "vcard")
			nodes, _ := store.PEPNodes(context.Background(), alice.String())
			if strings.Contains(string(stored), "PHOTO") == c.pep || (len(nodes) == 2) != c.pep {
				t.Errorf("stored vCard %s, %d PEP nodes", stored, len(nodes))
			}
		})
	}
}

// With the archive on, group chat rooms may archive (the owner form
// offers muc#roomconfig_enablearchiving) and their messages land in the
// store under the room's JID; without it the option is not offered.
func TestRoomArchive(t *testing.T) {
	for _, c := range []struct {
		name    string
		without []string
		archive bool
	}{{"stock", nil, true}, {"without archive", []string{stock.Archive}, false}} {
		t.Run(c.name, func(t *testing.T) {
			store := memory.New()
			mods, err := stock.Modules(store, stock.Options{Without: c.without})
			if err != nil {
				t.Fatal(err)
			}
			srv := servertest.Start(t, server.Config{Accounts: store, Modules: mods})
			a := srv.Connect(t, srv.AddUser(t, "alice", "pw"), "pw")
			a.Send(&stanza.Stanza{Kind: stanza.Presence})
			room := jid.MustParse("lobby@conference.localhost")
			p := &stanza.Stanza{Kind: stanza.Presence, To: jid.MustParse("lobby@conference.localhost/Alice")}
			p.AppendChild(stanza.Elem(xml.Name{Space: muc.NS, Local: "x"}, nil))
			a.Send(p)
			a.Expect(func(st *stanza.Stanza) bool { return st.Kind == stanza.Message && st.From.Bare().Equal(room) })
			res := modtest.Do(t, a, modtest.IQ("form", stanza.Get, room, modtest.Query(muc.NSOwner, "query")))
			var b strings.Builder
			res.WriteTo(&b)
			if got := strings.Contains(b.String(), "muc#roomconfig_enablearchiving"); got != c.archive {
				t.Fatalf("archiving offered: %v, want %v: %s", got, c.archive, b.String())
			}
			if !c.archive {
				return
			}
			form := stanza.Elem(xml.Name{Space: "jabber:x:data", Local: "x"}, []xml.Attr{stanza.Attr("type", "submit")},
				stanza.Elem(xml.Name{Space: "jabber:x:data", Local: "field"}, []xml.Attr{stanza.Attr("var", "muc#roomconfig_enablearchiving")},
					stanza.TextElem(xml.Name{Space: "jabber:x:data", Local: "value"}, "1")))
			modtest.MustResult(t, modtest.Do(t, a, modtest.IQ("cfg", stanza.Set, room, stanza.Elem(xml.Name{Space: muc.NSOwner, Local: "query"}, nil, form))), room)
			m := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", To: room}
			m.AppendChild(stanza.TextElem(xml.Name{Local: "body"}, "archived"))
			a.Send(m)
			a.Expect(servertest.Body("archived"))
			if st, err := store.ArchiveStats(context.Background(), room.String()); err != nil || st.Count != 1 {
				t.Errorf("the room's archive: %d messages, %v; want 1", st.Count, err)
			}
		})
	}
}

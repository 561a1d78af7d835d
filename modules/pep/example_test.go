package pep_test

import (
	"context"
	"encoding/xml"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/caps"
	"github.com/kiez-im/kiez/modules/pep"
	"github.com/kiez-im/kiez/modules/presence"
	"github.com/kiez-im/kiez/modules/private"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/modules/vcard"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

// PEP builds on the roster and caps; private storage and vCards take its
// bookmarks and avatars, so it is built before them (modules/stock does
// this).
func Example() {
	store := memory.New()
	ros, _ := roster.New(roster.Options{}, roster.Deps{Store: store})
	pres, _ := presence.New(presence.Options{}, presence.Deps{Roster: ros})
	cp, _ := caps.New(caps.Options{}, caps.Deps{})
	p, err := pep.New(pep.Options{}, pep.Deps{Store: store, Roster: ros, Caps: cp})
	if err != nil {
		fmt.Println(err)
		return
	}
	priv, _ := private.New(private.Options{}, private.Deps{Store: store, Bookmarks: p.Bookmarks()})
	vc, _ := vcard.New(vcard.Options{}, vcard.Deps{Store: store, Avatar: p.Avatars()})
	_, err = server.New(context.Background(), server.Config{
		Domains:  []string{"example.org"},
		Accounts: store,
		Modules:  []server.Module{ros, pres, cp, p, priv, vc},
	})
	fmt.Println(err)
	// Output: <nil>
}

// Another module publishes on an account's behalf and reads back.
func ExampleModule_Publish() {
	store := memory.New()
	ros, _ := roster.New(roster.Options{}, roster.Deps{Store: store})
	p, _ := pep.New(pep.Options{}, pep.Deps{Store: store, Roster: ros})
	ctx := context.Background()
	alice := jid.MustParse("alice@example.org")
	mood := stanza.Elem(xml.Name{Space: "http://jabber.org/protocol/mood", Local: "mood"}, nil,
		stanza.Elem(xml.Name{Space: "http://jabber.org/protocol/mood", Local: "happy"}, nil))
	if _, err := p.Publish(ctx, alice, "http://jabber.org/protocol/mood", "current", mood, pep.NodeOptions{Access: pep.AccessPresence}); err != nil {
		fmt.Println(err)
		return
	}
	items, _ := p.Items(ctx, alice, "http://jabber.org/protocol/mood")
	fmt.Println(items[0].ID, items[0].Payload[1].(xml.StartElement).Name.Local)
	// Output: current happy
}

// Bookmarks of XEP-0048, as private XML storage has them, are kept as
// XEP-0402 items.
func ExampleBookmarks_SetLegacyBookmarks() {
	store := memory.New()
	ros, _ := roster.New(roster.Options{}, roster.Deps{Store: store})
	p, _ := pep.New(pep.Options{}, pep.Deps{Store: store, Roster: ros})
	ctx := context.Background()
	alice := jid.MustParse("alice@example.org")
	toks, _ := stanza.ParseElement([]byte(`<storage xmlns="storage:bookmarks"><conference jid="council@conference.example.org" name="Council"/></storage>`))
	for list := range stanza.Elements(toks) {
		if err := p.Bookmarks().SetLegacyBookmarks(ctx, alice, list); err != nil {
			fmt.Println(err)
		}
	}
	items, _ := p.Items(ctx, alice, pep.NodeBookmarks)
	fmt.Println(items[0].ID, items[0].Payload[0].(xml.StartElement).Name.Space)
	// Output: council@conference.example.org urn:xmpp:bookmarks:1
}

// A vCard PHOTO becomes the XEP-0084 avatar; its hash is what presence
// carries.
func ExampleAvatars_SetAvatar() {
	store := memory.New()
	ros, _ := roster.New(roster.Options{}, roster.Deps{Store: store})
	p, _ := pep.New(pep.Options{}, pep.Deps{Store: store, Roster: ros})
	ctx := context.Background()
	alice := jid.MustParse("alice@example.org")
	if err := p.Avatars().SetAvatar(ctx, alice, "image/png", []byte("not really a PNG")); err != nil {
		fmt.Println(err)
		return
	}
	hash, _ := p.Avatars().AvatarHash(ctx, alice)
	fmt.Println(hash)
	// Output: f25a623452e764c88e065ee4aa7ebfb09494a5e9
}

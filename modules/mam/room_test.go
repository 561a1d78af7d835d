package mam_test

import (
	"context"
	"encoding/xml"
	"errors"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// onlyArchive hides every method of a store but storage.Archive's.
type onlyArchive struct{ storage.Archive }

// The room archive on its own: appended messages come back as history
// with their stanza-ids, by id, replaced, expired and deleted, each room
// apart.
func TestRoomArchive(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	ra, err := mam.NewRoomArchive(store, mam.RoomOptions{})
	if err != nil {
		t.Fatal(err)
	}
	room, other := jid.MustParse("room@conference.example.org"), jid.MustParse("other@conference.example.org")
	msg := func(nick, body string) *stanza.Stanza {
		st := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", From: jid.MustParse(room.String() + "/" + nick), To: jid.MustParse("someone@example.org/x")}
		st.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, body))
		st.AppendChild(stanza.Elem(xml.Name{Space: "urn:xmpp:occupant-id:0", Local: "occupant-id"}, []xml.Attr{stanza.Attr("id", "occ-"+nick)}))
		return st
	}
	var ids []string
	for _, b := range []string{"one", "two", "three"} {
		id, err := ra.Append(ctx, room, msg("Alice", b))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := ra.Append(ctx, other, msg("Bob", "elsewhere")); err != nil {
		t.Fatal(err)
	}
	hist, err := ra.History(ctx, room, 2, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Fatalf("%d history messages, want 2", len(hist))
	}
	for i, h := range hist {
		if err := h.Message.ParseRaw(); err != nil {
			t.Fatal(err)
		}
		body, _ := h.Message.ChildText(xml.Name{Space: stanza.NSClient, Local: "body"})
		sid, _ := h.Message.ChildElement(xml.Name{Space: mam.NSSID, Local: "stanza-id"})
		if want := []string{"two", "three"}[i]; body != want || sid.Attr("id") != ids[i+1] || sid.Attr("by") != room.String() || !h.Message.To.Equal(jid.JID{}) {
			t.Fatalf("history %d: %q id %q by %q to %q, want %q id %q", i, body, sid.Attr("id"), sid.Attr("by"), h.Message.To, want, ids[i+1])
		}
	}
	got, err := ra.Message(ctx, room, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := got.ChildElement(xml.Name{Space: "urn:xmpp:occupant-id:0", Local: "occupant-id"}); o.Attr("id") != "occ-Alice" {
		t.Fatal("stored message without its occupant-id")
	}
	if _, err := ra.Message(ctx, other, ids[0]); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("another room's message: %v, want ErrNotFound", err)
	}
	tomb := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", From: jid.MustParse(room.String() + "/Alice")}
	tomb.AppendChild(stanza.Elem(xml.Name{Space: "urn:xmpp:message-retract:1", Local: "retracted"}, nil))
	if err := ra.Replace(ctx, room, ids[0], tomb); err != nil {
		t.Fatal(err)
	}
	if got, _ = ra.Message(ctx, room, ids[0]); got.Inner == nil {
		t.Fatal("empty tombstone")
	} else if _, ok := got.ChildText(xml.Name{Space: stanza.NSClient, Local: "body"}); ok {
		t.Fatal("the replaced message keeps its body")
	}
	bare, _ := mam.NewRoomArchive(onlyArchive{store}, mam.RoomOptions{})
	if err := bare.Replace(ctx, room, ids[1], tomb); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("replace on a store that cannot: %v, want ErrUnsupported", err)
	}

	if n, err := ra.ExpireRoom(ctx, room, time.Now().Add(time.Hour), 2); err != nil || n != 2 {
		t.Fatalf("expire: %d, %v; want 2 (the limit)", n, err)
	}
	if st, _ := store.ArchiveStats(ctx, other.String()); st.Count != 1 {
		t.Fatal("expiring one room touched another")
	}
	if err := ra.DeleteRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	if st, _ := store.ArchiveStats(ctx, room.String()); st.Count != 0 {
		t.Fatalf("%d messages after DeleteRoom", st.Count)
	}
	if _, err := mam.NewRoomArchive(nil, mam.RoomOptions{}); err == nil {
		t.Fatal("a room archive without a store")
	}
	if _, err := mam.NewRoomArchive(store, mam.RoomOptions{MaxPage: mam.MaxMaxPage + 1}); err == nil {
		t.Fatal("a page above the maximum")
	}
}

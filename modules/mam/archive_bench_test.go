package mam

import (
	"context"
	"encoding/xml"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// discardArchive is an archive that keeps nothing, so that a benchmark
// measures the module's own work.
type discardArchive struct{ n uint64 }

func (d *discardArchive) AppendArchive(ctx context.Context, user string, at time.Time, with string, data []byte) (uint64, error) {
	d.n++
	return d.n, nil
}

func (*discardArchive) QueryArchive(context.Context, string, storage.ArchiveQuery) (storage.ArchivePage, error) {
	return storage.ArchivePage{}, nil
}

func (*discardArchive) ArchiveStats(context.Context, string) (storage.ArchiveStats, error) {
	return storage.ArchiveStats{}, nil
}

func (*discardArchive) ExpireArchive(context.Context, time.Time, int) (int, error) { return 0, nil }
func (*discardArchive) ExpireUserArchive(context.Context, string, time.Time, int) (int, error) {
	return 0, nil
}
func (*discardArchive) DeleteArchive(context.Context, string) error { return nil }

// BenchmarkArchiveReceived measures the archive's part of delivering a
// message to a local account, without the store: deciding whether the
// message is archived, removing stanza IDs forged in the account's name,
// serialising it and adding the stanza ID to the copy delivered.
func BenchmarkArchiveReceived(b *testing.B) {
	ctx := context.Background()
	m, err := New(Options{}, Deps{Archive: &discardArchive{}, KV: memory.New()})
	if err != nil {
		b.Fatal(err)
	}
	alice := jid.MustParse("alice@example.org")
	bob := jid.MustParse("bob@example.org/laptop")
	msg := func(children ...xml.TokenReader) *stanza.Stanza {
		st := &stanza.Stanza{Kind: stanza.Message, Type: "chat", ID: "m1", From: bob, To: alice}
		for _, c := range children {
			st.AppendChild(c)
		}
		return st
	}
	body := stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "a message of a typical length for a chat, say sixty bytes")
	for _, bc := range []struct {
		name     string
		st       *stanza.Stanza
		archived bool
	}{
		{"Chat", msg(body,
			stanza.Elem(xml.Name{Space: "http://jabber.org/protocol/chatstates", Local: "active"}, nil),
			stanza.Elem(xml.Name{Space: "urn:xmpp:chat-markers:0", Local: "markable"}, nil),
			stanza.Elem(xml.Name{Space: NSSID, Local: "origin-id"}, []xml.Attr{stanza.Attr("id", "o1")})), true},
		{"Forged", msg(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "hi"),
			stanza.Elem(xml.Name{Space: NSSID, Local: "stanza-id"}, []xml.Attr{stanza.Attr("by", "alice@example.org"), stanza.Attr("id", "x")})), true},
		{"ChatState", msg(stanza.Elem(xml.Name{Space: "http://jabber.org/protocol/chatstates", Local: "composing"}, nil)), false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				out, err := m.archiveReceived(ctx, alice, bc.st)
				if err != nil || (out != bc.st) != bc.archived && bc.name != "Forged" {
					b.Fatalf("archived %v: %v", out != bc.st, err)
				}
			}
		})
	}
}

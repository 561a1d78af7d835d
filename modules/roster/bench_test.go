package roster

import (
	"context"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/memory"
)

// benchItem is a typical roster item: a name, one group.
func benchItem(i int) storage.RosterItem {
	return storage.RosterItem{
		JID:          fmt.Sprintf("contact%05d@example.org", i),
		Name:         fmt.Sprintf("Contact %d", i),
		Groups:       []string{"Friends"},
		Subscription: storage.SubBoth,
	}
}

// drain is a ResponseWriter that reads the result payload to its end, as
// writing it to a stream would.
type drain struct{ tokens int }

func (d *drain) Result(payload xml.TokenReader) error {
	for payload != nil {
		if _, err := payload.Token(); err != nil {
			break
		}
		d.tokens++
	}
	return nil
}

func (d *drain) Error(e mstanza.Error) error { return fmt.Errorf("error %s", e.Condition) }

// BenchmarkRosterGet measures a roster get of 1,000 items, in process:
// the handler reading the store and building the result's tokens.
func BenchmarkRosterGet(b *testing.B) {
	for _, backend := range []struct {
		name string
		open func(b *testing.B) storage.Roster
	}{
		{"memory", func(*testing.B) storage.Roster { return memory.New() }},
		{"bbolt", func(b *testing.B) storage.Roster {
			s, err := bbolt.Open(filepath.Join(b.TempDir(), "kiez.db"), bbolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
	} {
		b.Run(backend.name, func(b *testing.B) {
			store := backend.open(b)
			const user = "alice@example.org"
			for i := range 1000 {
				if _, err := store.SetRosterItem(context.Background(), user, benchItem(i)); err != nil {
					b.Fatal(err)
				}
			}
			m, err := New(Options{}, Deps{Store: store})
			if err != nil {
				b.Fatal(err)
			}
			iq := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Get, ID: "r1", From: jid.MustParse(user + "/phone")}
			iq.AppendChild(stanza.Elem(xml.Name{Space: NS, Local: "query"}, []xml.Attr{stanza.Attr("ver", "")}))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				var w drain
				if err := m.get(ctx, stanza.IQ{Stanza: iq}, &w); err != nil {
					b.Fatal(err)
				}
				if w.tokens < 1000*5 {
					b.Fatalf("%d tokens", w.tokens)
				}
			}
		})
	}
}

// BenchmarkRosterMemory reports the heap the memory store needs per
// roster item (typical items: a name and one group), as B/item: the live
// heap with 10,000 items in 100 rosters, less the live heap after those
// rosters are deleted from the same store.
func BenchmarkRosterMemory(b *testing.B) {
	const users, perUser = 100, 100
	names := make([]string, users)
	for u := range names {
		names[u] = fmt.Sprintf("user%03d@example.org", u)
	}
	ctx := context.Background()
	s := memory.New()
	var perItem float64
	for b.Loop() {
		// Every string is its own, as if parsed from a roster set.
		for _, user := range names {
			for i := range perUser {
				it := benchItem(i)
				it.Groups[0] = strings.Clone(it.Groups[0])
				if _, err := s.SetRosterItem(ctx, user, it); err != nil {
					b.Fatal(err)
				}
			}
		}
		var loaded, emptied runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&loaded)
		for _, user := range names {
			if err := s.DeleteRoster(ctx, user); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&emptied)
		perItem = (float64(loaded.HeapAlloc) - float64(emptied.HeapAlloc)) / (users * perUser)
	}
	runtime.KeepAlive(s)
	b.ReportMetric(perItem, "B/item")
}

package mam

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/bbolt"
)

// BenchmarkQuery1M measures the archive query target in process:
// the newest page of 50, and a page of 50 in the middle by RSM <before/>,
// in an archive of 1,000,000 messages on the bbolt store (with 100,000
// messages of 100 other users beside it), from parsing the query to the
// serialised results. Besides ns/op it reports the 99th percentile as
// p99-ns. The fixture takes some seconds to build.
//
//	go test -run '^$' -bench Query1M -benchtime 2000x ./modules/mam
func BenchmarkQuery1M(b *testing.B) {
	ctx := context.Background()
	store, err := bbolt.Open(filepath.Join(b.TempDir(), "kiez.db"), bbolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	m, err := New(Options{}, Deps{Archive: store, KV: store})
	if err != nil {
		b.Fatal(err)
	}
	const owner, total = "alice@example.org", 1_000_000
	start := time.Now().Add(-total * time.Millisecond)
	var mu sync.Mutex
	var ids []uint64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []uint64
			for i := w; i < total+100_000; i += 64 {
				user, peer := owner, "bob@example.org/laptop"
				if i >= total {
					user = fmt.Sprintf("u%d@example.org", i%100)
				}
				msg := fmt.Sprintf(`<message xmlns="jabber:client" type="chat" id="m%d" from="%s" to="%s"><body>message number %d, of a typical length for a chat</body></message>`, i, peer, user, i)
				id, err := store.AppendArchive(ctx, user, start.Add(time.Duration(i)*time.Millisecond), peer, []byte(msg))
				if err != nil {
					errs <- err
					return
				}
				if user == owner {
					mine = append(mine, id)
				}
			}
			mu.Lock()
			ids = append(ids, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	slices.Sort(ids)
	from := jid.MustParse(owner + "/phone")
	query := func(before string) *stanza.Stanza {
		var b xml.TokenReader = stanza.Elem(xml.Name{Space: NSRSM, Local: "before"}, nil)
		if before != "" {
			b = stanza.TextElem(xml.Name{Space: NSRSM, Local: "before"}, before)
		}
		q := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set, ID: "q", From: from}
		q.AppendChild(stanza.Elem(xml.Name{Space: NS, Local: "query"}, nil,
			stanza.Elem(xml.Name{Space: NSRSM, Local: "set"}, nil,
				stanza.TextElem(xml.Name{Space: NSRSM, Local: "max"}, "50"), b)))
		return q
	}
	for _, bc := range []struct {
		name string
		q    *stanza.Stanza
	}{
		{"Latest50", query("")},
		{"Middle50", query(EncodeID(ids[len(ids)/2]))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var buf bytes.Buffer
			results := 0
			send := func(st *stanza.Stanza) bool {
				results++
				st.WriteTo(&buf)
				return true
			}
			took := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				buf.Reset()
				results = 0
				w := &recorder{buf: &buf}
				t0 := time.Now()
				if err := m.runQuery(ctx, stanza.IQ{Stanza: bc.q}, w, send); err != nil || !w.result || results != 50 {
					b.Fatalf("query: %v, result %v, %d messages", err, w.result, results)
				}
				took = append(took, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}

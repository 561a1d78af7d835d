package bbolt

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkApplyWAL applies rounds of applyEntries records spread over 100
// users, as the load benchmark's 50 pairs produce them (each message in
// the sender's archive with the bare JID of the other party, and in the
// recipient's with a full JID), and reports the cost per record.
func BenchmarkApplyWAL(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "kiez.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const users = 100
	data := make([]byte, 200)
	ids := make([]uint64, users)
	at := uint64(time.Now().UnixMicro())
	round := func() []walEntry {
		entries := make([]walEntry, 0, applyEntries)
		for i := range applyEntries {
			u := i % users
			with := fmt.Sprintf("u%d@bench.test", u^1)
			if u%2 == 1 {
				with += "/res"
			}
			ids[u] = max(ids[u]+1, at+uint64(i))
			entries = append(entries, walEntry{kind: walAppend, user: fmt.Sprintf("u%d@bench.test", u), id: ids[u], with: with, rec: encodeArchiveMsg(with, data)})
		}
		return entries
	}
	// Some history first, so that the trees have a realistic depth.
	for range 20 {
		entries := round()
		if err := s.db.Update(func(tx *bolt.Tx) error { return applyWAL(tx, entries) }); err != nil {
			b.Fatal(err)
		}
	}
	st := s.db.Stats()
	w0 := st.TxStats.GetWrite()
	b.ResetTimer()
	var n int
	for b.Loop() {
		b.StopTimer()
		entries := round()
		b.StartTimer()
		if err := s.db.Update(func(tx *bolt.Tx) error { return applyWAL(tx, entries) }); err != nil {
			b.Fatal(err)
		}
		n += len(entries)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
	st = s.db.Stats()
	b.ReportMetric(float64(st.TxStats.GetWrite()-w0)/float64(b.N), "pages/round")
}

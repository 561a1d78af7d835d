package memory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

func ExampleStore_QueryArchive() {
	ctx := context.Background()
	s := memory.New()

	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i, with := range []string{"romeo@example.net/balcony", "nurse@example.org", "romeo@example.net/garden"} {
		// Two messages in the same microsecond get increasing IDs.
		if _, err := s.AppendArchive(ctx, "juliet@example.org", at.Add(time.Duration(i/2)*time.Minute), with, []byte("<message/>")); err != nil {
			fmt.Println(err)
			return
		}
	}

	// The newest message with Romeo, whatever his resource: page back with
	// Reverse and Before set to the first ID of the page.
	p, err := s.QueryArchive(ctx, "juliet@example.org", storage.ArchiveQuery{With: "romeo@example.net", Max: 1, Reverse: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range p.Messages {
		fmt.Println(m.Time().Format(time.TimeOnly), m.With, p.Complete)
	}
	p, err = s.QueryArchive(ctx, "juliet@example.org", storage.ArchiveQuery{With: "romeo@example.net", Max: 1, Reverse: true, Before: p.Messages[0].ID})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range p.Messages {
		fmt.Println(m.Time().Format(time.TimeOnly), m.With, p.Complete)
	}

	st, err := s.ArchiveStats(ctx, "juliet@example.org")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(st.Count, st.Last.ID-st.First.ID)
	// Output:
	// 12:01:00 romeo@example.net/garden false
	// 12:00:00 romeo@example.net/balcony true
	// 3 60000000
}

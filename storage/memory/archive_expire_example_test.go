package memory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kiez-im/kiez/storage/memory"
)

// ExpireUserArchive applies a retention to one archive only, such as a
// user's own, shorter than the server's.
func ExampleStore_ExpireUserArchive() {
	ctx := context.Background()
	s := memory.New()
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, user := range []string{"juliet@example.org", "romeo@example.net"} {
		for day := range 3 {
			if _, err := s.AppendArchive(ctx, user, at.Add(time.Duration(day)*24*time.Hour), "nurse@example.org", []byte("<message/>")); err != nil {
				fmt.Println(err)
				return
			}
		}
	}
	// Juliet keeps one day: at noon on day 2, what is older than day 1's
	// noon goes (day 1's noon itself stays).
	n, err := s.ExpireUserArchive(ctx, "juliet@example.org", at.Add(2*24*time.Hour).Add(-24*time.Hour), 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	juliet, _ := s.ArchiveStats(ctx, "juliet@example.org")
	romeo, _ := s.ArchiveStats(ctx, "romeo@example.net")
	fmt.Println(n, juliet.Count, juliet.First.Time().Format(time.DateOnly), romeo.Count)
	// Output: 1 2 2025-06-02 3
}

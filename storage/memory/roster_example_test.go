package memory_test

import (
	"context"
	"fmt"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// A roster client that cached a version asks what changed since.
func ExampleStore_RosterChangesSince() {
	ctx := context.Background()
	s := memory.New()
	const juliet = "juliet@example.org"

	cached, _ := s.SetRosterItem(ctx, juliet, storage.RosterItem{JID: "romeo@example.net", Name: "Romeo"})
	s.SetRosterItem(ctx, juliet, storage.RosterItem{JID: "nurse@example.org", Groups: []string{"Servants"}})
	s.DeleteRosterItem(ctx, juliet, "romeo@example.net")

	changes, _, ok, err := s.RosterChangesSince(ctx, juliet, cached)
	if err != nil || !ok {
		fmt.Println("fetch the whole roster", err)
		return
	}
	for _, c := range changes {
		fmt.Println(c.Item.JID, c.Item.Subscription)
	}
	// Output:
	// nurse@example.org none
	// romeo@example.net remove
}

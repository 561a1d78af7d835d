package bbolt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
)

func ExampleStore_PushOffline() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "kiez-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	s, err := bbolt.Open(filepath.Join(dir, "kiez.db"), bbolt.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// At most two messages wait for Juliet.
	for _, body := range []string{"one", "two", "three"} {
		msg := storage.OfflineMessage{Stored: time.Now(), Data: []byte("<message><body>" + body + "</body></message>")}
		if err := s.PushOffline(ctx, "juliet@example.org", msg, 2); errors.Is(err, storage.ErrFull) {
			fmt.Println("full:", body)
		} else if err != nil {
			fmt.Println(err)
			return
		}
	}

	// Juliet comes online: send the queue, then delete what was sent.
	msgs, err := s.OfflineMessages(ctx, "juliet@example.org")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range msgs {
		fmt.Printf("%d %s\n", m.Seq, m.Data)
	}
	if err := s.DeleteOffline(ctx, "juliet@example.org", msgs[len(msgs)-1].Seq); err != nil {
		fmt.Println(err)
		return
	}
	n, err := s.CountOffline(ctx, "juliet@example.org")
	fmt.Println(n, err)
	// Output:
	// full: three
	// 1 <message><body>one</body></message>
	// 2 <message><body>two</body></message>
	// 0 <nil>
}

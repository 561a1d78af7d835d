package mam_test

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/modules/muc"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// The room archive is the muc module's Deps.Archive: rooms that enable
// archiving keep their messages in the store under the room's JID, answer
// XEP-0313 queries on the room, and send join history from it. The muc
// module's ArchiveRetention bounds how long rooms keep them.
func ExampleNewRoomArchive() {
	store := memory.New()
	rooms, err := mam.NewRoomArchive(store, mam.RoomOptions{MaxPage: 100, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := muc.New(muc.Options{ArchiveRetention: 90 * 24 * time.Hour},
		muc.Deps{Store: store, Secrets: store, KV: store, Archive: rooms})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{Domains: []string{"example.org"}, Accounts: store, Modules: []server.Module{m}}
	fmt.Println(cfg.Modules[0].Name())
	// Output: muc
}

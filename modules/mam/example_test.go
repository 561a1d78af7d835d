package mam_test

import (
	"fmt"
	"time"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// An integrator passes the archive and key-value stores in Deps (here the
// in-memory store, which also keeps the accounts; Deps.Roster, for the
// "roster" archiving mode, is optional) and adds the module to
// Config.Modules.
func Example() {
	store := memory.New()
	archive, err := mam.New(mam.Options{Retention: 90 * 24 * time.Hour}, mam.Deps{Archive: store, KV: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{
		Domains:  []string{"example.org"},
		Accounts: store,
		Modules:  []server.Module{archive},
	}
	fmt.Println(cfg.Modules[0].Name())
	// Output: mam
}

// The "Delete my message archive" command is served by the adhoc module.
func ExampleModule_DeleteArchiveCommand() {
	store := memory.New()
	archive, _ := mam.New(mam.Options{}, mam.Deps{Archive: store, KV: store})
	cmd := archive.DeleteArchiveCommand()
	commands, err := adhoc.New(adhoc.Options{}, adhoc.Deps{Commands: []adhoc.Command{cmd}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = server.Config{Accounts: store, Modules: []server.Module{archive, commands}}
	fmt.Println(cmd.Node, "-", cmd.Name)
	// Output: urn:kiez:mam:delete - Delete my message archive
}

// The "Set how long my messages are kept" command needs Deps.Service, where
// the module lists the users who chose a retention shorter than the
// server's.
func ExampleModule_RetentionCommand() {
	store := memory.New()
	archive, _ := mam.New(mam.Options{Retention: 30 * 24 * time.Hour}, mam.Deps{Archive: store, KV: store, Service: store})
	cmd := archive.RetentionCommand()
	commands, err := adhoc.New(adhoc.Options{}, adhoc.Deps{Commands: []adhoc.Command{archive.DeleteArchiveCommand(), cmd}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = server.Config{Accounts: store, Modules: []server.Module{archive, commands}}
	fmt.Println(cmd.Node, "-", cmd.Name)
	// Output: urn:kiez:mam:retention - Set how long my messages are kept
}

// Archive IDs travel as decimal strings.
func ExampleEncodeID() {
	s := mam.EncodeID(1732540800000000)
	id, ok := mam.DecodeID(s)
	fmt.Println(s, id, ok)
	// Output: 1732540800000000 1732540800000000 true
}

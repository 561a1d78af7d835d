// Package stock assembles Kiez's stock modules, the set kiezd serves:
// rosters and presence, blocking, vCards, private storage, offline
// messages, the message archive and its ad-hoc command, carbons, ping,
// time, version and contact addresses. Embedders call Modules instead of
// repeating kiezd's wiring: it builds every module on one store, hands
// each the modules it builds on (presence the roster and blocking, the
// archive the roster, ad-hoc the archive's command) and lists them in an
// order that works. Every module is on unless Options.Without names it.
//
// The order of the list matters little: blocking is a filter on every
// stanza's path, the archive's and carbons' routes carry their priorities,
// and the roster tells presence of removed items itself. What is left is
// the order of Init, Close and the undelivered handlers, and only offline
// storage is one.
package stock

import (
	"fmt"
	"slices"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/modules/blocking"
	"github.com/kiez-im/kiez/modules/carbons"
	"github.com/kiez-im/kiez/modules/contact"
	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/modules/offline"
	"github.com/kiez-im/kiez/modules/ping"
	"github.com/kiez-im/kiez/modules/presence"
	"github.com/kiez-im/kiez/modules/private"
	"github.com/kiez-im/kiez/modules/roster"
	kieztime "github.com/kiez-im/kiez/modules/time"
	"github.com/kiez-im/kiez/modules/vcard"
	"github.com/kiez-im/kiez/modules/version"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage"
)

// Names of the stock modules, for Options.Without. Presence goes with
// the roster: "roster" leaves out both. "archive" leaves out the archive
// and its ad-hoc command.
const (
	Roster   = "roster"
	Blocking = "blocking"
	VCard    = "vcard"
	Private  = "private"
	Offline  = "offline"
	Archive  = "archive"
	Carbons  = "carbons"
	Ping     = "ping"
	Time     = "time"
	Version  = "version"
	Contact  = "contact"
)

// Names lists every name Options.Without takes.
var Names = []string{Roster, Blocking, VCard, Private, Offline, Archive, Carbons, Ping, Time, Version, Contact}

// Store is what the stock modules keep their data in: storage/bbolt's and
// storage/memory's Store implement it.
type Store interface {
	storage.KV
	storage.Roster
	storage.Offline
	storage.Archive
}

// Options configure the stock modules; the zero value is every module
// with its defaults (contact addresses only when some are given).
type Options struct {
	// Without names modules to leave out (see the name constants).
	Without []string

	Roster   roster.Options
	Blocking blocking.Options
	VCard    vcard.Options
	Private  private.Options
	Offline  offline.Options
	// Archive configures the archive; its Roster is set by Modules.
	Archive mam.Options
	Adhoc   adhoc.Options
	Time    kieztime.Options
	Version version.Options
	// Contact's addresses are published when there are some.
	Contact contact.Options
}

// Modules builds the stock modules on store. An option a module refuses
// is an error naming the module, as its constructor words it.
func Modules(store Store, opts Options) ([]server.Module, error) {
	for _, w := range opts.Without {
		if !slices.Contains(Names, w) {
			return nil, fmt.Errorf("stock: no module %q (modules: %v)", w, Names)
		}
	}
	on := func(name string) bool { return !slices.Contains(opts.Without, name) }
	var mods []server.Module
	add := func(m server.Module, err error) error {
		if err != nil {
			return err
		}
		mods = append(mods, m)
		return nil
	}

	var blk *blocking.Module
	if on(Blocking) {
		var err error
		if blk, err = blocking.New(opts.Blocking, store); err != nil {
			return nil, err
		}
		mods = append(mods, blk)
	}
	var ros *roster.Module
	if on(Roster) {
		var err error
		if ros, err = roster.New(opts.Roster, store); err != nil {
			return nil, err
		}
		deps := presence.Deps{Roster: ros}
		if blk != nil {
			deps.Blocking = blk
		}
		if err := add(presence.New(deps)); err != nil {
			return nil, err
		}
		mods = append(mods, ros)
	}
	var commands []adhoc.Command
	if on(Archive) {
		ao := opts.Archive
		if ros != nil {
			ao.Roster = ros
		}
		m, err := mam.New(store, store, ao)
		if err != nil {
			return nil, err
		}
		mods = append(mods, m)
		commands = append(commands, m.DeleteArchiveCommand())
	}
	if on(Carbons) {
		mods = append(mods, carbons.New())
	}
	if on(Offline) {
		if err := add(offline.New(store, opts.Offline)); err != nil {
			return nil, err
		}
	}
	if len(commands) > 0 {
		if err := add(adhoc.New(opts.Adhoc, commands...)); err != nil {
			return nil, err
		}
	}
	if on(VCard) {
		if err := add(vcard.New(opts.VCard, store)); err != nil {
			return nil, err
		}
	}
	if on(Private) {
		if err := add(private.New(opts.Private, store)); err != nil {
			return nil, err
		}
	}
	if on(Ping) {
		mods = append(mods, ping.New())
	}
	if on(Time) {
		mods = append(mods, kieztime.New(opts.Time))
	}
	if on(Version) {
		mods = append(mods, version.New(opts.Version))
	}
	if on(Contact) && len(opts.Contact.Addresses) > 0 {
		if err := add(contact.New(opts.Contact)); err != nil {
			return nil, err
		}
	}
	return mods, nil
}

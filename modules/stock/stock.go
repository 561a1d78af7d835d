// Package stock assembles Kiez's stock modules, the set kiezd serves:
// rosters and presence, blocking, vCards, private storage, offline
// messages, the message archive and its ad-hoc command, carbons, ping,
// time, version, contact addresses, entity capabilities, personal
// eventing (PEP), HTTP file upload, group chat (MUC), the refusal of
// strangers' messages, push notifications, and, when configured, external
// services (STUN/TURN) and a SOCKS5 file transfer proxy. Embedders call Modules instead of repeating kiezd's wiring: it
// builds every module on one store, hands each the modules it builds on in
// its Deps (presence and strangers the roster, presence blocking too, the
// archive the roster, ad-hoc the archive's and strangers' commands, PEP the roster and caps, vCards
// PEP's avatars and private storage PEP's bookmarks, group chat the store's
// secrets and key-value data and, with the archive, a room archive) and lists them in an
// order that works. Every module is on unless Options.Without names it.
//
// The order of the list matters little: blocking and strangers are
// filters on every stanza's path with their priorities, the archive's and
// carbons' routes carry theirs, and the roster tells presence of removed items itself. What is left is
// the order of Init, Close and the undelivered handlers, and only offline
// storage is one.
package stock

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/modules/blocking"
	"github.com/kiez-im/kiez/modules/caps"
	"github.com/kiez-im/kiez/modules/carbons"
	"github.com/kiez-im/kiez/modules/contact"
	"github.com/kiez-im/kiez/modules/extdisco"
	"github.com/kiez-im/kiez/modules/invite"
	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/modules/muc"
	"github.com/kiez-im/kiez/modules/offline"
	"github.com/kiez-im/kiez/modules/pep"
	"github.com/kiez-im/kiez/modules/ping"
	"github.com/kiez-im/kiez/modules/presence"
	"github.com/kiez-im/kiez/modules/private"
	"github.com/kiez-im/kiez/modules/proxy65"
	"github.com/kiez-im/kiez/modules/push"
	"github.com/kiez-im/kiez/modules/register"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/modules/strangers"
	kieztime "github.com/kiez-im/kiez/modules/time"
	"github.com/kiez-im/kiez/modules/upload"
	"github.com/kiez-im/kiez/modules/vcard"
	"github.com/kiez-im/kiez/modules/version"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/blob"
)

// Names of the stock modules, for Options.Without. Presence goes with
// the roster: "roster" leaves out both. "archive" leaves out the archive,
// its ad-hoc command and the group chat rooms' archive.
const (
	Roster    = "roster"
	Blocking  = "blocking"
	VCard     = "vcard"
	Private   = "private"
	Offline   = "offline"
	Archive   = "archive"
	Carbons   = "carbons"
	Ping      = "ping"
	Time      = "time"
	Version   = "version"
	Contact   = "contact"
	Caps      = "caps"
	PEP       = "pep"
	Upload    = "upload"
	Register  = "register"
	Strangers = "strangers"
	MUC       = "muc"
	Push      = "push"
	// ExternalServices runs when Options.ExternalServices lists servers.
	ExternalServices = "extdisco"
	// Proxy65 runs when Options.Proxy65.Listen is set.
	Proxy65 = "proxy65"
)

// Names lists every name Options.Without takes.
var Names = []string{Roster, Blocking, VCard, Private, Offline, Archive, Carbons, Ping, Time, Version, Contact, Caps, PEP, Upload, Register, Strangers, MUC, Push, ExternalServices, Proxy65}

// Store is what the stock modules keep their data in: storage/bbolt's and
// storage/memory's Store implement it.
type Store interface {
	storage.KV
	storage.Roster
	storage.Offline
	storage.Archive
	storage.PEP
	storage.Uploads
	storage.Secrets
	storage.ServiceData
	storage.MUC
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
	// Archive configures the archive; Modules gives it the roster.
	Archive mam.Options
	Adhoc   adhoc.Options
	Time    kieztime.Options
	Version version.Options
	// Contact's addresses are published when there are some.
	Contact contact.Options
	Caps    caps.Options
	// PEP runs with the roster (it is left out with it) and gets caps'
	// notification filter. With it, vCard PHOTOs are its avatars
	// (XEP-0398) and private storage's bookmarks its XEP-0402 bookmarks.
	PEP pep.Options
	// Upload runs when Files is set, where it keeps the uploaded files'
	// bytes (metadata goes to the store); its ad-hoc commands join the
	// archive's. Its URLs come from server.Config.HTTPBaseURL. With
	// Files set and "upload" in Without, upload.Leftovers still deletes
	// the files of deleted accounts and expires the files kept.
	Upload upload.Options
	Files  blob.Store
	// Register (XEP-0077 in-band registration) runs when Accounts is
	// set: the server, once server.New has returned it. With the invite
	// policy (the default) it redeems the invite module's tokens; the
	// invite module, with the roster, runs whenever Register does, its
	// "Invite a friend" command beside the others. RateLimit, if set,
	// limits registrations per client address (ipfilter's
	// AllowRegistration).
	Register register.Options
	Invite   invite.Options
	// Strangers runs with the roster (it is left out with it); its
	// "Refuse messages from strangers" command joins the others.
	Strangers strangers.Options
	Accounts  func() register.Accounts
	RateLimit func(netip.Addr) bool
	// MUC configures the group chat service (XEP-0045) at
	// conference.<domain>; Modules gives it the store for its rooms,
	// the occupant-id secret and room avatars, and, with the archive on,
	// a room archive (mam.RoomArchive) in the store, so that rooms may
	// enable archiving. The users' archive retention (Archive.Retention)
	// then applies to the rooms' archives too.
	MUC muc.Options
	// Push configures XEP-0357 push notifications; Modules gives it the
	// store for the registrations.
	Push push.Options
	// ExternalServices (XEP-0215 STUN and TURN servers) runs when it
	// lists servers.
	ExternalServices extdisco.Options
	// Proxy65 (the XEP-0065 SOCKS5 proxy at proxy.<domain>) runs when
	// its Listen address is set.
	Proxy65 proxy65.Options
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
	var firstErr error
	// add lists m, or keeps err: Modules returns the first error.
	add := func(m server.Module, err error) {
		switch {
		case firstErr != nil:
		case err != nil:
			firstErr = err
		default:
			mods = append(mods, m)
		}
	}

	// The modules others build on are kept by type, and fail at once.
	var blk *blocking.Module
	if on(Blocking) {
		var err error
		if blk, err = blocking.New(opts.Blocking, blocking.Deps{Store: store}); err != nil {
			return nil, err
		}
		mods = append(mods, blk)
	}
	var ros *roster.Module
	if on(Roster) {
		var err error
		if ros, err = roster.New(opts.Roster, roster.Deps{Store: store}); err != nil {
			return nil, err
		}
		deps := presence.Deps{Roster: ros}
		if blk != nil {
			deps.Blocking = blk
		}
		add(presence.New(presence.Options{}, deps))
		mods = append(mods, ros)
	}
	var commands []adhoc.Command
	if on(Strangers) && ros != nil {
		m, err := strangers.New(opts.Strangers, strangers.Deps{Store: store, Roster: ros})
		if err != nil {
			return nil, err
		}
		mods = append(mods, m)
		commands = append(commands, m.Commands()...)
	}
	if on(Archive) {
		deps := mam.Deps{Archive: store, KV: store, Service: store}
		if ros != nil {
			deps.Roster = ros
		}
		m, err := mam.New(opts.Archive, deps)
		if err != nil {
			return nil, err
		}
		mods = append(mods, m)
		commands = append(commands, m.DeleteArchiveCommand(), m.RetentionCommand())
	}
	if on(Carbons) {
		add(carbons.New(carbons.Options{}, carbons.Deps{}))
	}
	if on(Offline) {
		add(offline.New(opts.Offline, offline.Deps{Store: store}))
	}
	switch {
	case opts.Files == nil:
	case on(Upload):
		m, err := upload.New(opts.Upload, upload.Deps{Store: store, Files: opts.Files, Secrets: store, Days: store})
		if err != nil {
			return nil, err
		}
		mods = append(mods, m)
		commands = append(commands, m.Commands()...)
	default:
		// Switched off: the files stored before still go with their
		// accounts and expire.
		add(upload.NewLeftovers(upload.Deps{Store: store, Files: opts.Files, Days: store}))
	}
	if on(Register) && opts.Accounts != nil {
		invDeps := invite.Deps{Store: store}
		if ros != nil {
			invDeps.Roster = ros
		}
		inv, err := invite.New(opts.Invite, invDeps)
		if err != nil {
			return nil, err
		}
		mods = append(mods, inv)
		commands = append(commands, inv.Commands()...)
		add(register.New(opts.Register, register.Deps{Accounts: opts.Accounts, Invites: inv, RateLimit: opts.RateLimit}))
	}
	if len(commands) > 0 {
		add(adhoc.New(opts.Adhoc, adhoc.Deps{Commands: commands}))
	}
	// PEP is built before the vCard and private storage modules, which
	// take its converters, and listed after caps.
	var cp *caps.Module
	if on(Caps) {
		var err error
		if cp, err = caps.New(opts.Caps, caps.Deps{}); err != nil {
			return nil, err
		}
	}
	var pp *pep.Module
	if on(PEP) && ros != nil {
		deps := pep.Deps{Store: store, Roster: ros}
		if cp != nil {
			deps.Caps = cp
		}
		var err error
		if pp, err = pep.New(opts.PEP, deps); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if on(VCard) {
		deps := vcard.Deps{Store: store}
		if pp != nil {
			deps.Avatar = pp.Avatars()
		}
		add(vcard.New(opts.VCard, deps))
	}
	if on(Private) {
		deps := private.Deps{Store: store}
		if pp != nil {
			deps.Bookmarks = pp.Bookmarks()
		}
		add(private.New(opts.Private, deps))
	}
	if on(Ping) {
		add(ping.New(ping.Options{}, ping.Deps{}))
	}
	if on(Time) {
		add(kieztime.New(opts.Time, kieztime.Deps{}))
	}
	if on(Version) {
		add(version.New(opts.Version, version.Deps{}))
	}
	if cp != nil {
		mods = append(mods, cp)
	}
	if pp != nil {
		mods = append(mods, pp)
	}
	if on(MUC) {
		deps := muc.Deps{Store: store, Secrets: store, KV: store}
		if on(Archive) {
			// The rooms' archive (XEP-0313 on room JIDs) shares the
			// store with the users' archives.
			ra, err := mam.NewRoomArchive(store, mam.RoomOptions{MaxPage: opts.Archive.MaxPage})
			if err != nil {
				return nil, err
			}
			deps.Archive = ra
		}
		add(muc.New(opts.MUC, deps))
	}
	if on(Push) {
		deps := push.Deps{Store: store}
		if ros != nil {
			// Requests presence answers by itself are not pushed for.
			deps.Roster = store
		}
		add(push.New(opts.Push, deps))
	}
	if on(ExternalServices) && len(opts.ExternalServices.Services) > 0 {
		add(extdisco.New(opts.ExternalServices, extdisco.Deps{}))
	}
	if on(Proxy65) && opts.Proxy65.Listen != "" {
		add(proxy65.New(opts.Proxy65, proxy65.Deps{}))
	}
	if on(Contact) && len(opts.Contact.Addresses) > 0 {
		add(contact.New(opts.Contact, contact.Deps{}))
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return mods, nil
}

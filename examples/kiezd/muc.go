package main

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/modules/muc"
)

// mucConfig is the [muc] table: the group chat service (XEP-0045,
// modules/muc) at <subdomain>.<domain> for every domain.
type mucConfig struct {
	Enabled         bool     `toml:"enabled"`
	Subdomain       string   `toml:"subdomain"`
	Name            string   `toml:"name"`
	Creation        string   `toml:"creation"`
	Admins          []string `toml:"admins"`
	Orphans         string   `toml:"orphans"`
	MaxRoomsPerUser count    `toml:"max_rooms_per_user"`
	MaxOccupants    count    `toml:"max_occupants"`
	MaxNickLength   count    `toml:"max_nick_length"`
	MaxHistory      count    `toml:"max_history"`
	DefaultHistory  int      `toml:"default_history"`
	MessageRate     rate     `toml:"message_rate"`
	MessageBurst    count    `toml:"message_burst"`
	MaxAvatarSize   byteSize `toml:"max_avatar_size"`
	// ArchiveByDefault makes new rooms archive; ArchiveRetention bounds
	// the retention of every room's archive.
	ArchiveByDefault bool     `toml:"archive_by_default"`
	ArchiveRetention duration `toml:"archive_retention"`
}

// Who may create rooms and what becomes of orphaned rooms, as the [muc]
// table words them.
const (
	mucCreateLocal  = "local"
	mucCreateAnyone = "anyone"
	mucCreateAdmins = "admins"
	mucOrphansAdmin = "admin"
	mucOrphansKill  = "destroy"
)

// defaultMUC returns the [muc] table's defaults: the module's own.
func defaultMUC() mucConfig {
	return mucConfig{
		Enabled: true, Subdomain: muc.DefaultSubdomain, Name: muc.DefaultName,
		Creation: mucCreateLocal, Admins: []string{}, Orphans: mucOrphansAdmin,
		MaxRoomsPerUser: muc.DefaultMaxRoomsPerUser, MaxOccupants: muc.DefaultMaxOccupants,
		MaxNickLength: muc.DefaultMaxNickLength, MaxHistory: muc.DefaultMaxHistory,
		DefaultHistory: muc.DefaultHistory, MessageRate: rate(muc.DefaultMessageRate),
		MessageBurst: muc.DefaultMessageBurst, MaxAvatarSize: muc.DefaultMaxAvatarSize,
		ArchiveByDefault: true, ArchiveRetention: duration(muc.DefaultArchiveRetention),
	}
}

// dnsLabel is one label of a DNS name, as a service's sub-domain is.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// mucOptions converts the [muc] table to the module's options, with an
// error per key that is wrong (bad, at the key the message starts with).
func (c *config) mucOptions(bad func(format string, args ...any)) muc.Options {
	m := c.MUC
	opts := muc.Options{
		Subdomain: m.Subdomain, Name: m.Name,
		MaxRoomsPerUser: int(m.MaxRoomsPerUser), MaxOccupants: int(m.MaxOccupants),
		MaxNickLength: int(m.MaxNickLength), MaxHistory: int(m.MaxHistory),
		DefaultHistory: m.DefaultHistory, MessageRate: float64(m.MessageRate),
		MessageBurst: int(m.MessageBurst), MaxAvatarSize: int(m.MaxAvatarSize),
		ArchiveRetention: time.Duration(m.ArchiveRetention), ArchiveByDefault: &m.ArchiveByDefault,
	}
	switch r := time.Duration(m.ArchiveRetention); {
	case r < 24*time.Hour:
		bad("muc.archive_retention: %q is shorter than a day", formatDuration(r))
	case r > mam.MaxRetention:
		bad("muc.archive_retention: %q is longer than 10 years", formatDuration(r))
	}
	if !dnsLabel.MatchString(m.Subdomain) {
		bad("muc.subdomain: %q is not one DNS label such as \"conference\" (lower case letters, digits and -)", m.Subdomain)
	}
	if m.Subdomain == "upload" && c.Modules.Upload {
		bad("muc.subdomain: \"upload\" is file upload's (modules.upload); pick another such as \"conference\"")
	}
	if m.Name == "" {
		bad("muc.name: must not be empty")
	}
	for _, a := range m.Admins {
		j, err := jid.Parse(a)
		if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
			bad("muc.admins: %q is not an account address such as \"admin@example.org\"", a)
			continue
		}
		opts.Admins = append(opts.Admins, j)
	}
	switch m.Creation {
	case mucCreateLocal:
		opts.Creation = muc.CreateLocal
	case mucCreateAnyone:
		opts.Creation = muc.CreateAnyone
	case mucCreateAdmins:
		opts.Creation = muc.CreateAdmins
		if len(m.Admins) == 0 {
			bad("muc.creation: \"admins\" lets only muc.admins create rooms, but muc.admins is empty")
		}
	default:
		bad("muc.creation: %q is not \"local\", \"anyone\" or \"admins\"", m.Creation)
	}
	switch m.Orphans {
	case mucOrphansAdmin:
		opts.Orphans = muc.HandToAdmin
	case mucOrphansKill:
		opts.Orphans = muc.DestroyOrphans
	default:
		bad("muc.orphans: %q is not \"admin\" or \"destroy\"", m.Orphans)
	}
	switch {
	case m.DefaultHistory < 0:
		bad("muc.default_history: %d is negative; 0 means no history", m.DefaultHistory)
	case m.DefaultHistory > int(m.MaxHistory):
		bad("muc.default_history: %d is more than muc.max_history (%d)", m.DefaultHistory, m.MaxHistory)
	case m.DefaultHistory == 0:
		opts.DefaultHistory = -1 // the module's "none"
	}
	if m.MessageRate == 0 {
		opts.MessageRate = -1 // the module's "no limit"
	}
	if int(m.MaxAvatarSize) > int(c.Limits.MaxStanzaSize) {
		bad("muc.max_avatar_size: %d bytes do not fit in a stanza of limits.max_stanza_size (%d bytes)", m.MaxAvatarSize, c.Limits.MaxStanzaSize)
	}
	for _, d := range c.Domains {
		if slices.Contains(c.Domains, m.Subdomain+"."+d) {
			bad("muc.subdomain: %s is one of domains, and cannot also be %s's group chat service", m.Subdomain+"."+d, d)
		}
	}
	return opts
}

// rate is a number of events per second, 0 or more: an integer or a
// decimal ("0.5").
type rate float64

func (r *rate) UnmarshalTOML(v any) error {
	var f float64
	switch v := v.(type) {
	case int64:
		f = float64(v)
	case float64:
		f = v
	default:
		return fmt.Errorf("rates are numbers per second such as 1 or 0.5, not %v", v)
	}
	if f < 0 || f > 1e6 || f != f {
		return fmt.Errorf("%v: the rate must be 0 (no limit) or a positive number of at most a million per second", v)
	}
	*r = rate(f)
	return nil
}

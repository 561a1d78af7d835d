package muc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza/form"
)

// Namespaces of the room configuration and information forms.
const (
	nsRoomConfig = "http://jabber.org/protocol/muc#roomconfig"
	nsRoomInfo   = "http://jabber.org/protocol/muc#roominfo"
	nsRequest    = "http://jabber.org/protocol/muc#request"
)

// Whois values of muc#roomconfig_whois.
const (
	whoisModerators = "moderators"
	whoisAnyone     = "anyone"
)

// Roles (XEP-0045 §5.1).
const (
	roleModerator   = "moderator"
	roleParticipant = "participant"
	roleVisitor     = "visitor"
	roleNone        = "none"
)

// roomConfig is a room's configuration (muc#roomconfig) as kept in memory
// and, JSON-encoded, in storage.MUCRoom.Config, with the room's subject
// and avatar hash that outlive a restart with it.
type roomConfig struct {
	Name          string   `json:"name,omitempty"`
	Desc          string   `json:"desc,omitempty"`
	Lang          string   `json:"lang,omitempty"`
	Persistent    bool     `json:"persistent,omitempty"`
	Public        bool     `json:"public,omitempty"`
	MembersOnly   bool     `json:"membersonly,omitempty"`
	Moderated     bool     `json:"moderated,omitempty"`
	Password      string   `json:"password,omitempty"` // empty: not password-protected
	Whois         string   `json:"whois,omitempty"`
	MaxUsers      int      `json:"maxusers,omitempty"` // 0: the server's maximum
	AllowInvites  bool     `json:"allowinvites,omitempty"`
	ChangeSubject bool     `json:"changesubject,omitempty"`
	AllowPM       string   `json:"allowpm,omitempty"` // anyone, participants, moderators, none
	Archiving     bool     `json:"archiving,omitempty"`
	Retention     int      `json:"retention,omitempty"` // days archived; 0: the server's bound
	History       int      `json:"history"`             // history messages sent on join
	Broadcast     []string `json:"broadcast,omitempty"`
	ContactJIDs   []string `json:"contacts,omitempty"`

	Subject     string `json:"subject,omitempty"`
	SubjectNick string `json:"subjectnick,omitempty"`
	AvatarHash  string `json:"avatarhash,omitempty"`
	AvatarType  string `json:"avatartype,omitempty"`
	Avatar      []byte `json:"avatar,omitempty"` // only without a KV store
}

// defaultConfig is a new room's configuration.
func (m *Module) defaultConfig() roomConfig {
	return roomConfig{
		Public:    true,
		Whois:     whoisModerators,
		AllowPM:   "anyone",
		History:   m.opts.DefaultHistory,
		Broadcast: []string{roleModerator, roleParticipant, roleVisitor},
		Archiving: m.archive != nil && (m.opts.ArchiveByDefault == nil || *m.opts.ArchiveByDefault),
	}
}

func (c *roomConfig) encode() ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("muc: encode room config: %w", err)
	}
	return b, nil
}

func decodeConfig(b []byte) (roomConfig, error) {
	var c roomConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("muc: decode room config: %w", err)
	}
	if c.Whois != whoisAnyone {
		c.Whois = whoisModerators
	}
	if c.AllowPM == "" {
		c.AllowPM = "anyone"
	}
	return c, nil
}

// broadcasts reports whether the presence of occupants of role is sent to
// the other occupants.
func (c *roomConfig) broadcasts(role string) bool {
	for _, r := range c.Broadcast {
		if r == role {
			return true
		}
	}
	return false
}

// configForm is the muc#roomconfig form showing c; admins and owners are
// the current lists.
func (m *Module) configForm(c *roomConfig, admins, owners []string) *form.Form {
	b := func(v bool) []string {
		if v {
			return []string{"1"}
		}
		return []string{"0"}
	}
	one := func(s string) []string { return []string{s} }
	f := &form.Form{
		Type:  form.TypeForm,
		Title: "Room configuration",
		Fields: []form.Field{
			form.FormTypeField(nsRoomConfig),
			{Var: "muc#roomconfig_roomname", Type: form.TextSingle, Label: "Name", Values: one(c.Name)},
			{Var: "muc#roomconfig_roomdesc", Type: form.TextSingle, Label: "Description", Values: one(c.Desc)},
			{Var: "muc#roomconfig_lang", Type: form.TextSingle, Label: "Language", Values: one(c.Lang)},
			{Var: "muc#roomconfig_persistentroom", Type: form.Boolean, Label: "Persistent (kept when empty)", Values: b(c.Persistent)},
			{Var: "muc#roomconfig_publicroom", Type: form.Boolean, Label: "Listed in the room directory", Values: b(c.Public)},
			{Var: "muc#roomconfig_membersonly", Type: form.Boolean, Label: "Members only", Values: b(c.MembersOnly)},
			{Var: "muc#roomconfig_moderatedroom", Type: form.Boolean, Label: "Moderated (only participants may speak)", Values: b(c.Moderated)},
			{Var: "muc#roomconfig_passwordprotectedroom", Type: form.Boolean, Label: "Password protected", Values: b(c.Password != "")},
			{Var: "muc#roomconfig_roomsecret", Type: form.TextPrivate, Label: "Password", Values: one(c.Password)},
			{Var: "muc#roomconfig_whois", Type: form.ListSingle, Label: "Who may see real addresses", Values: one(c.Whois),
				Options: []form.Option{{Label: "Moderators only", Value: whoisModerators}, {Label: "Anyone", Value: whoisAnyone}}},
			{Var: "muc#roomconfig_maxusers", Type: form.ListSingle, Label: "Maximum occupants", Values: one(strconv.Itoa(c.maxUsers(m.opts.MaxOccupants))),
				Options: m.maxUsersOptions()},
			{Var: "muc#roomconfig_allowinvites", Type: form.Boolean, Label: "Occupants may invite others", Values: b(c.AllowInvites)},
			{Var: "muc#roomconfig_changesubject", Type: form.Boolean, Label: "Participants may change the subject", Values: b(c.ChangeSubject)},
			{Var: "muc#roomconfig_allowpm", Type: form.ListSingle, Label: "Who may send private messages", Values: one(c.AllowPM),
				Options: []form.Option{{Label: "Anyone", Value: "anyone"}, {Label: "Participants", Value: "participants"}, {Label: "Moderators", Value: "moderators"}, {Label: "Nobody", Value: "none"}}},
			{Var: "muc#roomconfig_enablearchiving", Type: form.Boolean, Label: "Archive messages", Values: b(c.Archiving)},
			{Var: "muc#roomconfig_historylength", Type: form.TextSingle, Label: "Messages of history kept", Values: one(strconv.Itoa(c.History))},
			{Var: "muc#roomconfig_defaulthistorymessages", Type: form.TextSingle, Label: "Messages of history sent on join", Values: one(strconv.Itoa(c.History))},
			{Var: "muc#roomconfig_presencebroadcast", Type: form.ListMulti, Label: "Roles whose presence is broadcast", Values: append([]string(nil), c.Broadcast...),
				Options: []form.Option{{Label: "Moderator", Value: roleModerator}, {Label: "Participant", Value: roleParticipant}, {Label: "Visitor", Value: roleVisitor}}},
			{Var: "muc#roomconfig_roomadmins", Type: form.JIDMulti, Label: "Admins", Values: admins},
			{Var: "muc#roomconfig_roomowners", Type: form.JIDMulti, Label: "Owners", Values: owners},
			{Var: "muc#roominfo_contactjid", Type: form.JIDMulti, Label: "Contact addresses", Values: append([]string(nil), c.ContactJIDs...)},
		},
	}
	return f
}

func (m *Module) maxUsersOptions() []form.Option {
	var opts []form.Option
	for _, n := range []int{10, 20, 30, 50, 100, 200, 500, 1000} {
		if n < m.opts.MaxOccupants {
			opts = append(opts, form.Option{Value: strconv.Itoa(n)})
		}
	}
	return append(opts, form.Option{Value: strconv.Itoa(m.opts.MaxOccupants)})
}

// maxUsers is the room's occupant limit, at most max.
func (c *roomConfig) maxUsers(max int) int {
	if c.MaxUsers <= 0 || c.MaxUsers > max {
		return max
	}
	return c.MaxUsers
}

// configChange is a submitted configuration: the new config, and the
// admin and owner lists if the form carried them.
type configChange struct {
	cfg            roomConfig
	admins, owners []jid.JID
	setAdmins      bool
	setOwners      bool
}

// errConfig is a bad value in a submitted configuration form.
var errConfig = errors.New("muc: bad room configuration")

// applyConfigForm reads a submitted muc#roomconfig form onto a copy of
// old. Fields the form does not carry keep their values; unknown fields are
// ignored (as Prosody does).
func applyConfigForm(f *form.Form, old roomConfig, maxOccupants, maxHistory int) (configChange, error) {
	ch := configChange{cfg: old}
	c := &ch.cfg
	c.Broadcast = append([]string(nil), old.Broadcast...)
	c.ContactJIDs = append([]string(nil), old.ContactJIDs...)
	if ft := f.FormType(); ft != "" && ft != nsRoomConfig {
		return ch, fmt.Errorf("%w: form type %q", errConfig, ft)
	}
	text := func(v string, dst *string, max int) error {
		if fd := f.Field(v); fd != nil {
			s := fd.Value()
			if utf8.RuneCountInString(s) > max || !utf8.ValidString(s) {
				return fmt.Errorf("%w: %s too long", errConfig, v)
			}
			*dst = s
		}
		return nil
	}
	boolean := func(v string, dst *bool) error {
		if fd := f.Field(v); fd != nil {
			b, err := fd.Bool()
			if err != nil {
				return fmt.Errorf("%w: %s: %w", errConfig, v, err)
			}
			*dst = b
		}
		return nil
	}
	number := func(v string, dst *int, max int) error {
		if fd := f.Field(v); fd != nil {
			s := fd.Value()
			if s == "" || s == "none" {
				*dst = 0
				return nil
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return fmt.Errorf("%w: %s is not a number", errConfig, v)
			}
			*dst = min(n, max)
		}
		return nil
	}
	protected := old.Password != ""
	var secret = old.Password
	var history = old.History
	errs := []error{
		text("muc#roomconfig_roomname", &c.Name, 256),
		text("muc#roomconfig_roomdesc", &c.Desc, 1024),
		text("muc#roomconfig_lang", &c.Lang, 35),
		boolean("muc#roomconfig_persistentroom", &c.Persistent),
		boolean("muc#roomconfig_publicroom", &c.Public),
		boolean("muc#roomconfig_membersonly", &c.MembersOnly),
		boolean("muc#roomconfig_moderatedroom", &c.Moderated),
		boolean("muc#roomconfig_passwordprotectedroom", &protected),
		text("muc#roomconfig_roomsecret", &secret, 256),
		boolean("muc#roomconfig_allowinvites", &c.AllowInvites),
		boolean("muc#roomconfig_changesubject", &c.ChangeSubject),
		boolean("muc#roomconfig_enablearchiving", &c.Archiving),
		number("muc#roomconfig_maxusers", &c.MaxUsers, maxOccupants),
		number("muc#roomconfig_historylength", &history, maxHistory),
	}
	if err := errors.Join(errs...); err != nil {
		return ch, err
	}
	c.History = history
	if fd := f.Field("muc#roomconfig_defaulthistorymessages"); fd != nil && f.Field("muc#roomconfig_historylength") == nil {
		if err := number("muc#roomconfig_defaulthistorymessages", &c.History, maxHistory); err != nil {
			return ch, err
		}
	}
	switch {
	case !protected:
		c.Password = ""
	case secret == "":
		return ch, fmt.Errorf("%w: a password-protected room needs a password", errConfig)
	default:
		c.Password = secret
	}
	if fd := f.Field("muc#roomconfig_whois"); fd != nil {
		switch w := fd.Value(); w {
		case whoisAnyone, whoisModerators:
			c.Whois = w
		default:
			return ch, fmt.Errorf("%w: whois %q", errConfig, w)
		}
	}
	if fd := f.Field("muc#roomconfig_allowpm"); fd != nil {
		switch v := fd.Value(); v {
		case "anyone", "participants", "moderators", "none":
			c.AllowPM = v
		case "0", "false":
			c.AllowPM = "none"
		case "1", "true":
			c.AllowPM = "anyone"
		default:
			return ch, fmt.Errorf("%w: allowpm %q", errConfig, v)
		}
	}
	if fd := f.Field("muc#roomconfig_presencebroadcast"); fd != nil {
		c.Broadcast = nil
		for _, v := range fd.Values {
			switch v {
			case roleModerator, roleParticipant, roleVisitor:
				c.Broadcast = append(c.Broadcast, v)
			default:
				return ch, fmt.Errorf("%w: presencebroadcast %q", errConfig, v)
			}
		}
	}
	if fd := f.Field("muc#roominfo_contactjid"); fd != nil {
		js, err := fd.JIDs()
		if err != nil || len(js) > 10 {
			return ch, fmt.Errorf("%w: contact addresses", errConfig)
		}
		c.ContactJIDs = nil
		for _, j := range js {
			c.ContactJIDs = append(c.ContactJIDs, j.Bare().String())
		}
	}
	lists := func(v string, dst *[]jid.JID, set *bool) error {
		fd := f.Field(v)
		if fd == nil {
			return nil
		}
		js, err := fd.JIDs()
		if err != nil || len(js) > 100 {
			return fmt.Errorf("%w: %s", errConfig, v)
		}
		for _, j := range js {
			*dst = append(*dst, j.Bare())
		}
		*set = true
		return nil
	}
	if err := errors.Join(lists("muc#roomconfig_roomadmins", &ch.admins, &ch.setAdmins), lists("muc#roomconfig_roomowners", &ch.owners, &ch.setOwners)); err != nil {
		return ch, err
	}
	return ch, nil
}

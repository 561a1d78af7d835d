package pep

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
)

// Access models of a node (XEP-0060 §4.5).
const (
	AccessOpen      = "open"
	AccessPresence  = "presence"
	AccessRoster    = "roster"
	AccessWhitelist = "whitelist"
)

// Values of send_last_published_item.
const (
	SendNever              = "never"
	SendOnSub              = "on_sub"
	SendOnSubAndPresence   = "on_sub_and_presence"
	formNodeConfig         = nsPubSub + "#node_config"
	formPublishOptions     = nsPubSub + "#publish-options"
	fieldAccessModel       = "pubsub#access_model"
	fieldPersistItems      = "pubsub#persist_items"
	fieldMaxItems          = "pubsub#max_items"
	fieldSendLast          = "pubsub#send_last_published_item"
	fieldNotifyRetract     = "pubsub#notify_retract"
	fieldNotifyDelete      = "pubsub#notify_delete"
	fieldDeliverNotify     = "pubsub#deliver_notifications"
	fieldRosterGroups      = "pubsub#roster_groups_allowed"
	fieldTitle             = "pubsub#title"
	maxItemsMax            = "max"
	defaultMaxItemsPerNode = 1
)

// nodeConfig is a node's configuration, stored as JSON.
type nodeConfig struct {
	Access        string   `json:"access"`
	Persist       bool     `json:"persist"`
	MaxItems      int      `json:"max_items"` // 0 means "max": the server's limit
	SendLast      string   `json:"send_last"`
	NotifyRetract bool     `json:"notify_retract"`
	NotifyDelete  bool     `json:"notify_delete"`
	Deliver       bool     `json:"deliver"`
	RosterGroups  []string `json:"roster_groups,omitempty"`
	Title         string   `json:"title,omitempty"`
}

// defaultConfig is the configuration of a node created without options,
// as Prosody and ejabberd have it for PEP.
func defaultConfig() nodeConfig {
	return nodeConfig{
		Access:        AccessPresence,
		Persist:       true,
		MaxItems:      defaultMaxItemsPerNode,
		SendLast:      SendOnSubAndPresence,
		NotifyRetract: true,
		NotifyDelete:  true,
		Deliver:       true,
	}
}

func (c nodeConfig) encode() []byte {
	b, _ := json.Marshal(c)
	return b
}

func decodeConfig(b []byte) (nodeConfig, error) {
	c := defaultConfig()
	if len(b) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("pep: stored node configuration: %w", err)
	}
	return c, nil
}

// maxItems is the number of items the node keeps under the server's
// limit.
func (c nodeConfig) maxItems(limit int) int {
	if c.MaxItems <= 0 || c.MaxItems > limit {
		return limit
	}
	return c.MaxItems
}

// form returns the configuration as a node_config form (XEP-0060 §16.4.4).
func (c nodeConfig) form(limit int) *form.Form {
	maxItems := strconv.Itoa(c.MaxItems)
	if c.MaxItems <= 0 {
		maxItems = maxItemsMax
	}
	b := func(v bool) []string { return []string{strconv.FormatBool(v)} }
	return &form.Form{Type: form.TypeForm, Fields: []form.Field{
		form.FormTypeField(formNodeConfig),
		{Var: fieldTitle, Type: form.TextSingle, Label: "A short name for the node", Values: []string{c.Title}},
		{Var: fieldAccessModel, Type: form.ListSingle, Label: "Who may subscribe and retrieve items", Values: []string{c.Access},
			Options: []form.Option{{Value: AccessOpen}, {Value: AccessPresence}, {Value: AccessRoster}, {Value: AccessWhitelist}}},
		{Var: fieldRosterGroups, Type: form.ListMulti, Label: "Roster groups allowed to subscribe", Values: c.RosterGroups},
		{Var: fieldPersistItems, Type: form.Boolean, Label: "Persist items to storage", Values: b(c.Persist)},
		{Var: fieldMaxItems, Type: form.TextSingle, Label: "Maximum number of items to persist (at most " + strconv.Itoa(limit) + ", or max)", Values: []string{maxItems}},
		{Var: fieldSendLast, Type: form.ListSingle, Label: "When to send the last published item", Values: []string{c.SendLast},
			Options: []form.Option{{Value: SendNever}, {Value: SendOnSub}, {Value: SendOnSubAndPresence}}},
		{Var: fieldDeliverNotify, Type: form.Boolean, Label: "Deliver event notifications", Values: b(c.Deliver)},
		{Var: fieldNotifyRetract, Type: form.Boolean, Label: "Notify subscribers when items are removed from the node", Values: b(c.NotifyRetract)},
		{Var: fieldNotifyDelete, Type: form.Boolean, Label: "Notify subscribers when the node is deleted", Values: b(c.NotifyDelete)},
	}}
}

// errBadConfig is a configuration value the node cannot take.
func errBadConfig(field, why string) error {
	return stanza.Failure{Err: stanza.NewError(mstanza.Modify, mstanza.NotAcceptable, field+": "+why)}
}

// apply sets the fields f submits on c; fields it does not know are an
// error (XEP-0060 §8.2.5.4), FORM_TYPE aside.
func (c *nodeConfig) apply(f *form.Form, limit int) error {
	for i := range f.Fields {
		fd := &f.Fields[i]
		v := fd.Value()
		switch fd.Var {
		case "FORM_TYPE":
		case fieldTitle:
			c.Title = v
		case fieldAccessModel:
			switch v {
			case AccessOpen, AccessPresence, AccessRoster, AccessWhitelist:
				c.Access = v
			default:
				return errBadConfig(fd.Var, "unsupported access model")
			}
		case fieldRosterGroups:
			c.RosterGroups = slices.Clone(fd.Values)
		case fieldPersistItems, fieldDeliverNotify, fieldNotifyRetract, fieldNotifyDelete:
			b, err := fd.Bool()
			if err != nil {
				return errBadConfig(fd.Var, "not a boolean")
			}
			switch fd.Var {
			case fieldPersistItems:
				c.Persist = b
			case fieldDeliverNotify:
				c.Deliver = b
			case fieldNotifyRetract:
				c.NotifyRetract = b
			case fieldNotifyDelete:
				c.NotifyDelete = b
			}
		case fieldMaxItems:
			n, err := parseMaxItems(v, limit)
			if err != nil {
				return errBadConfig(fd.Var, err.Error())
			}
			c.MaxItems = n
		case fieldSendLast:
			switch v {
			case SendNever, SendOnSub, SendOnSubAndPresence:
				c.SendLast = v
			default:
				return errBadConfig(fd.Var, "unsupported value")
			}
		default:
			return errBadConfig(fd.Var, "unsupported option")
		}
	}
	return nil
}

// parseMaxItems reads pubsub#max_items: a positive number, or "max" (0:
// the server's limit). A number at or above the server's limit means the
// limit too, as "max" does: clients written before "max" existed ask for
// a large number to mean "as many as you keep" (XEP-0402's first
// versions used 10000).
func parseMaxItems(v string, limit int) (int, error) {
	if v == maxItemsMax {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil || n < 1:
		return 0, fmt.Errorf("not a positive number or %q", maxItemsMax)
	case n >= limit:
		return 0, nil
	}
	return n, nil
}

// meets reports whether c satisfies the preconditions of publish-options
// (XEP-0060 §7.1.5): every field submitted has the node's value. A field
// the node has no such option for is not met.
func (c nodeConfig) meets(f *form.Form, limit int) bool {
	want := c.form(limit)
	for i := range f.Fields {
		fd := &f.Fields[i]
		if fd.Var == "FORM_TYPE" {
			continue
		}
		have := want.Field(fd.Var)
		if have == nil {
			return false
		}
		if !sameValues(have, fd, limit) {
			return false
		}
	}
	return true
}

func sameValues(have, got *form.Field, limit int) bool {
	switch have.Var {
	case fieldPersistItems, fieldDeliverNotify, fieldNotifyRetract, fieldNotifyDelete:
		a, err1 := have.Bool()
		b, err2 := got.Bool()
		return err1 == nil && err2 == nil && a == b
	case fieldMaxItems:
		a, err1 := parseMaxItems(have.Value(), limit)
		b, err2 := parseMaxItems(got.Value(), limit)
		return err1 == nil && err2 == nil && a == b
	case fieldRosterGroups:
		a, b := slices.Clone(have.Values), slices.Clone(got.Values)
		slices.Sort(a)
		slices.Sort(b)
		return slices.Equal(a, b)
	}
	return have.Value() == got.Value()
}

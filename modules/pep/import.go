package pep

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
)

// ImportUser restores what ExportUser writes (XEP-0227 §4.9): the nodes'
// configurations from <pubsub xmlns='…#owner'/> (a <configure/> per node
// with its node_config form; affiliations and subscriptions are skipped,
// PEP takes them from the roster) and their items from <pubsub/> (an
// <items/> per node), published oldest first within the module's limits,
// with the import's time as their publication time. A node the user has
// is reconfigured; an item replaces the one with the same ID. Nobody is
// notified.
//
// A configuration form is read as other servers write it (see
// importedForm): Prosody's prosody-migrator writes every field it knows,
// most of them without a value, and options this module does not have.
func (m *Module) ImportUser(ctx context.Context, user jid.JID, el *server.ImportElement) (bool, error) {
	switch el.Start.Name {
	case nameOwner:
		return true, m.importConfigs(ctx, user.Bare(), el)
	case namePubSub:
		return true, m.importItems(ctx, user.Bare(), el)
	}
	return false, nil
}

func (m *Module) importConfigs(ctx context.Context, owner jid.JID, el *server.ImportElement) error {
	u := owner.String()
	for {
		c, err := el.Child()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if c.Start.Name != (xml.Name{Space: nsOwner, Local: "configure"}) {
			continue
		}
		node := c.Attr("node")
		if node == "" {
			return errors.New("pep: a node configuration without a node name")
		}
		toks, err := c.Tokens()
		if err != nil {
			return err
		}
		cfg := defaultConfig()
		x, ok := stanza.Element{}, false
		for e := range stanza.Elements(toks[1 : len(toks)-1]) {
			if e.Name == (xml.Name{Space: form.NS, Local: "x"}) {
				x, ok = e, true
			}
		}
		if ok {
			f, err := form.Parse(stanza.Tokens(x.Tokens()...))
			if err != nil {
				return fmt.Errorf("pep: node %q: configuration form: %w", node, err)
			}
			if err := cfg.apply(importedForm(f), m.opts.MaxItems); err != nil {
				return fmt.Errorf("pep: node %q: %w", node, err)
			}
		}
		_, err = m.node(ctx, u, node)
		switch {
		case errors.Is(err, errNoNode):
			err = m.store.CreatePEPNode(ctx, u, storage.PEPNode{Name: node, Config: cfg.encode()}, m.lim)
		case err == nil:
			err = m.store.ConfigurePEPNode(ctx, u, node, cfg.encode(), m.limits(cfg))
		}
		if err != nil {
			return fmt.Errorf("pep: node %q: %w", node, err)
		}
		m.changed(owner, node)
	}
}

// importedForm returns the fields of an imported node configuration that
// apply can take: without the fields that have no value (the node keeps
// its default) and those naming options this module does not have
// (pubsub#description, pubsub#type, pubsub#publish_model,
// pubsub#notification_type, …: they change nothing PEP does for the
// owner's contacts). Prosody's access model "authorize" (the owner
// approves each subscriber) becomes "whitelist", which lets in nobody
// the owner did not allow.
func importedForm(f *form.Form) *form.Form {
	out := &form.Form{Type: f.Type}
	for _, fd := range f.Fields {
		switch fd.Var {
		case "FORM_TYPE", fieldTitle, fieldAccessModel, fieldRosterGroups, fieldPersistItems, fieldDeliverNotify,
			fieldNotifyRetract, fieldNotifyDelete, fieldMaxItems, fieldSendLast:
		default:
			continue
		}
		if len(fd.Values) == 0 || (fd.Var != fieldTitle && fd.Var != fieldRosterGroups && fd.Value() == "") {
			continue
		}
		if fd.Var == fieldAccessModel && fd.Value() == "authorize" {
			fd.Values = []string{AccessWhitelist}
		}
		out.Fields = append(out.Fields, fd)
	}
	return out
}

func (m *Module) importItems(ctx context.Context, owner jid.JID, el *server.ImportElement) error {
	u := owner.String()
	for {
		items, err := el.Child()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if items.Start.Name != (xml.Name{Space: nsPubSub, Local: "items"}) {
			continue
		}
		node := items.Attr("node")
		if node == "" {
			return errors.New("pep: items without a node name")
		}
		for {
			item, err := items.Child()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if item.Start.Name != (xml.Name{Space: nsPubSub, Local: "item"}) {
				continue
			}
			id := item.Attr("id")
			if id == "" {
				return fmt.Errorf("pep: node %q: an item without an id", node)
			}
			toks, err := item.Tokens()
			if err != nil {
				return err
			}
			var payload []xml.Token
			for e := range stanza.Elements(toks[1 : len(toks)-1]) {
				payload = e.Tokens()
				break
			}
			if payload == nil {
				return fmt.Errorf("pep: node %q: item %q has no payload", node, id)
			}
			var buf bytes.Buffer
			if err := stanza.WriteTokens(&buf, payload, ""); err != nil {
				return fmt.Errorf("pep: node %q: item %q: %w", node, id, err)
			}
			if buf.Len() > m.opts.MaxItemSize {
				return fmt.Errorf("pep: node %q: item %q of %d bytes exceeds the limit of %d", node, id, buf.Len(), m.opts.MaxItemSize)
			}
			cfg, err := m.node(ctx, u, node)
			if errors.Is(err, errNoNode) {
				cfg, err = defaultConfig(), nil
			}
			if err != nil {
				return err
			}
			if err := m.put(ctx, owner, node, cfg, storage.PEPItem{ID: id, Payload: buf.Bytes(), Published: time.Now()}); err != nil {
				return fmt.Errorf("pep: node %q: item %q: %w", node, id, err)
			}
		}
	}
}

var _ server.UserDataImporter = (*Module)(nil)

package roster

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// ImportUser restores what ExportUser writes (XEP-0227): the items of a
// <query xmlns='jabber:iq:roster'/>, with their names, groups and
// subscription states (subscription, ask, approved), and each
// <presence type='subscribe'/> as a contact's pending request ("Pending
// In"), in jabber:client as we write it or in XEP-0227's own namespace as
// Prosody's prosody-migrator writes it (an unprefixed <presence/> inside
// <user/>). An item replaces the user's item for the same contact; a pending
// request it already had is kept. Clients are not told (the account has
// no sessions while it is being imported).
func (m *Module) ImportUser(ctx context.Context, user jid.JID, el *server.ImportElement) (bool, error) {
	u := user.Bare().String()
	switch el.Start.Name {
	case xml.Name{Space: NS, Local: "query"}:
		for {
			c, err := el.Child()
			if err == io.EOF {
				return true, nil
			}
			if err != nil {
				return true, err
			}
			if c.Start.Name != (xml.Name{Space: NS, Local: "item"}) {
				continue
			}
			toks, err := c.Tokens()
			if err != nil {
				return true, err
			}
			it, err := parseImportItem(toks)
			if err != nil {
				return true, err
			}
			if err := m.importItem(ctx, u, it, false); err != nil {
				return true, err
			}
		}
	case xml.Name{Space: stanza.NSClient, Local: "presence"}, xml.Name{Space: server.NSPIE, Local: "presence"}:
		if el.Attr("type") != "subscribe" {
			return false, nil
		}
		from, err := jid.Parse(el.Attr("from"))
		if err != nil || el.Attr("from") == "" {
			return true, fmt.Errorf("roster: a pending subscription request from %q: not an address", el.Attr("from"))
		}
		return true, m.importItem(ctx, u, storage.RosterItem{JID: from.Bare().String()}, true)
	}
	return false, nil
}

// parseImportItem reads an exported <item/> (toks, start to end).
func parseImportItem(toks []xml.Token) (storage.RosterItem, error) {
	start := toks[0].(xml.StartElement)
	attr := func(n string) string { return stanza.AttrValue(start.Attr, n) }
	j, err := jid.Parse(attr("jid"))
	if err != nil || attr("jid") == "" {
		return storage.RosterItem{}, fmt.Errorf("roster: an item with the address %q: not an address", attr("jid"))
	}
	it := storage.RosterItem{
		JID:          j.Bare().String(),
		Name:         attr("name"),
		Subscription: storage.Subscription(attr("subscription")),
		Ask:          attr("ask") == "subscribe",
		Approved:     attr("approved") == "true" || attr("approved") == "1",
	}
	if it.Subscription == "" {
		it.Subscription = storage.SubNone
	}
	if !it.Subscription.Valid() {
		return it, fmt.Errorf("roster: item %s: subscription %q: %w", it.JID, it.Subscription, storage.ErrInvalidItem)
	}
	depth := 0
	for i, t := range toks[1:] {
		switch t := t.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 && t.Name == (xml.Name{Space: NS, Local: "group"}) {
				var b strings.Builder
				for _, g := range toks[i+2:] {
					cd, ok := g.(xml.CharData)
					if !ok {
						break
					}
					b.Write(cd)
				}
				if g := strings.TrimSpace(b.String()); g != "" {
					it.Groups = append(it.Groups, g)
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	return it, nil
}

// importItem stores it for user: an item from the roster (pendingIn
// false) replaces the user's item and keeps its pending request; a
// pending request (pendingIn) marks the item, creating a hidden one if
// the user has none for the contact.
func (m *Module) importItem(ctx context.Context, user string, it storage.RosterItem, pendingIn bool) error {
	unlock := m.lock(user)
	defer unlock()
	old, err := m.store.RosterItem(ctx, user, it.JID)
	exists := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("roster: %w", err)
	}
	switch {
	case pendingIn && exists:
		it = old
		it.PendingIn = true
	case pendingIn:
		it = storage.RosterItem{JID: it.JID, Subscription: storage.SubNone, PendingIn: true, Hidden: true}
	case exists:
		it.PendingIn = old.PendingIn
	}
	if !exists && m.opts.MaxItems > 0 {
		items, _, err := m.store.Roster(ctx, user)
		if err != nil {
			return fmt.Errorf("roster: %w", err)
		}
		if len(items) >= m.opts.MaxItems {
			return fmt.Errorf("roster: more than %d items: %w", m.opts.MaxItems, ErrFull)
		}
	}
	if _, err := m.store.SetRosterItem(ctx, user, it); err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	return nil
}

var _ server.UserDataImporter = (*Module)(nil)

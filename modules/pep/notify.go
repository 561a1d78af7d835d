package pep

import (
	"context"
	"encoding/xml"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/caps"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// Notifications (XEP-0163 §4.3): PEP subscriptions are implicit. Every
// available resource of the owner, and of each contact the owner shares
// presence with (subscription from or both) whom the node's access model
// lets in, gets an event if its entity capabilities ask for the node
// ("node+notify", XEP-0115). Events go through the server's stanza path
// (so blocking stops them) as headline messages from the owner's bare JID
// to each full JID.

// notify sends an event with payload (the <items/>, <purge/> or <delete/>
// element, in the event namespace) about owner's node to its subscribers.
func (m *Module) notify(ctx context.Context, owner jid.JID, node string, cfg nodeConfig, payload xml.TokenReader) {
	if m.caps == nil || m.host == nil {
		return
	}
	event := stanza.Resolve(stanza.Elem(xml.Name{Space: nsEvent, Local: "event"}, nil, payload), stanza.NSClient)
	m.sendTo(ctx, owner, owner, node, event)
	if cfg.Access == AccessWhitelist {
		return
	}
	items, err := m.roster.Items(ctx, owner)
	if err != nil {
		m.log.Warn("reading a roster for notifications failed", "err", err)
		return
	}
	for _, it := range items {
		if !sharesPresence(it) || cfg.Access == AccessRoster && !inGroups(it, cfg) {
			continue
		}
		c, err := jid.Parse(it.JID)
		if err != nil {
			continue
		}
		if !m.host.IsLocal(c.Domainpart()) {
			m.sendToRemote(ctx, owner, c, node, event)
			continue
		}
		m.sendTo(ctx, owner, c, node, event)
	}
}

// sendToRemote sends event from owner to every resource of the remote
// account (on another server) whose available presence the server saw
// and whose caps ask for node: over s2s, to its full JID.
func (m *Module) sendToRemote(ctx context.Context, owner, account jid.JID, node string, event []xml.Token) {
	for _, full := range m.caps.RemoteResources(account) {
		if !m.wants(full, node) {
			continue
		}
		msg := &stanza.Stanza{Kind: stanza.Message, Type: "headline", ID: newItemID(), From: owner, To: full, Inner: event}
		if err := m.host.Router().Route(ctx, msg); err != nil {
			m.log.Debug("an event was not delivered", "err", err)
		}
	}
}

// sendTo sends event from owner to every available resource of account
// that wants notifications of node.
func (m *Module) sendTo(ctx context.Context, owner, account jid.JID, node string, event []xml.Token) {
	for _, s := range m.host.Sessions(account) {
		if !s.Available() || !m.wants(s.JID(), node) {
			continue
		}
		msg := &stanza.Stanza{Kind: stanza.Message, Type: "headline", ID: newItemID(), From: owner, To: s.JID(), Inner: event}
		if err := m.host.Router().Route(ctx, msg); err != nil {
			m.log.Debug("an event was not delivered", "err", err)
		}
	}
}

// wants reports whether the session full asked for notifications of node.
func (m *Module) wants(full jid.JID, node string) bool {
	f, ok := m.caps.Features(full)
	return ok && f.Notify(node)
}

// sharesPresence reports whether the roster item's contact receives the
// user's presence: the contact is subscribed to the user.
func sharesPresence(it storage.RosterItem) bool {
	return it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth
}

// inGroups reports whether the item is in a group the node allows.
func inGroups(it storage.RosterItem, cfg nodeConfig) bool {
	for _, g := range it.Groups {
		for _, a := range cfg.RosterGroups {
			if g == a {
				return true
			}
		}
	}
	return false
}

// capsKnown sends a local resource whose capabilities became known the
// last items of the nodes it asks for: its own account's, and those of
// the local contacts it is subscribed to (XEP-0163 §4.3.2, send last
// published item on presence).
func (m *Module) capsKnown(ctx context.Context, full jid.JID, feats caps.Features) {
	if m.host == nil || !m.host.IsLocal(full.Domainpart()) {
		return
	}
	user := full.Bare()
	m.sendLast(ctx, user, full, feats)
	items, err := m.roster.Items(ctx, user)
	if err != nil {
		m.log.Warn("reading a roster for last items failed", "err", err)
		return
	}
	for _, it := range items {
		if it.Subscription != storage.SubTo && it.Subscription != storage.SubBoth {
			continue
		}
		owner, err := jid.Parse(it.JID)
		if err != nil || !m.host.IsLocal(owner.Domainpart()) {
			continue
		}
		m.sendLast(ctx, owner, full, feats)
	}
}

// remoteCapsKnown sends a remote contact's resource the last items of
// the local account it sent presence to, once its caps are known
// (sendLast checks each node's access); each account only its own, so
// that a contact of several accounts gets each item once.
func (m *Module) remoteCapsKnown(ctx context.Context, full, account jid.JID, feats caps.Features) {
	if m.host == nil {
		return
	}
	m.sendLast(ctx, account, full, feats)
}

// sendLast sends to the last item of each of owner's nodes that to asks
// for and may see.
func (m *Module) sendLast(ctx context.Context, owner, to jid.JID, feats caps.Features) {
	u := owner.String()
	nodes, err := m.store.PEPNodes(ctx, u)
	if err != nil {
		m.log.Warn("listing nodes for last items failed", "err", err)
		return
	}
	for _, n := range nodes {
		if n.Name == NodeBookmarks && n.Items > 0 && to.Bare().Equal(owner) && feats.Notify(NodeLegacyBookmarks) {
			// XEP-0048's node is served from XEP-0402's (XEP-0411).
			if event, err := m.legacyEvent(ctx, owner); err == nil {
				msg := &stanza.Stanza{Kind: stanza.Message, Type: "headline", ID: newItemID(), From: owner, To: to, Inner: event}
				if err := m.host.Router().Route(ctx, msg); err != nil {
					m.log.Debug("a last item was not delivered", "err", err)
				}
			}
		}
		if n.Items == 0 || !feats.Notify(n.Name) {
			continue
		}
		cfg, err := decodeConfig(n.Config)
		if err != nil || !cfg.Deliver || cfg.SendLast != SendOnSubAndPresence {
			continue
		}
		if m.allowed(ctx, owner, to, cfg) != nil {
			continue
		}
		its, err := m.store.PEPItems(ctx, u, n.Name, nil, 1)
		if err != nil || len(its) == 0 {
			continue
		}
		event := stanza.Resolve(stanza.Elem(xml.Name{Space: nsEvent, Local: "event"}, nil, itemsElem(nsEvent, n.Name, its)), stanza.NSClient)
		msg := &stanza.Stanza{Kind: stanza.Message, Type: "headline", ID: newItemID(), From: owner, To: to, Inner: event}
		if err := m.host.Router().Route(ctx, msg); err != nil {
			m.log.Debug("a last item was not delivered", "err", err)
		}
	}
}

package pep

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// The service as other modules use it: they read, publish and retract
// items of an account's nodes on its behalf, with the notifications a
// client's request would cause. Access models do not apply (the caller
// acts for the owner); the limits do.

// Item is a published item.
type Item struct {
	ID string
	// Payload is the item's payload element, from its start element to
	// its end element, with every namespace explicit.
	Payload []xml.Token
	// Published is when the item was last published.
	Published time.Time
}

// MaxItemsMax, as NodeOptions.MaxItems, keeps as many items as the
// server allows (pubsub#max_items "max").
const MaxItemsMax = -1

// NodeOptions configure the node a Publish goes to. Zero fields leave a
// setting as it is, or as the default (XEP-0163's: access model presence,
// one item, sent on presence) for a node the publish creates.
type NodeOptions struct {
	// Access is the access model: AccessOpen, AccessPresence,
	// AccessRoster or AccessWhitelist.
	Access string
	// MaxItems is the most items the node keeps: a number up to
	// Options.MaxItems, or MaxItemsMax.
	MaxItems int
	// SendLast is when the last item goes to a subscriber: SendNever,
	// SendOnSub or SendOnSubAndPresence.
	SendLast string
	// Enforce applies the options to a node that exists, too (for
	// example to make sure that nobody but the owner reads it); without
	// it they only configure a node the publish creates.
	Enforce bool
}

// set applies the options to c.
func (o NodeOptions) set(c *nodeConfig, limit int) error {
	switch o.Access {
	case "":
	case AccessOpen, AccessPresence, AccessRoster, AccessWhitelist:
		c.Access = o.Access
	default:
		return fmt.Errorf("pep: unknown access model %q", o.Access)
	}
	switch {
	case o.MaxItems == 0:
	case o.MaxItems == MaxItemsMax:
		c.MaxItems = 0
	case o.MaxItems > 0 && o.MaxItems <= limit:
		c.MaxItems = o.MaxItems
	default:
		return fmt.Errorf("pep: MaxItems %d is not a number from 1 to %d, or MaxItemsMax", o.MaxItems, limit)
	}
	switch o.SendLast {
	case "":
	case SendNever, SendOnSub, SendOnSubAndPresence:
		c.SendLast = o.SendLast
	default:
		return fmt.Errorf("pep: unknown send_last_published_item %q", o.SendLast)
	}
	return nil
}

// Items returns the items of user's node (oldest first): those with the
// given IDs (the IDs the node lacks are left out), or all of them. A node
// that does not exist has no items.
func (m *Module) Items(ctx context.Context, user jid.JID, node string, ids ...string) ([]Item, error) {
	its, err := m.store.PEPItems(ctx, user.Bare().String(), node, ids, 0)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pep: %w", err)
	}
	out := make([]Item, 0, len(its))
	for _, it := range its {
		toks, err := stanza.ParseElement(it.Payload)
		if err != nil {
			return nil, fmt.Errorf("pep: stored item %s of %s: %w", it.ID, node, err)
		}
		out = append(out, Item{ID: it.ID, Payload: toks, Published: it.Published})
	}
	return out, nil
}

// Publish publishes payload, one element, as item id ("" for an ID the
// server chooses, which it returns) on user's node, creating the node if
// needed, and notifies the node's subscribers as a client's publish does.
// A payload over Options.MaxItemSize, or past the account's limits, is
// refused with the stanza.Failure a client would get.
func (m *Module) Publish(ctx context.Context, user jid.JID, node, id string, payload xml.TokenReader, opts NodeOptions) (string, error) {
	if node == "" || payload == nil {
		return "", errors.New("pep: Publish needs a node and a payload")
	}
	var buf bytes.Buffer
	if err := stanza.WriteTokens(&buf, stanza.Resolve(payload, ""), ""); err != nil {
		return "", fmt.Errorf("pep: payload: %w", err)
	}
	if id == "" {
		id = newItemID()
	}
	err := m.publishAs(ctx, user.Bare(), node, storage.PEPItem{ID: id, Payload: buf.Bytes(), Published: time.Now()},
		func(c *nodeConfig) error { return opts.set(c, m.opts.MaxItems) }, opts.Enforce, false)
	return id, err
}

// publishAs publishes it on owner's node. A node the publish creates is
// configured by the defaults and then by config; with enforce, a node
// that exists is reconfigured so if config changes its configuration.
func (m *Module) publishAs(ctx context.Context, owner jid.JID, node string, it storage.PEPItem, config func(*nodeConfig) error, enforce, quiet bool) error {
	if len(it.Payload) > m.opts.MaxItemSize {
		return failure(mstanza.Modify, mstanza.NotAcceptable, "payload-too-big")
	}
	u := owner.String()
	cfg, err := m.node(ctx, u, node)
	switch {
	case errors.Is(err, errNoNode):
		cfg = defaultConfig()
		if err := config(&cfg); err != nil {
			return err
		}
	case err != nil:
		return err
	case enforce:
		want := cfg
		if err := config(&want); err != nil {
			return err
		}
		if !bytes.Equal(want.encode(), cfg.encode()) {
			if err := m.store.ConfigurePEPNode(ctx, u, node, want.encode(), m.limits(want)); err != nil {
				return limitErr(err)
			}
			cfg = want
		}
	}
	if err := m.put(ctx, owner, node, cfg, it); err != nil {
		return err
	}
	m.published(ctx, owner, node, cfg, it, quiet)
	return nil
}

// Retract removes item id of user's node and notifies the node's
// subscribers, as a client's retraction with notify='true' does. A node
// or item that does not exist is an error wrapping storage.ErrNotFound.
func (m *Module) Retract(ctx context.Context, user jid.JID, node, id string) error {
	return m.retractAs(ctx, user.Bare(), node, id, false)
}

func (m *Module) retractAs(ctx context.Context, owner jid.JID, node, id string, quiet bool) error {
	cfg, err := m.remove(ctx, owner, node, id)
	if err != nil {
		if errors.Is(err, errNoNode) || isItemNotFound(err) {
			return fmt.Errorf("pep: no item %s on node %s: %w", id, node, storage.ErrNotFound)
		}
		return err
	}
	m.retracted(ctx, owner, node, cfg, id, true, quiet)
	return nil
}

// isItemNotFound reports whether err is the item-not-found failure remove
// returns.
func isItemNotFound(err error) bool {
	var f stanza.Failure
	return errors.As(err, &f) && f.Err.Condition == mstanza.ItemNotFound
}

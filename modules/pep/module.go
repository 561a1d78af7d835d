// Package pep implements the Personal Eventing Protocol (XEP-0163): a
// publish-subscribe service (XEP-0060) on every account's bare JID, where
// clients publish avatars (XEP-0084), OMEMO keys (XEP-0384), bookmarks
// (XEP-0402) and other data for themselves and their contacts.
//
// Nodes are created on first publish. Contacts with a presence
// subscription to the owner are subscribed implicitly, and get
// notifications of the nodes their client asks for in its entity
// capabilities (the "+notify" features of XEP-0115, learnt by
// modules/caps): events on publish, and the last items when a resource
// comes online. Who may fetch items is the node's access model: presence
// (the default), open, roster (groups) or whitelist (the owner only).
//
// Other modules use the service through Items, Publish and Retract, and
// through two converters for older protocols: Bookmarks (XEP-0048
// bookmarks of private XML storage, modules/private, kept in the XEP-0402
// node) and Avatars (vCard-based avatars of XEP-0153, modules/vcard, kept
// in the XEP-0084 nodes, as XEP-0398 has it). The module itself serves
// the XEP-0048 bookmarks node storage:bookmarks from the XEP-0402 node.
package pep

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/caps"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
)

// Defaults for zero Options.
const (
	DefaultMaxItemSize = 128 << 10
	DefaultMaxItems    = 256
	DefaultMaxNodes    = 256
	DefaultMaxBytes    = 8 << 20
)

// Options configure the module. The zero value is ready to use.
type Options struct {
	// MaxItemSize is the largest item payload, in bytes of serialised
	// XML; a larger one is refused with not-acceptable and
	// <payload-too-big/>. Zero means DefaultMaxItemSize.
	MaxItemSize int
	// MaxItems is the most items a node keeps, what pubsub#max_items
	// "max" means. Zero means DefaultMaxItems.
	MaxItems int
	// MaxNodes is the most nodes an account may have. Zero means
	// DefaultMaxNodes.
	MaxNodes int
	// MaxBytes is the most bytes of items (IDs and payloads) an account
	// may store over all its nodes. Zero means DefaultMaxBytes.
	MaxBytes int64
}

// Deps are what the module builds on.
type Deps struct {
	// Store keeps nodes and items (required).
	Store storage.PEP
	// Roster tells who is subscribed to whom (required); it must also be
	// in Config.Modules.
	Roster *roster.Module
	// Caps tells which nodes a session wants notifications of. Without
	// it (nil) nobody gets notifications; items can still be fetched.
	Caps *caps.Module
}

// Module is the PEP service. Create it with New.
type Module struct {
	opts   Options
	lim    storage.PEPLimits
	store  storage.PEP
	roster *roster.Module
	caps   *caps.Module
	host   server.Host
	log    *slog.Logger

	// convMu serialises the conversions (bookmarks, avatars), each a
	// read and several writes. They are rare.
	convMu  sync.Mutex
	avatars avatarCache
}

// New returns the PEP module. It fails without a store or a roster, or
// for negative limits.
func New(opts Options, deps Deps) (*Module, error) {
	if deps.Store == nil {
		return nil, errors.New("pep: no store")
	}
	if deps.Roster == nil {
		return nil, errors.New("pep: no roster module")
	}
	if opts.MaxItemSize < 0 || opts.MaxItems < 0 || opts.MaxNodes < 0 || opts.MaxBytes < 0 {
		return nil, errors.New("pep: negative limit")
	}
	if opts.MaxItemSize == 0 {
		opts.MaxItemSize = DefaultMaxItemSize
	}
	if opts.MaxItems == 0 {
		opts.MaxItems = DefaultMaxItems
	}
	if opts.MaxNodes == 0 {
		opts.MaxNodes = DefaultMaxNodes
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	m := &Module{opts: opts, store: deps.Store, roster: deps.Roster, caps: deps.Caps,
		lim: storage.PEPLimits{MaxNodes: opts.MaxNodes, MaxBytes: opts.MaxBytes},
		log: slog.New(slog.DiscardHandler)}
	if m.caps != nil {
		m.caps.Watch(m.capsKnown)
		m.caps.WatchRemote(m.remoteCapsKnown)
	}
	return m, nil
}

// Name returns "pep".
func (*Module) Name() string { return "pep" }

// Init keeps the host.
func (m *Module) Init(_ context.Context, h server.Host) error {
	m.host = h
	m.log = h.Logger()
	return nil
}

var (
	namePubSub = xml.Name{Space: nsPubSub, Local: "pubsub"}
	nameOwner  = xml.Name{Space: nsOwner, Local: "pubsub"}
)

// IQRoutes answers pubsub requests to accounts' bare JIDs (and without
// 'to', to one's own).
func (m *Module) IQRoutes() []server.IQRoute {
	h := server.IQHandlerFunc(m.handle)
	return []server.IQRoute{
		{Type: mstanza.GetIQ, Payload: namePubSub, To: server.TargetBare, Handler: h},
		{Type: mstanza.SetIQ, Payload: namePubSub, To: server.TargetBare, Handler: h},
		{Type: mstanza.GetIQ, Payload: nameOwner, To: server.TargetBare, Handler: h},
		{Type: mstanza.SetIQ, Payload: nameOwner, To: server.TargetBare, Handler: h},
	}
}

// features are the pubsub features that work, advertised on accounts.
var features = []string{
	nsPubSub,
	nsPubSub + "#access-open",
	nsPubSub + "#access-presence",
	nsPubSub + "#access-roster",
	nsPubSub + "#access-whitelist",
	nsPubSub + "#auto-create",
	nsPubSub + "#auto-subscribe",
	nsPubSub + "#config-node",
	nsPubSub + "#create-and-configure",
	nsPubSub + "#create-nodes",
	nsPubSub + "#delete-items",
	nsPubSub + "#delete-nodes",
	nsPubSub + "#filtered-notifications",
	nsPubSub + "#item-ids",
	nsPubSub + "#last-published",
	nsPubSub + "#multi-items",
	nsPubSub + "#persistent-items",
	nsPubSub + "#presence-notifications",
	nsPubSub + "#publish",
	nsPubSub + "#publish-options",
	nsPubSub + "#purge-nodes",
	nsPubSub + "#retract-items",
	nsPubSub + "#retrieve-affiliations",
	nsPubSub + "#retrieve-default",
	nsPubSub + "#retrieve-items",
	nsPubSub + "#retrieve-subscriptions",
	// The XEP-0048 node storage:bookmarks is served from the XEP-0402
	// node (XEP-0402's compatibility notes).
	NodeBookmarks + "#compat-pep",
}

// Features advertises the pubsub features on accounts' bare JIDs
// (XEP-0163 §6).
func (*Module) Features(t server.Target) []string {
	if t == server.TargetBare {
		return features
	}
	return nil
}

// Identities gives accounts the pubsub/pep identity.
func (*Module) Identities(t server.Target) []server.Identity {
	if t == server.TargetBare {
		return []server.Identity{{Category: "pubsub", Type: "pep"}}
	}
	return nil
}

// UserData names what the module keeps per user.
func (*Module) UserData() []string { return []string{"PEP nodes and items"} }

// DeleteUser deletes every node and item of the account.
func (m *Module) DeleteUser(ctx context.Context, user jid.JID) error {
	err := m.store.DeletePEP(ctx, user.Bare().String())
	m.avatars.forget(user.Bare().String())
	if err != nil {
		return fmt.Errorf("pep: %w", err)
	}
	return nil
}

// ExportUser writes the account's nodes as XEP-0227 §4.9 has them: one
// <pubsub xmlns='…#owner'/> with each node's configuration, then one
// <pubsub/> with each node's items.
func (m *Module) ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error {
	u := user.Bare().String()
	nodes, err := m.store.PEPNodes(ctx, u)
	if err != nil || len(nodes) == 0 {
		return err
	}
	var configs, items []xml.TokenReader
	for _, n := range nodes {
		cfg, err := decodeConfig(n.Config)
		if err != nil {
			return err
		}
		nodeAttr := []xml.Attr{{Name: xml.Name{Local: "node"}, Value: n.Name}}
		f := cfg.form(m.opts.MaxItems)
		f.Type = form.TypeSubmit
		configs = append(configs, stanza.Elem(xml.Name{Space: nsOwner, Local: "configure"}, nodeAttr, f.TokenReader()))
		its, err := m.store.PEPItems(ctx, u, n.Name, nil, 0)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("pep: %w", err)
		}
		// Parsed, not Raw: an export goes to any xmlstream.TokenWriter.
		var children []xml.TokenReader
		for _, it := range its {
			payload, err := stanza.ParseElement(it.Payload)
			if err != nil {
				return fmt.Errorf("pep: stored item %q of node %q: %w", it.ID, n.Name, err)
			}
			children = append(children, stanza.Elem(xml.Name{Space: nsPubSub, Local: "item"},
				[]xml.Attr{{Name: xml.Name{Local: "id"}, Value: it.ID}}, stanza.Tokens(payload...)))
		}
		items = append(items, stanza.Elem(xml.Name{Space: nsPubSub, Local: "items"}, nodeAttrs(n.Name), children...))
	}
	if _, err := xmlstream.Copy(w, stanza.Elem(nameOwner, nil, configs...)); err != nil {
		return err
	}
	_, err = xmlstream.Copy(w, stanza.Elem(namePubSub, nil, items...))
	return err
}

// handle answers one pubsub request.
func (m *Module) handle(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	err := m.dispatch(ctx, iq, w)
	if errors.Is(err, errNoNode) {
		return failure(mstanza.Cancel, mstanza.ItemNotFound, "")
	}
	return err
}

// dispatch runs the request's operation.
func (m *Module) dispatch(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	owner := iq.To.Bare()
	if iq.To.String() == "" {
		owner = iq.From.Bare()
	}
	req, err := parseRequest(iq.Stanza)
	if err != nil {
		return err
	}
	isOwner := iq.From.Bare().Equal(owner)
	u := owner.String()
	if req.node == NodeLegacyBookmarks && (req.op == opItems || req.op == opPublish) {
		return m.legacyBookmarks(ctx, owner, isOwner, req, w)
	}
	switch req.op {
	case opItems:
		return m.items(ctx, owner, iq.From, req, w)
	case opSubscriptions:
		return w.Result(stanza.Elem(namePubSub, nil, stanza.Elem(xml.Name{Space: nsPubSub, Local: "subscriptions"}, nodeAttrs(req.node))))
	case opAffiliations:
		return m.affiliations(ctx, u, isOwner, req, w)
	}
	if !isOwner {
		return failure(mstanza.Auth, mstanza.Forbidden, "")
	}
	switch req.op {
	case opPublish:
		return m.publish(ctx, owner, req, w)
	case opRetract:
		return m.retract(ctx, owner, req, w)
	case opCreate:
		return m.create(ctx, u, req, w)
	case opConfigure:
		return m.configure(ctx, owner, req, w)
	case opDefault:
		f := defaultConfig().form(m.opts.MaxItems)
		return w.Result(stanza.Elem(nameOwner, nil, stanza.Elem(xml.Name{Space: nsOwner, Local: "default"}, nil, f.TokenReader())))
	case opPurge:
		return m.purge(ctx, owner, req, w)
	case opDelete:
		return m.deleteNode(ctx, owner, req, w)
	case opNodeAffiliations:
		if _, err := m.node(ctx, u, req.node); err != nil {
			return err
		}
		aff := stanza.Elem(xml.Name{Space: nsOwner, Local: "affiliation"}, []xml.Attr{
			{Name: xml.Name{Local: "jid"}, Value: u}, {Name: xml.Name{Local: "affiliation"}, Value: "owner"}})
		return w.Result(stanza.Elem(nameOwner, nil, stanza.Elem(xml.Name{Space: nsOwner, Local: "affiliations"}, nodeAttrs(req.node), aff)))
	case opNodeSubscriptions:
		if _, err := m.node(ctx, u, req.node); err != nil {
			return err
		}
		return w.Result(stanza.Elem(nameOwner, nil, stanza.Elem(xml.Name{Space: nsOwner, Local: "subscriptions"}, nodeAttrs(req.node))))
	}
	return failure(mstanza.Cancel, mstanza.FeatureNotImplemented, "")
}

func nodeAttrs(node string) []xml.Attr {
	if node == "" {
		return nil
	}
	return []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}}
}

// errNoNode is a node that does not exist; handle answers it with
// item-not-found.
var errNoNode = errors.New("pep: no such node")

// node returns a stored node and its configuration, or item-not-found.
func (m *Module) node(ctx context.Context, user, node string) (nodeConfig, error) {
	n, err := m.store.PEPNode(ctx, user, node)
	if errors.Is(err, storage.ErrNotFound) {
		return nodeConfig{}, errNoNode
	}
	if err != nil {
		return nodeConfig{}, fmt.Errorf("pep: %w", err)
	}
	return decodeConfig(n.Config)
}

// limitErr maps a store's limit error onto the stanza error to answer.
func limitErr(err error) error {
	if errors.Is(err, storage.ErrLimit) {
		return stanza.Failure{Err: stanza.NewError(mstanza.Wait, mstanza.PolicyViolation, "storage limit reached: "+err.Error())}
	}
	if errors.Is(err, storage.ErrNotFound) {
		return errNoNode
	}
	return fmt.Errorf("pep: %w", err)
}

func (m *Module) publish(ctx context.Context, owner jid.JID, req request, w server.ResponseWriter) error {
	u := owner.String()
	var payload bytes.Buffer
	stanza.WriteTokens(&payload, req.item.payload, "")
	if payload.Len() > m.opts.MaxItemSize {
		return failure(mstanza.Modify, mstanza.NotAcceptable, "payload-too-big")
	}
	cfg, err := m.node(ctx, u, req.node)
	switch {
	case errors.Is(err, errNoNode):
		cfg = defaultConfig()
		if req.options != nil {
			if err := cfg.apply(req.options, m.opts.MaxItems); err != nil {
				return failure(mstanza.Cancel, mstanza.Conflict, "precondition-not-met")
			}
		}
	case err != nil:
		return err
	case req.options != nil && !cfg.meets(req.options, m.opts.MaxItems):
		return failure(mstanza.Cancel, mstanza.Conflict, "precondition-not-met")
	}
	id := req.item.id
	if id == "" {
		id = newItemID()
	}
	it := storage.PEPItem{ID: id, Payload: payload.Bytes(), Published: time.Now()}
	if err := m.put(ctx, owner, req.node, cfg, it); err != nil {
		return err
	}
	result := stanza.Elem(namePubSub, nil, stanza.Elem(xml.Name{Space: nsPubSub, Local: "publish"}, nodeAttrs(req.node),
		stanza.Elem(xml.Name{Space: nsPubSub, Local: "item"}, []xml.Attr{{Name: xml.Name{Local: "id"}, Value: id}})))
	if err := w.Result(result); err != nil {
		return err
	}
	m.published(ctx, owner, req.node, cfg, it, false)
	return nil
}

// put stores it on owner's node, creating the node with cfg if there is
// none, within the module's limits and the node's max_items.
func (m *Module) put(ctx context.Context, owner jid.JID, node string, cfg nodeConfig, it storage.PEPItem) error {
	if _, _, err := m.store.PublishPEPItem(ctx, owner.String(), node, cfg.encode(), it, m.limits(cfg)); err != nil {
		return limitErr(err)
	}
	m.changed(owner, node)
	return nil
}

// limits are the store's limits for a node configured as cfg.
func (m *Module) limits(cfg nodeConfig) storage.PEPLimits {
	lim := m.lim
	lim.MaxItems = cfg.maxItems(m.opts.MaxItems)
	if !cfg.Persist {
		lim.MaxItems = 1 // only the last item, for send_last_published_item
	}
	return lim
}

// published tells the node's subscribers of it, once stored; quiet
// leaves out the storage:bookmarks event of a change to the bookmarks,
// which a conversion of several items sends once at its end.
func (m *Module) published(ctx context.Context, owner jid.JID, node string, cfg nodeConfig, it storage.PEPItem, quiet bool) {
	if cfg.Deliver {
		m.notify(ctx, owner, node, cfg, itemsElem(nsEvent, node, []storage.PEPItem{it}))
	}
	if node == NodeBookmarks && !quiet {
		m.legacyBookmarksChanged(ctx, owner)
	}
}

// changed is called after every change to owner's node in the store.
func (m *Module) changed(owner jid.JID, node string) {
	if node == NodeAvatarMetadata || node == NodeAvatarData {
		m.avatars.forget(owner.String())
	}
}

func (m *Module) retract(ctx context.Context, owner jid.JID, req request, w server.ResponseWriter) error {
	cfg, err := m.remove(ctx, owner, req.node, req.ids[0])
	if err != nil {
		return err
	}
	if err := w.Result(nil); err != nil {
		return err
	}
	m.retracted(ctx, owner, req.node, cfg, req.ids[0], req.notify, false)
	return nil
}

// remove retracts item id of owner's node, returning the node's
// configuration.
func (m *Module) remove(ctx context.Context, owner jid.JID, node, id string) (nodeConfig, error) {
	u := owner.String()
	cfg, err := m.node(ctx, u, node)
	if err != nil {
		return cfg, err
	}
	if err := m.store.RetractPEPItem(ctx, u, node, id); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return cfg, failure(mstanza.Cancel, mstanza.ItemNotFound, "")
		}
		return cfg, fmt.Errorf("pep: %w", err)
	}
	m.changed(owner, node)
	return cfg, nil
}

// retracted tells the node's subscribers that item id is gone, if the
// retraction asked for it (notify) or the node is configured so.
func (m *Module) retracted(ctx context.Context, owner jid.JID, node string, cfg nodeConfig, id string, notify, quiet bool) {
	if notify || cfg.NotifyRetract {
		retract := stanza.Elem(xml.Name{Space: nsEvent, Local: "retract"}, []xml.Attr{{Name: xml.Name{Local: "id"}, Value: id}})
		m.notify(ctx, owner, node, cfg, stanza.Elem(xml.Name{Space: nsEvent, Local: "items"}, nodeAttrs(node), retract))
	}
	if node == NodeBookmarks && !quiet {
		m.legacyBookmarksChanged(ctx, owner)
	}
}

func (m *Module) create(ctx context.Context, user string, req request, w server.ResponseWriter) error {
	cfg := defaultConfig()
	if req.options != nil {
		if err := cfg.apply(req.options, m.opts.MaxItems); err != nil {
			return err
		}
	}
	err := m.store.CreatePEPNode(ctx, user, storage.PEPNode{Name: req.node, Config: cfg.encode()}, m.lim)
	if errors.Is(err, storage.ErrExists) {
		return failure(mstanza.Cancel, mstanza.Conflict, "")
	}
	if err != nil {
		return limitErr(err)
	}
	return w.Result(nil)
}

func (m *Module) configure(ctx context.Context, owner jid.JID, req request, w server.ResponseWriter) error {
	u := owner.String()
	cfg, err := m.node(ctx, u, req.node)
	if err != nil {
		return err
	}
	if req.options == nil {
		f := cfg.form(m.opts.MaxItems)
		return w.Result(stanza.Elem(nameOwner, nil, stanza.Elem(xml.Name{Space: nsOwner, Local: "configure"}, nodeAttrs(req.node), f.TokenReader())))
	}
	if err := cfg.apply(req.options, m.opts.MaxItems); err != nil {
		return err
	}
	if err := m.store.ConfigurePEPNode(ctx, u, req.node, cfg.encode(), m.limits(cfg)); err != nil {
		return limitErr(err)
	}
	// Fewer items may be kept now.
	m.changed(owner, req.node)
	if req.node == NodeBookmarks {
		defer m.legacyBookmarksChanged(ctx, owner)
	}
	return w.Result(nil)
}

func (m *Module) purge(ctx context.Context, owner jid.JID, req request, w server.ResponseWriter) error {
	u := owner.String()
	cfg, err := m.node(ctx, u, req.node)
	if err != nil {
		return err
	}
	if err := m.store.PurgePEPNode(ctx, u, req.node); err != nil {
		return limitErr(err)
	}
	m.changed(owner, req.node)
	if err := w.Result(nil); err != nil {
		return err
	}
	if cfg.NotifyRetract {
		m.notify(ctx, owner, req.node, cfg, stanza.Elem(xml.Name{Space: nsEvent, Local: "purge"}, nodeAttrs(req.node)))
	}
	if req.node == NodeBookmarks {
		m.legacyBookmarksChanged(ctx, owner)
	}
	return nil
}

func (m *Module) deleteNode(ctx context.Context, owner jid.JID, req request, w server.ResponseWriter) error {
	u := owner.String()
	cfg, err := m.node(ctx, u, req.node)
	if err != nil {
		return err
	}
	if err := m.store.DeletePEPNode(ctx, u, req.node); err != nil {
		return limitErr(err)
	}
	m.changed(owner, req.node)
	if err := w.Result(nil); err != nil {
		return err
	}
	if cfg.NotifyDelete {
		m.notify(ctx, owner, req.node, cfg, stanza.Elem(xml.Name{Space: nsEvent, Local: "delete"}, nodeAttrs(req.node)))
	}
	if req.node == NodeBookmarks {
		m.legacyBookmarksChanged(ctx, owner)
	}
	return nil
}

func (m *Module) affiliations(ctx context.Context, user string, isOwner bool, req request, w server.ResponseWriter) error {
	var affs []xml.TokenReader
	if isOwner {
		nodes, err := m.store.PEPNodes(ctx, user)
		if err != nil {
			return fmt.Errorf("pep: %w", err)
		}
		for _, n := range nodes {
			if req.node != "" && n.Name != req.node {
				continue
			}
			affs = append(affs, stanza.Elem(xml.Name{Space: nsPubSub, Local: "affiliation"}, []xml.Attr{
				{Name: xml.Name{Local: "node"}, Value: n.Name}, {Name: xml.Name{Local: "affiliation"}, Value: "owner"}}))
		}
	}
	return w.Result(stanza.Elem(namePubSub, nil, stanza.Elem(xml.Name{Space: nsPubSub, Local: "affiliations"}, nodeAttrs(req.node), affs...)))
}

// items answers an items request of requester to owner's node.
func (m *Module) items(ctx context.Context, owner, requester jid.JID, req request, w server.ResponseWriter) error {
	u := owner.String()
	cfg, err := m.node(ctx, u, req.node)
	if err != nil {
		return err
	}
	if err := m.allowed(ctx, owner, requester, cfg); err != nil {
		return err
	}
	its, err := m.store.PEPItems(ctx, u, req.node, req.ids, req.max)
	if errors.Is(err, storage.ErrNotFound) {
		return errNoNode
	}
	if err != nil {
		return fmt.Errorf("pep: %w", err)
	}
	if len(req.ids) > 0 && len(its) == 0 {
		return failure(mstanza.Cancel, mstanza.ItemNotFound, "")
	}
	return w.Result(stanza.Elem(namePubSub, nil, itemsElem(nsPubSub, req.node, its)))
}

// itemsElem is <items node='…'/> with the items, in namespace ns.
func itemsElem(ns, node string, its []storage.PEPItem) xml.TokenReader {
	children := make([]xml.TokenReader, 0, len(its))
	for _, it := range its {
		children = append(children, stanza.Elem(xml.Name{Space: ns, Local: "item"},
			[]xml.Attr{{Name: xml.Name{Local: "id"}, Value: it.ID}}, stanza.Tokens(stanza.Raw(it.Payload))))
	}
	return stanza.Elem(xml.Name{Space: ns, Local: "items"}, nodeAttrs(node), children...)
}

// allowed checks the node's access model for requester; the error is the
// one XEP-0060 §6.5.9 prescribes.
func (m *Module) allowed(ctx context.Context, owner, requester jid.JID, cfg nodeConfig) error {
	if requester.Bare().Equal(owner) || cfg.Access == AccessOpen {
		return nil
	}
	if cfg.Access == AccessWhitelist {
		return failure(mstanza.Cancel, mstanza.NotAllowed, "closed-node")
	}
	it, ok, err := m.roster.Item(ctx, owner, requester)
	if err != nil {
		return fmt.Errorf("pep: %w", err)
	}
	switch cfg.Access {
	case AccessPresence:
		if ok && (it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth) {
			return nil
		}
		return failure(mstanza.Auth, mstanza.NotAuthorized, "presence-subscription-required")
	case AccessRoster:
		if ok && !it.Hidden && slices.ContainsFunc(it.Groups, func(g string) bool { return slices.Contains(cfg.RosterGroups, g) }) {
			return nil
		}
		return failure(mstanza.Auth, mstanza.NotAuthorized, "not-in-roster-group")
	}
	return failure(mstanza.Cancel, mstanza.NotAllowed, "closed-node")
}

// newItemID returns a random item id.
func newItemID() string {
	var b [10]byte
	rand.Read(b[:])
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}

var (
	_ server.Initializer      = (*Module)(nil)
	_ server.IQProvider       = (*Module)(nil)
	_ server.FeatureProvider  = (*Module)(nil)
	_ server.IdentityProvider = (*Module)(nil)
	_ server.UserDataOwner    = (*Module)(nil)
)

package caps

import (
	"context"
	"slices"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	capsinfo "github.com/kiez-im/kiez/stanza/caps"
)

// Remote entities (federation): the presence a contact on another
// server sends a local account carries its caps too. The module keeps,
// per remote full JID, the ver it advertised, the local accounts it sent
// available presence to, and its features once known; unknown vers are
// asked for with disco#info over s2s, from the recipient's domain, and
// verified and cached as for local clients.

// RemoteListener is told that the remote full JID full, whose features
// are feats, sent available presence to the local account (a bare JID)
// (see Module.WatchRemote).
type RemoteListener func(ctx context.Context, full, account jid.JID, feats Features)

// WatchRemote has f told, for each local account a remote full JID sent
// available presence to, once: when the features of its caps become
// known (for every such account then), or when it first sends presence
// to an account after they became known (for that account only); again
// for each account when its caps change. f must not block for long.
// Call WatchRemote before server.New; it panics afterwards.
func (m *Module) WatchRemote(f RemoteListener) {
	if m.started.Load() {
		panic("caps: WatchRemote called after the server was built")
	}
	m.remoteWatchers = append(m.remoteWatchers, f)
}

// notifyRemote tells the remote listeners that full, with features f,
// sent presence to each of accounts.
func (m *Module) notifyRemote(ctx context.Context, full jid.JID, accounts []jid.JID, f Features) {
	for _, account := range accounts {
		for _, w := range m.remoteWatchers {
			w(ctx, full, account, f)
		}
	}
}

// Limits of what is kept of remote entities.
const (
	// maxRemote bounds the remote full JIDs followed; a presence from
	// one more is not followed.
	maxRemote = 4096
	// maxAudience bounds the local accounts remembered per remote
	// full JID.
	maxAudience = 64
)

// remoteCaps is what the module knows of one remote full JID. Its
// fields are guarded by Module.mu.
type remoteCaps struct {
	full     jid.JID
	key      key
	node     string
	feats    Features
	known    bool
	asking   bool
	audience []jid.JID // local bare JIDs it sent available presence to
}

// remoteRoute reads the caps of presence from other servers to local
// accounts. It never stops a presence.
func (m *Module) remoteRoute() server.StanzaRoute {
	return server.StanzaRoute{
		Side: filter.Receive, Kind: stanza.Presence, Types: []string{"", "unavailable"},
		Handler: server.RouteHandlerFunc(func(ctx context.Context, d *server.Delivery) error {
			if d.Origin == filter.Remote {
				m.remotePresence(ctx, d.Account, d.Stanza)
			}
			return nil
		}),
	}
}

// remotePresence takes presence p from a remote entity to the local
// account.
func (m *Module) remotePresence(ctx context.Context, account jid.JID, p *stanza.Stanza) {
	full := p.From
	if m.host == nil || full.Resourcepart() == "" || m.host.IsLocal(full.Domainpart()) {
		return
	}
	id := full.String()
	account = account.Bare()
	m.mu.Lock()
	if m.remote == nil {
		m.remote = make(map[string]*remoteCaps)
	}
	rc := m.remote[id]
	if p.Type == "unavailable" {
		if rc != nil {
			rc.audience = slices.DeleteFunc(rc.audience, account.Equal)
			if len(rc.audience) == 0 {
				m.forgetRemoteLocked(id, rc)
			}
		}
		m.mu.Unlock()
		return
	}
	c, found := capsinfo.FromStanza(p)
	if rc == nil {
		if len(m.remote) >= maxRemote {
			m.mu.Unlock()
			return
		}
		rc = &remoteCaps{full: full}
		m.remote[id] = rc
		bare := full.Bare().String()
		if m.remoteBare == nil {
			m.remoteBare = make(map[string][]*remoteCaps)
		}
		m.remoteBare[bare] = append(m.remoteBare[bare], rc)
	}
	newAudience := !slices.ContainsFunc(rc.audience, account.Equal) && len(rc.audience) < maxAudience
	if newAudience {
		rc.audience = append(rc.audience, account)
	}
	if found {
		k := key{c.Hash, c.Ver}
		if c.Legacy() || !capsinfo.Supported(c.Hash) {
			k = key{}
		}
		if k != rc.key {
			rc.key, rc.node, rc.feats, rc.known = k, c.Node, Features{}, false
		}
	}
	if rc.key == (key{}) {
		m.mu.Unlock()
		return
	}
	var tell []jid.JID // the accounts to tell of the features
	if !rc.known {
		if f, ok := m.cache.get(rc.key); ok {
			rc.feats, rc.known = f, true
			tell = slices.Clone(rc.audience)
		}
	} else if newAudience {
		tell = []jid.JID{account}
	}
	if rc.known {
		feats := rc.feats
		m.mu.Unlock()
		m.notifyRemote(ctx, full, tell, feats)
		return
	}
	start := !rc.asking && !m.failedLocked(rc.key, full)
	if start {
		rc.asking = true
	}
	k, node := rc.key, rc.node
	m.mu.Unlock()
	if start {
		m.host.Go(func(ctx context.Context) { m.askRemote(ctx, account.Domain(), full, node, k) })
	}
}

// askRemote asks the remote full JID for the disco#info of k from the
// local domain from, and gives it the features if they verify.
func (m *Module) askRemote(ctx context.Context, from, full jid.JID, node string, k key) {
	feats, err := m.ask(ctx, from, full, node, k)
	id := full.String()
	m.mu.Lock()
	rc := m.remote[id]
	if rc != nil {
		rc.asking = false
	}
	if err != nil {
		if ctx.Err() == nil {
			m.failLocked(k, full)
			m.log.Debug("remote caps not verified", "hash", k.hash, "reason", reason(err))
		}
		m.mu.Unlock()
		return
	}
	m.cache.add(k, feats)
	var tell []jid.JID
	if rc != nil && rc.key == k && !rc.known {
		rc.feats, rc.known = feats, true
		tell = slices.Clone(rc.audience)
	}
	m.mu.Unlock()
	m.notifyRemote(ctx, full, tell, feats)
}

// forgetRemoteLocked stops following the remote full JID id.
func (m *Module) forgetRemoteLocked(id string, rc *remoteCaps) {
	delete(m.remote, id)
	bare := rc.full.Bare().String()
	rs := slices.DeleteFunc(m.remoteBare[bare], func(x *remoteCaps) bool { return x == rc })
	if len(rs) == 0 {
		delete(m.remoteBare, bare)
	} else {
		m.remoteBare[bare] = rs
	}
}

// remoteFeatures is Features for a remote full JID.
func (m *Module) remoteFeatures(full jid.JID) (Features, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rc := m.remote[full.String()]
	if rc == nil {
		return Features{}, false
	}
	return rc.feats, rc.known
}

// RemoteResources returns the full JIDs of the remote account bare (on
// another server) that sent available presence to a local account and
// did not go unavailable since, in no particular order.
func (m *Module) RemoteResources(bare jid.JID) []jid.JID {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.remoteBare[bare.Bare().String()]
	out := make([]jid.JID, 0, len(rs))
	for _, rc := range rs {
		out = append(out, rc.full)
	}
	return out
}

// Audience returns the local accounts (bare JIDs) that the remote full
// JID full sent available presence to, as far as the module follows it.
func (m *Module) Audience(full jid.JID) []jid.JID {
	m.mu.Lock()
	defer m.mu.Unlock()
	rc := m.remote[full.String()]
	if rc == nil {
		return nil
	}
	return slices.Clone(rc.audience)
}

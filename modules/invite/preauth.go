package invite

import (
	"context"
	"encoding/xml"
	"errors"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/modules/register"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// FilterPriority is the place of the pre-authenticated subscription
// filter among the modules' filters: below blocking's (1000), so a
// blocked account's request stays blocked, and above strangers' (900), so
// an invited stranger's request is not refused.
const FilterPriority = 950

var preauthName = xml.Name{Space: register.NSPreauth, Local: "preauth"}

// claim marks the invitation with hash h as being used, so that no other
// redemption takes it meanwhile; false if one already does.
func (m *Module) claim(h string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy[h] {
		return false
	}
	m.busy[h] = true
	return true
}

// release ends claim.
func (m *Module) release(h string) {
	m.mu.Lock()
	delete(m.busy, h)
	m.mu.Unlock()
}

// CheckToken implements register.TokenChecker for XEP-0445's <preauth/>:
// nil if token is a valid invitation for an account on domain that no
// registration is using right now. It uses nothing up.
func (m *Module) CheckToken(ctx context.Context, token, domain string) error {
	rec, _, err := m.lookup(ctx, token)
	if err != nil {
		return err
	}
	if rec.Domain != domain {
		return register.ErrInvalidToken
	}
	m.mu.Lock()
	busy := m.busy[hashToken(token)]
	m.mu.Unlock()
	if busy {
		return register.ErrInvalidToken
	}
	return nil
}

// Filters puts XEP-0379's check on the recipient's side of subscription
// requests.
func (m *Module) Filters() []server.ModuleFilter {
	return []server.ModuleFilter{{Priority: FilterPriority, Filter: filter.Only(filter.Receive, filter.Func(m.preauthFilter))}}
}

// preauthFilter implements XEP-0379 for people who already have an
// account: a subscription request to the inviter carrying
// <preauth xmlns='urn:xmpp:pars:0' token='…'/> with a valid contact
// invitation of that inviter uses the invitation up and makes the two
// mutual contacts without asking the inviter, who consented by inviting.
// A local requester's roster is set at once (both items subscription
// both, pushed to both, current presence exchanged) and the request
// ends there; a remote requester's request goes on pre-approved
// (RFC 6121 §3.4), so the presence module answers it with subscribed,
// and the inviter asks for the requester's presence in return.
//
// A request with an unknown, expired or used token, or one that is not
// the inviter's, goes on without the <preauth/> element as an ordinary
// request for the inviter to answer.
func (m *Module) preauthFilter(ctx context.Context, p filter.Packet) (*stanza.Stanza, error) {
	st := p.Stanza
	if st.Kind != stanza.Presence || st.Type != "subscribe" || m.roster == nil || p.Account.Localpart() == "" {
		return st, nil
	}
	el, ok := st.ChildElement(preauthName)
	if !ok {
		return st, nil
	}
	plain := st.WithoutChildren(func(e stanza.Element) bool { return e.Start().Name == preauthName })
	inviter, requester := p.Account.Bare(), st.From.Bare()
	if requester.Localpart() == "" || requester.Equal(inviter) {
		return plain, nil
	}
	token := el.Attr("token")
	if !validToken(token) {
		return plain, nil
	}
	h := hashToken(token)
	if !m.claim(h) {
		return plain, nil
	}
	defer m.release(h)
	rec, _, err := m.lookup(ctx, token)
	if err != nil {
		if !errors.Is(err, register.ErrInvalidToken) {
			m.log.Warn("reading an invitation failed; the request goes on without it", "err", err)
		}
		return plain, nil
	}
	if rec.Kind != KindContact || rec.Creator != inviter.String() {
		return plain, nil
	}
	if err := m.remove(ctx, h, rec.Creator); err != nil {
		m.log.Warn("deleting a used invitation failed; the request goes on without it", "err", err)
		return plain, nil
	}
	if m.host.IsLocal(requester.Domainpart()) {
		if !m.host.UserExists(ctx, requester) {
			return nil, filter.ErrDrop
		}
		if err := m.befriend(ctx, inviter, requester); err != nil {
			return nil, err
		}
		m.showPresence(ctx, inviter, requester)
		m.showPresence(ctx, requester, inviter)
		return nil, filter.ErrDrop
	}
	err = m.roster.Update(ctx, inviter, requester, func(it storage.RosterItem, _ bool) (storage.RosterItem, bool, error) {
		it.Approved, it.Hidden = true, false
		if it.Subscription != storage.SubTo && it.Subscription != storage.SubBoth {
			it.Ask = true
		}
		return it, false, nil
	})
	if err != nil {
		return nil, err
	}
	ask := &stanza.Stanza{Kind: stanza.Presence, Type: "subscribe", From: inviter, To: requester}
	if err := m.host.Router().Route(ctx, ask); err != nil {
		m.log.Warn("asking for the invitee's presence failed", "err", err)
	}
	return plain, nil
}

// showPresence sends the current presence of each of from's available
// sessions to the account to, as RFC 6121 §3.1.5 does once a
// subscription is approved.
func (m *Module) showPresence(ctx context.Context, from, to jid.JID) {
	for _, sess := range m.host.Sessions(from) {
		p := sess.Presence()
		if p == nil {
			continue
		}
		p = p.Clone()
		p.From, p.To = sess.JID(), to
		if err := m.host.Router().Route(ctx, p); err != nil {
			m.log.Warn("showing presence failed", "err", err)
		}
	}
}

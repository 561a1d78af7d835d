package muc

import (
	"context"
	"encoding/xml"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// adminItem is one <item/> of a muc#admin set.
type adminItem struct {
	nick, role, aff, reason string
	jid                     jid.JID
	target                  *occupant // the occupant of nick, for role changes
}

// admin handles muc#admin (XEP-0045 §8 moderator and §9 admin use cases).
func (r *room) admin(ctx context.Context, m *Module, st *stanza.Stanza, q stanza.Element) ([]*stanza.Stanza, error) {
	actorAff := r.aff(m, st.From)
	actor := r.real[st.From.String()]
	if st.Type == stanza.Get {
		return r.adminList(m, st, q, actorAff, actor)
	}
	var items []adminItem
	for el := range q.Children() {
		if el.Name.Local != "item" {
			continue
		}
		it := adminItem{nick: el.Attr("nick"), role: el.Attr("role"), aff: el.Attr("affiliation")}
		if reason, ok := el.Child(xml.Name{Space: NSAdmin, Local: "reason"}); ok {
			it.reason = reason.Text()
		}
		if v := el.Attr("jid"); v != "" {
			j, err := parseItemJID(v)
			if err != nil {
				return nil, err
			}
			it.jid = j
		}
		if err := r.checkItem(m, &it, actorAff, actor); err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, stanza.NewError(mstanza.Modify, mstanza.BadRequest, "No item")
	}
	out := []*stanza.Stanza{st.ResultReply(nil)}
	actorNick := ""
	if actor != nil {
		actorNick = actor.nick
	}
	for _, it := range items {
		if it.aff != "" {
			o, err := r.changeAff(ctx, m, it.jid, it.aff, it.reason, actorNick)
			if err != nil {
				return nil, err
			}
			out = append(out, o...)
			continue
		}
		if it.target == nil || r.occ[it.target.nick] != it.target {
			continue // gone meanwhile (an earlier item)
		}
		po := presOpts{actor: actorNick, reason: it.reason}
		if it.role == roleNone {
			po.codes = []int{307}
			out = append(out, r.removeOccupant(m, it.target, po)...)
			continue
		}
		it.target.role = it.role
		out = append(out, r.broadcast(m, it.target, po)...)
	}
	return append(out, r.emptied(ctx, m)...), nil
}

// checkItem checks that the actor may make the change it asks for.
func (r *room) checkItem(m *Module, it *adminItem, actorAff string, actor *occupant) error {
	notAllowed := stanza.NewError(mstanza.Cancel, mstanza.NotAllowed, "You may not do that")
	if it.aff != "" {
		switch it.aff {
		case storage.AffOwner, storage.AffAdmin, storage.AffMember, storage.AffOutcast, "none":
		default:
			return stanza.NewError(mstanza.Modify, mstanza.BadRequest, "Unknown affiliation")
		}
		if it.jid.Equal(jid.JID{}) {
			o, ok := r.occ[it.nick]
			if !ok || it.nick == "" {
				return stanza.NewError(mstanza.Modify, mstanza.BadRequest, "An affiliation change needs a jid")
			}
			it.jid = o.bare
		}
		if affRank(actorAff) < affRank(storage.AffAdmin) {
			return stanza.NewError(mstanza.Auth, mstanza.Forbidden, "Only admins change affiliations")
		}
		cur := r.aff(m, it.jid)
		if m.isAdmin(it.jid) {
			return notAllowed
		}
		if actorAff != storage.AffOwner && (affRank(cur) >= affRank(storage.AffAdmin) || affRank(it.aff) >= affRank(storage.AffAdmin)) {
			return notAllowed
		}
		if cur == storage.AffOwner && it.aff != storage.AffOwner && len(r.list(storage.AffOwner)) <= 1 {
			return stanza.NewError(mstanza.Cancel, mstanza.Conflict, "A room needs an owner")
		}
		return nil
	}
	switch it.role {
	case roleNone, roleVisitor, roleParticipant, roleModerator:
	default:
		return stanza.NewError(mstanza.Modify, mstanza.BadRequest, "An item needs a role or an affiliation")
	}
	if actor == nil || actor.role != roleModerator {
		return stanza.NewError(mstanza.Auth, mstanza.Forbidden, "Only moderators change roles")
	}
	o, ok := r.occ[it.nick]
	if !ok {
		return stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "No such occupant")
	}
	it.target = o
	targetAff := r.aff(m, o.primary().jid)
	switch {
	case it.role == roleNone && affRank(targetAff) >= affRank(storage.AffAdmin):
		return notAllowed // §8.2: admins and owners cannot be kicked
	case it.role == roleModerator && affRank(actorAff) < affRank(storage.AffAdmin):
		return notAllowed // §9.6: admins grant moderator status
	case o.role == roleModerator && it.role != roleModerator && (affRank(targetAff) >= affRank(storage.AffAdmin) || affRank(actorAff) < affRank(storage.AffAdmin)):
		return notAllowed // §9.7
	}
	return nil
}

// changeAff sets the affiliation of j and applies it to its occupants: a
// ban removes them (301), losing membership of a members-only room too
// (321); others get the role that goes with the affiliation.
func (r *room) changeAff(ctx context.Context, m *Module, j jid.JID, aff, reason, actor string) ([]*stanza.Stanza, error) {
	if err := r.setAff(ctx, m, j.String(), aff, reason); err != nil {
		return nil, err
	}
	var out []*stanza.Stanza
	for _, o := range r.occupants() {
		if !o.bare.Equal(j) && !(j.Localpart() == "" && o.bare.Domainpart() == j.Domainpart()) {
			continue
		}
		newAff := r.aff(m, o.primary().jid)
		po := presOpts{actor: actor, reason: reason}
		switch {
		case newAff == storage.AffOutcast:
			po.codes = []int{301}
			out = append(out, r.removeOccupant(m, o, po)...)
		case r.cfg.MembersOnly && affRank(newAff) < affRank(storage.AffMember):
			po.codes = []int{321}
			out = append(out, r.removeOccupant(m, o, po)...)
		default:
			o.role = r.defaultRole(newAff)
			out = append(out, r.broadcast(m, o, po)...)
		}
	}
	return out, nil
}

// adminList answers a muc#admin get: the occupants of a role (moderators
// ask) or the holders of an affiliation (admins ask).
func (r *room) adminList(m *Module, st *stanza.Stanza, q stanza.Element, actorAff string, actor *occupant) ([]*stanza.Stanza, error) {
	it, ok := q.Child(xml.Name{Space: NSAdmin, Local: "item"})
	if !ok {
		return nil, stanza.NewError(mstanza.Modify, mstanza.BadRequest, "No item")
	}
	var items []xmlReader
	if role := it.Attr("role"); role != "" {
		if actor == nil || actor.role != roleModerator {
			return nil, stanza.NewError(mstanza.Auth, mstanza.Forbidden, "Only moderators list roles")
		}
		for _, o := range r.occupants() {
			if o.role == role {
				items = append(items, elem(NSAdmin, "item", attrs("nick", o.nick, "role", o.role,
					"affiliation", r.aff(m, o.primary().jid), "jid", o.primary().jid.String())))
			}
		}
	} else {
		aff := it.Attr("affiliation")
		switch aff {
		case storage.AffOwner, storage.AffAdmin, storage.AffMember, storage.AffOutcast:
		default:
			return nil, stanza.NewError(mstanza.Modify, mstanza.BadRequest, "Unknown affiliation")
		}
		// Admins read every list; members the member list, and in a
		// non-anonymous room the owner and admin lists too (clients
		// such as Conversations need them for end-to-end encryption).
		member := affRank(actorAff) >= affRank(storage.AffMember)
		if affRank(actorAff) < affRank(storage.AffAdmin) &&
			!(member && (aff == storage.AffMember || (r.cfg.Whois == whoisAnyone && aff != storage.AffOutcast))) {
			return nil, stanza.NewError(mstanza.Auth, mstanza.Forbidden, "Only admins list affiliations")
		}
		for _, j := range r.list(aff) {
			e := r.affs[j]
			var ch []xmlReader
			if e.reason != "" {
				ch = append(ch, text(NSAdmin, "reason", e.reason))
			}
			items = append(items, elem(NSAdmin, "item", attrs("affiliation", aff, "jid", j, "nick", e.nick), ch...))
		}
	}
	return []*stanza.Stanza{st.ResultReply(elem(NSAdmin, "query", nil, items...))}, nil
}

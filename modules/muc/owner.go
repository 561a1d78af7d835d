package muc

import (
	"context"
	"encoding/xml"
	"errors"
	"slices"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
)

// owner handles muc#owner (XEP-0045 §10): the configuration form, its
// submission (which unlocks a new room), and destruction.
func (r *room) owner(ctx context.Context, m *Module, st *stanza.Stanza, q stanza.Element) ([]*stanza.Stanza, error) {
	if r.aff(m, st.From) != storage.AffOwner {
		return nil, stanza.NewError(mstanza.Auth, mstanza.Forbidden, "Only owners configure the room")
	}
	if st.Type == stanza.Get {
		f := m.configForm(&r.cfg, r.list(storage.AffAdmin), r.list(storage.AffOwner))
		for i, fd := range f.Fields {
			if fd.Var != "muc#roomconfig_enablearchiving" {
				continue
			}
			if m.archive == nil {
				// No archive to enable.
				f.Fields = append(f.Fields[:i:i], f.Fields[i+1:]...)
			} else {
				f.Fields = slices.Insert(f.Fields, i+1, m.retentionField(&r.cfg))
			}
			break
		}
		return []*stanza.Stanza{st.ResultReply(elem(NSOwner, "query", nil, f.TokenReader()))}, nil
	}
	if d, ok := q.Child(xml.Name{Space: NSOwner, Local: "destroy"}); ok {
		var alt jid.JID
		if v := d.Attr("jid"); v != "" {
			j, err := jid.Parse(v)
			if err != nil {
				return nil, stanza.NewError(mstanza.Modify, mstanza.JIDMalformed, "Bad alternate venue")
			}
			alt = j
		}
		reason, _ := d.Child(xml.Name{Space: NSOwner, Local: "reason"})
		pw, _ := d.Child(xml.Name{Space: NSOwner, Local: "password"})
		out := []*stanza.Stanza{st.ResultReply(nil)}
		return append(out, r.destroy(ctx, m, alt, reason.Text(), pw.Text())...), nil
	}
	x, ok := q.Child(nameFormX)
	if !ok {
		return nil, stanza.NewError(mstanza.Modify, mstanza.BadRequest, "Expected a form or <destroy/>")
	}
	f, err := form.Parse(stanza.Tokens(x.Tokens()...))
	if err != nil {
		return nil, stanza.NewError(mstanza.Modify, mstanza.BadRequest, "Bad form")
	}
	switch f.Type {
	case form.TypeCancel:
		out := []*stanza.Stanza{st.ResultReply(nil)}
		if r.locked {
			// §10.1.2: cancelling the initial configuration destroys the room.
			out = append(out, r.destroy(ctx, m, jid.JID{}, "", "")...)
		}
		return out, nil
	case form.TypeSubmit:
	default:
		return nil, stanza.NewError(mstanza.Modify, mstanza.BadRequest, "Expected a submitted form")
	}
	ch, err := applyConfigForm(f, r.cfg, m.opts.MaxOccupants, m.opts.MaxHistory)
	if err == nil {
		err = m.applyRetention(f, &ch.cfg)
	}
	if err != nil {
		return nil, stanza.NewError(mstanza.Modify, mstanza.NotAcceptable, err.Error())
	}
	if ch.cfg.Archiving && m.archive == nil {
		ch.cfg.Archiving = false
	}
	if ch.setOwners && len(ch.owners) == 0 {
		return nil, stanza.NewError(mstanza.Cancel, mstanza.Conflict, "A room needs an owner")
	}
	return r.reconfigure(ctx, m, st, ch)
}

// reconfigure applies a submitted configuration and tells the occupants
// what changed (XEP-0045 §10.2.1).
func (r *room) reconfigure(ctx context.Context, m *Module, st *stanza.Stanza, ch configChange) ([]*stanza.Stanza, error) {
	old := r.cfg
	wasLocked := r.locked
	r.cfg = ch.cfg
	r.locked = false
	out := []*stanza.Stanza{st.ResultReply(nil)}
	var errs []error
	replace := func(aff string, want []jid.JID) {
		keep := make(map[string]bool, len(want))
		for _, j := range want {
			keep[j.String()] = true
		}
		for _, j := range r.list(aff) {
			if !keep[j] {
				o, err := r.changeAff(ctx, m, jid.MustParse(j), "none", "", "")
				errs = append(errs, err)
				out = append(out, o...)
			}
		}
		for _, j := range want {
			if r.affs[j.String()].aff != aff {
				o, err := r.changeAff(ctx, m, j, aff, "", "")
				errs = append(errs, err)
				out = append(out, o...)
			}
		}
	}
	if ch.setOwners {
		replace(storage.AffOwner, ch.owners)
	}
	if ch.setAdmins {
		replace(storage.AffAdmin, ch.admins)
	}
	errs = append(errs, r.save(ctx, m))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if wasLocked {
		return out, nil
	}
	codes := []int{104}
	if old.Whois != r.cfg.Whois {
		if r.cfg.Whois == whoisAnyone {
			codes = append(codes, 172)
		} else {
			codes = append(codes, 173)
		}
	}
	if old.Archiving != r.cfg.Archiving {
		if r.cfg.Archiving {
			codes = append(codes, 170)
		} else {
			codes = append(codes, 171)
		}
	}
	out = append(out, r.notice(codes...)...)
	if r.cfg.MembersOnly && !old.MembersOnly {
		// §9.3: non-members leave a room that becomes members-only (322).
		for _, o := range r.occupants() {
			if affRank(r.aff(m, o.primary().jid)) < affRank(storage.AffMember) {
				out = append(out, r.removeOccupant(m, o, presOpts{codes: []int{322}})...)
			}
		}
	}
	if r.cfg.Moderated != old.Moderated {
		for _, o := range r.occupants() {
			if role := r.defaultRole(r.aff(m, o.primary().jid)); o.role != roleModerator && role != o.role {
				o.role = role
				out = append(out, r.broadcast(m, o, presOpts{})...)
			}
		}
	}
	return append(out, r.emptied(ctx, m)...), nil
}

package muc

import (
	"context"
	"encoding/xml"
	"slices"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
)

var (
	nameBody    = xml.Name{Space: stanza.NSClient, Local: "body"}
	nameSubject = xml.Name{Space: stanza.NSClient, Local: "subject"}
	nameUserX   = xml.Name{Space: NSUser, Local: "x"}
	nameFormX   = xml.Name{Space: form.NS, Local: "x"}
)

// message handles messages to a room or to an occupant.
func (m *Module) message(ctx context.Context, st *stanza.Stanza) error {
	return m.withRoom(ctx, st.To.Bare(), func(r *room) ([]*stanza.Stanza, error) {
		if r == nil || r.locked {
			return nil, stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "")
		}
		if st.Type == stanza.Error {
			if !kickable(st) {
				return nil, nil
			}
			// A client bounced what the room sent it: drop that session
			// (as Prosody does), so it stops costing every message.
			return r.leave(ctx, m, st.From, nil, []int{333}, nil), nil
		}
		if st.To.Resourcepart() != "" {
			return r.private(m, st)
		}
		if st.Type == "groupchat" {
			return r.groupchat(ctx, m, st)
		}
		if x, ok := st.ChildElement(nameUserX); ok {
			if inv, ok := x.Child(xml.Name{Space: NSUser, Local: "invite"}); ok {
				return r.invite(ctx, m, st, inv)
			}
			if dec, ok := x.Child(xml.Name{Space: NSUser, Local: "decline"}); ok {
				return r.decline(st, dec)
			}
		}
		if fx, ok := st.ChildElement(nameFormX); ok {
			return r.request(m, st, fx)
		}
		return nil, stanza.NewError(mstanza.Modify, mstanza.BadRequest, "Send groupchat messages to the room")
	})
}

// sender returns the occupant whose session is from.
func (r *room) sender(from jid.JID) (*occupant, error) {
	o, ok := r.real[from.String()]
	if !ok {
		return nil, stanza.NewError(mstanza.Modify, mstanza.NotAcceptable, "You are not in the room")
	}
	return o, nil
}

// allow takes one token of o's message bucket.
func (m *Module) allow(o *occupant) bool {
	if m.opts.MessageRate < 0 {
		return true
	}
	now := m.now()
	o.tokens = min(float64(m.opts.MessageBurst), o.tokens+now.Sub(o.refill).Seconds()*m.opts.MessageRate)
	o.refill = now
	if o.tokens < 1 {
		return false
	}
	o.tokens--
	return true
}

// errRate is the answer to an occupant over its message rate (as
// Prosody's mod_muc_limits answers).
var errRate = stanza.NewError(mstanza.Wait, mstanza.PolicyViolation, "The room is currently overactive, please try again later")

// groupchat handles a message to the whole room: a subject change or a
// message fanned out to every occupant.
func (r *room) groupchat(ctx context.Context, m *Module, st *stanza.Stanza) ([]*stanza.Stanza, error) {
	o, err := r.sender(st.From)
	if err != nil {
		return nil, err
	}
	if o.role == roleVisitor || o.role == roleNone {
		return nil, stanza.NewError(mstanza.Auth, mstanza.Forbidden, "Visitors may not speak in this room")
	}
	subject, isSubject := st.ChildText(nameSubject)
	_, hasBody := st.ChildElement(nameBody)
	if isSubject && !hasBody {
		if o.role != roleModerator && !r.cfg.ChangeSubject {
			return nil, stanza.NewError(mstanza.Auth, mstanza.Forbidden, "You may not change the subject")
		}
	}
	retract, isRetract := st.ChildElement(nameRetract)
	if isRetract {
		if err := r.checkRetraction(ctx, m, o, retract.Attr("id")); err != nil {
			return nil, err
		}
	}
	if !m.allow(o) {
		return nil, errRate
	}
	msg := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", ID: st.ID, Lang: st.Lang, From: r.occJID(o.nick), Attrs: st.Attrs}
	for el := range st.Children() {
		if ownElement(el) || (el.Name.Space == NSSID && (el.Name.Local == "stanza-id" && el.Attr("by") == r.jid.String())) || el.Name.Space == NSDelay {
			continue
		}
		msg.Inner = append(msg.Inner, el.Tokens()...)
	}
	msg.AppendChild(elem(NSOccID, "occupant-id", attrs("id", m.occupantID(r.jid, o.bare))))
	r.publish(ctx, m, msg, hasBody || isSubject || roomArchivable(msg))
	if isSubject && !hasBody {
		r.cfg.Subject, r.cfg.SubjectNick = subject, o.nick
		if err := r.save(ctx, m); err != nil {
			m.log.Warn("muc: save subject", "err", err)
		}
	} else if hasBody {
		r.hist.add(msg, m.now(), r.cfg.History)
		r.markActive(ctx, m)
	}
	if isRetract {
		r.tombstone(ctx, m, retract.Attr("id"), elem(NSRetract, "retracted", attrs("stamp", m.stamp())))
	}
	return r.fanout(msg), nil
}

// roomArchivable reports whether a groupchat message without a body or
// subject is worth archiving: a retraction, an encrypted payload, a file
// link (XEP-0066), a reaction or a <store/> hint, never one with a
// <no-store/> or <no-permanent-store/> hint.
func roomArchivable(msg *stanza.Stanza) bool {
	c := stanza.Classify(msg)
	if c&(stanza.NoStore|stanza.NoPermanentStore) != 0 {
		return false
	}
	return c&(stanza.Retraction|stanza.OMEMO|stanza.EME|stanza.OOB|stanza.Reaction|stanza.Store) != 0
}

// publish gives msg, a groupchat message of the room, its stanza-id: the
// archive's, after appending it there when the room archives and store is
// set, else one of the service's.
func (r *room) publish(ctx context.Context, m *Module, msg *stanza.Stanza, store bool) {
	id := ""
	if store && r.archiving(m) {
		var err error
		if id, err = m.archive.Append(ctx, r.jid, msg); err != nil {
			m.log.Warn("muc: archive", "err", err)
			id = ""
		}
	}
	if id == "" {
		id = newStanzaID()
	}
	msg.AppendChild(elem(NSSID, "stanza-id", attrs("id", id, "by", r.jid.String())))
	msg.Inner = slices.Clip(msg.Inner)
}

// fanout addresses one copy of msg to every session of every occupant; the
// copies share msg's tokens, which nobody changes.
func (r *room) fanout(msg *stanza.Stanza) []*stanza.Stanza {
	out := make([]*stanza.Stanza, 0, len(r.real))
	for _, o := range r.occupants() {
		for _, s := range o.sessions {
			c := *msg
			c.To = s.jid
			out = append(out, &c)
		}
	}
	return out
}

// roomMessage returns a message from the room itself to to.
func (r *room) roomMessage(to jid.JID, children ...xmlReader) *stanza.Stanza {
	msg := &stanza.Stanza{Kind: stanza.Message, From: r.jid, To: to, ID: newStanzaID()}
	for _, c := range children {
		msg.AppendChild(c)
	}
	return msg
}

// notice returns a groupchat message with status codes (XEP-0045 §10.2.1)
// to every occupant.
func (r *room) notice(codes ...int) []*stanza.Stanza {
	msg := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", From: r.jid, ID: newStanzaID()}
	msg.AppendChild(elem(NSUser, "x", nil, statuses(codes)...))
	return r.fanout(msg)
}

// private relays a private message between occupants (XEP-0045 §7.5).
func (r *room) private(m *Module, st *stanza.Stanza) ([]*stanza.Stanza, error) {
	if st.Type == "groupchat" {
		return nil, stanza.NewError(mstanza.Modify, mstanza.BadRequest, "Groupchat messages go to the room")
	}
	o, err := r.sender(st.From)
	if err != nil {
		return nil, err
	}
	to, ok := r.occ[st.To.Resourcepart()]
	if !ok {
		return nil, stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "No such occupant")
	}
	switch r.cfg.AllowPM {
	case "none":
		return nil, stanza.NewError(mstanza.Cancel, mstanza.NotAllowed, "Private messages are disabled")
	case "participants":
		if roleRank(o.role) < roleRank(roleParticipant) {
			return nil, stanza.NewError(mstanza.Cancel, mstanza.NotAllowed, "Private messages are disabled for visitors")
		}
	case "moderators":
		if o.role != roleModerator {
			return nil, stanza.NewError(mstanza.Cancel, mstanza.NotAllowed, "Only moderators may send private messages")
		}
	}
	if !m.allow(o) {
		return nil, errRate
	}
	msg := &stanza.Stanza{Kind: stanza.Message, Type: st.Type, ID: st.ID, Lang: st.Lang, From: r.occJID(o.nick), Attrs: st.Attrs}
	hasX := false
	for el := range st.Children() {
		if el.Name == nameUserX {
			hasX = true
		}
		if el.Name.Space == NSOccID {
			continue
		}
		msg.Inner = append(msg.Inner, el.Tokens()...)
	}
	if !hasX {
		msg.AppendChild(elem(NSUser, "x", nil))
	}
	msg.AppendChild(elem(NSOccID, "occupant-id", attrs("id", m.occupantID(r.jid, o.bare))))
	out := make([]*stanza.Stanza, 0, len(to.sessions))
	for _, s := range to.sessions {
		c := *msg
		c.To = s.jid
		out = append(out, &c)
	}
	return out, nil
}

// invite relays a mediated invitation (XEP-0045 §7.8.2); in a members-only
// room the invitee becomes a member when the inviter may make one.
func (r *room) invite(ctx context.Context, m *Module, st *stanza.Stanza, inv stanza.Element) ([]*stanza.Stanza, error) {
	o, err := r.sender(st.From)
	if err != nil {
		return nil, err
	}
	to, err := jid.Parse(inv.Attr("to"))
	if err != nil || to.Equal(jid.JID{}) {
		return nil, stanza.NewError(mstanza.Modify, mstanza.JIDMalformed, "Whom to invite?")
	}
	aff := r.aff(m, st.From)
	if r.cfg.MembersOnly {
		if affRank(aff) < affRank(storage.AffAdmin) && !(r.cfg.AllowInvites && affRank(aff) >= affRank(storage.AffMember)) && o.role != roleModerator {
			return nil, stanza.NewError(mstanza.Auth, mstanza.Forbidden, "You may not invite to this room")
		}
		if affRank(r.aff(m, to)) < affRank(storage.AffMember) {
			if r.aff(m, to) == storage.AffOutcast {
				return nil, stanza.NewError(mstanza.Auth, mstanza.Forbidden, "That address is banned")
			}
			if err := r.setAff(ctx, m, to.Bare().String(), storage.AffMember, ""); err != nil {
				return nil, err
			}
		}
	} else if !r.cfg.AllowInvites && o.role != roleModerator && affRank(aff) < affRank(storage.AffMember) {
		return nil, stanza.NewError(mstanza.Auth, mstanza.Forbidden, "You may not invite to this room")
	}
	reason, _ := inv.Child(xml.Name{Space: NSUser, Local: "reason"})
	var ic []xmlReader
	if reason.Text() != "" {
		ic = append(ic, text(NSUser, "reason", reason.Text()))
	}
	x := []xmlReader{elem(NSUser, "invite", attrs("from", st.From.Bare().String()), ic...)}
	if r.cfg.Password != "" {
		x = append(x, text(NSUser, "password", r.cfg.Password))
	}
	body := st.From.Bare().String() + " invites you to the room " + r.jid.String()
	if reason.Text() != "" {
		body += ": " + reason.Text()
	}
	return []*stanza.Stanza{r.roomMessage(to, elem(NSUser, "x", nil, x...), text(stanza.NSClient, "body", body))}, nil
}

// decline relays an invitee's decline to the inviter (§7.8.2).
func (r *room) decline(st *stanza.Stanza, dec stanza.Element) ([]*stanza.Stanza, error) {
	to, err := jid.Parse(dec.Attr("to"))
	if err != nil || to.Equal(jid.JID{}) {
		return nil, stanza.NewError(mstanza.Modify, mstanza.JIDMalformed, "Whom to decline?")
	}
	var dc []xmlReader
	if reason, ok := dec.Child(xml.Name{Space: NSUser, Local: "reason"}); ok {
		dc = append(dc, text(NSUser, "reason", reason.Text()))
	}
	return []*stanza.Stanza{r.roomMessage(to, elem(NSUser, "x", nil, elem(NSUser, "decline", attrs("from", st.From.Bare().String()), dc...)))}, nil
}

// request handles the muc#request form (XEP-0045 §8.6): a visitor asks
// for voice, and the moderators get the form to approve; a moderator's
// approval grants it.
func (r *room) request(m *Module, st *stanza.Stanza, fx stanza.Element) ([]*stanza.Stanza, error) {
	f, err := form.Parse(stanza.Tokens(fx.Tokens()...))
	if err != nil || f.FormType() != nsRequest {
		return nil, stanza.NewError(mstanza.Modify, mstanza.BadRequest, "Not a muc#request form")
	}
	o, err := r.sender(st.From)
	if err != nil {
		return nil, err
	}
	if _, ok := f.Value("muc#request_allow"); ok && o.role == roleModerator {
		// An approval.
		if !f.Bool("muc#request_allow") {
			return nil, nil
		}
		nick, _ := f.Value("muc#roomnick")
		target, ok := r.occ[nick]
		if !ok {
			return nil, stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "No such occupant")
		}
		if target.role != roleVisitor {
			return nil, nil
		}
		target.role = roleParticipant
		return r.broadcast(m, target, presOpts{actor: o.nick}), nil
	}
	if o.role != roleVisitor {
		return nil, nil // nothing to ask for
	}
	if !m.allow(o) {
		return nil, errRate
	}
	ask := &form.Form{Type: form.TypeForm, Title: "Voice request", Instructions: "To approve this request for voice, select the \"Grant voice\" box and submit the form.",
		Fields: []form.Field{
			form.FormTypeField(nsRequest),
			{Var: "muc#role", Type: form.ListSingle, Label: "Requested role", Values: []string{roleParticipant}, Options: []form.Option{{Value: roleParticipant}}},
			{Var: "muc#roomnick", Type: form.TextSingle, Label: "Nick", Values: []string{o.nick}},
			{Var: "muc#request_allow", Type: form.Boolean, Label: "Grant voice", Values: []string{"0"}},
		}}
	// Moderators see real JIDs whatever the room's whois.
	ask.Fields = slices.Insert(ask.Fields, 2, form.Field{Var: "muc#jid", Type: form.JIDSingle, Label: "User", Values: []string{o.bare.String()}})
	var out []*stanza.Stanza
	for _, mod := range r.occupants() {
		if mod.role != roleModerator {
			continue
		}
		for _, s := range mod.sessions {
			out = append(out, r.roomMessage(s.jid, ask.TokenReader()))
		}
	}
	return out, nil
}

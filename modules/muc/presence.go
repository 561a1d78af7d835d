package muc

import (
	"context"
	"encoding/xml"
	"strconv"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// presOpts are the variable parts of an occupant's presence.
type presOpts struct {
	typ     string // "" or "unavailable"
	codes   []int  // status codes for everyone
	self    []int  // extra status codes for the occupant itself (110 is added)
	newNick string // item nick (303)
	actor   string // item actor nick
	reason  string // item reason
}

// canSee reports whether recv sees real JIDs.
func (r *room) canSee(recv *occupant) bool {
	return r.cfg.Whois == whoisAnyone || recv.role == roleModerator
}

// presenceOf builds o's presence for the session to; self marks a session
// of o itself.
func (r *room) presenceOf(m *Module, o *occupant, to jid.JID, showJID, self bool, po presOpts) *stanza.Stanza {
	p := &stanza.Stanza{Kind: stanza.Presence, Type: po.typ, From: r.occJID(o.nick), To: to}
	for _, el := range o.primary().pres {
		if po.typ == "" || el.Name.Local == "status" {
			p.Inner = append(p.Inner, el.Tokens()...)
		}
	}
	role := o.role
	if po.typ == "unavailable" {
		role = roleNone
	}
	a := attrs("affiliation", r.aff(m, o.primary().jid), "role", role, "nick", po.newNick)
	if showJID {
		a = append(a, stanza.Attr("jid", o.primary().jid.String()))
	}
	var ic []xmlReader
	if po.actor != "" {
		ic = append(ic, elem(NSUser, "actor", attrs("nick", po.actor)))
	}
	if po.reason != "" {
		ic = append(ic, text(NSUser, "reason", po.reason))
	}
	x := []xmlReader{elem(NSUser, "item", a, ic...)}
	codes := po.codes
	if self {
		codes = append(append([]int{110}, po.self...), codes...)
	}
	x = append(x, statuses(codes)...)
	p.AppendChild(elem(NSUser, "x", nil, x...))
	p.AppendChild(elem(NSOccID, "occupant-id", attrs("id", m.occupantID(r.jid, o.bare))))
	return p
}

// broadcast returns o's presence for every session in the room: the
// occupant's own sessions get the self variant, others get it if the
// room broadcasts o's role (always when it leaves).
func (r *room) broadcast(m *Module, o *occupant, po presOpts) []*stanza.Stanza {
	var out []*stanza.Stanza
	visible := r.cfg.broadcasts(o.role) || po.typ == "unavailable" || po.newNick != ""
	// Others get one of two variants, built once and addressed per
	// session (the copies share their tokens, which nobody changes).
	var variants [2]*stanza.Stanza
	for _, recv := range r.occupants() {
		self := recv == o
		if !self && !visible {
			continue
		}
		for _, s := range recv.sessions {
			if self {
				out = append(out, r.presenceOf(m, o, s.jid, true, true, po))
				continue
			}
			i := 0
			if r.canSee(recv) {
				i = 1
			}
			if variants[i] == nil {
				variants[i] = r.presenceOf(m, o, jid.JID{}, i == 1, false, po)
			}
			c := *variants[i]
			c.To = s.jid
			out = append(out, &c)
		}
	}
	if _, still := r.occ[o.nick]; !still || r.occ[o.nick] != o {
		// o has left: its own sessions are not among the occupants.
		for _, s := range o.sessions {
			out = append(out, r.presenceOf(m, o, s.jid, true, true, po))
		}
	}
	return out
}

// presence handles presence to room@service/nick.
func (m *Module) presence(ctx context.Context, st *stanza.Stanza) error {
	rj := st.To.Bare()
	if st.To.Resourcepart() == "" {
		if st.Type == "" {
			return stanza.NewError(mstanza.Modify, mstanza.JIDMalformed, "A nick is required")
		}
		return nil
	}
	switch st.Type {
	case "", "unavailable", stanza.Error:
	default:
		return nil // subscriptions and probes: rooms have no roster
	}
	return m.withRoom(ctx, rj, func(r *room) ([]*stanza.Stanza, error) {
		if r == nil {
			if st.Type != "" {
				return nil, nil
			}
			if err := m.mayCreate(ctx, st.From); err != nil {
				return nil, err
			}
			_, _, hasX := st.Child(xml.Name{Space: NS, Local: "x"})
			nr := m.create(rj, st.From, hasX)
			nr.mu.Lock()
			defer nr.mu.Unlock()
			if nr.gone {
				return nil, stanza.NewError(mstanza.Wait, mstanza.ResourceConstraint, "Try again")
			}
			created := len(nr.occ) == 0 && nr.ownedBy(st.From.Bare().String())
			out, err := nr.join(ctx, m, st, created)
			if err != nil && len(nr.occ) == 0 && !nr.stored {
				// The creator could not join (a bad nick): no room.
				nr.gone = true
				m.forget(nr)
			}
			return out, err
		}
		switch st.Type {
		case "unavailable":
			return r.leave(ctx, m, st.From, st, nil, nil), nil
		case stanza.Error:
			if _, ok := r.real[st.From.String()]; ok && kickable(st) {
				return r.leave(ctx, m, st.From, nil, []int{333}, nil), nil
			}
			return nil, nil
		}
		return r.join(ctx, m, st, false)
	})
}

// mayCreate checks the creation policy and the owner's room limit.
func (m *Module) mayCreate(ctx context.Context, from jid.JID) error {
	if m.isAdmin(from) {
		return nil
	}
	switch m.opts.Creation {
	case CreateLocal:
		if !m.host.IsLocal(from.Domainpart()) || from.Localpart() == "" {
			return stanza.NewError(mstanza.Cancel, mstanza.NotAllowed, "Only local accounts may create rooms")
		}
	case CreateAdmins:
		return stanza.NewError(mstanza.Cancel, mstanza.NotAllowed, "Only administrators may create rooms")
	}
	n, err := m.ownedRooms(ctx, from.Bare())
	if err != nil {
		return err
	}
	if n >= m.opts.MaxRoomsPerUser {
		return stanza.NewError(mstanza.Cancel, mstanza.NotAllowed, "You own too many rooms")
	}
	return nil
}

// ownedRooms counts the rooms user owns, stored or loaded.
func (m *Module) ownedRooms(ctx context.Context, user jid.JID) (int, error) {
	owned := make(map[string]bool)
	affs, err := m.store.UserAffiliations(ctx, user.String())
	if err != nil {
		return 0, err
	}
	for _, a := range affs {
		if a.Affiliation == storage.AffOwner {
			owned[a.Room] = true
		}
	}
	for _, r := range m.loadedRooms() {
		r.mu.Lock()
		if r.ownedBy(user.String()) && !r.gone {
			owned[r.jid.String()] = true
		}
		r.mu.Unlock()
	}
	return len(owned), nil
}

// join handles available presence from st.From to room/nick: a join, a
// second session of an occupant, a presence update or a nick change.
func (r *room) join(ctx context.Context, m *Module, st *stanza.Stanza, created bool) ([]*stanza.Stanza, error) {
	nick := st.To.Resourcepart()
	real := st.From
	pres := presenceElements(st)
	x, hasX := st.ChildElement(xml.Name{Space: NS, Local: "x"})
	if o, ok := r.real[real.String()]; ok {
		if o.nick != nick {
			return r.changeNick(m, o, nick, pres)
		}
		// A presence update; the updating session becomes the primary.
		i := o.session(real)
		s := o.sessions[i]
		s.pres = pres
		o.sessions = append(append(o.sessions[:i:i], o.sessions[i+1:]...), s)
		if !hasX {
			return r.broadcast(m, o, presOpts{}), nil
		}
		// A join from a session already joined (a client that lost
		// track, after a failed self-ping or a resumed stream): it gets
		// the whole join again, others only the update.
		var out []*stanza.Stanza
		for _, other := range r.occupants() {
			if other != o && r.cfg.broadcasts(other.role) {
				out = append(out, r.presenceOf(m, other, real, r.canSee(o), false, presOpts{}))
			}
		}
		out = append(out, r.broadcast(m, o, presOpts{})...)
		out = append(out, r.historyFor(ctx, m, real, x, hasX)...)
		return append(out, r.subjectMessage(real)), nil
	}
	if utf8.RuneCountInString(nick) > m.opts.MaxNickLength {
		return nil, stanza.NewError(mstanza.Modify, mstanza.NotAcceptable, "The nick is too long")
	}
	aff := r.aff(m, real)
	switch {
	case r.locked && aff != storage.AffOwner:
		return nil, stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "The room is not configured yet")
	case aff == storage.AffOutcast:
		return nil, stanza.NewError(mstanza.Auth, mstanza.Forbidden, "You are banned from this room")
	case r.cfg.MembersOnly && affRank(aff) < affRank(storage.AffMember):
		return nil, stanza.NewError(mstanza.Auth, mstanza.RegistrationRequired, "This room is for members only")
	}
	o, exists := r.occ[nick]
	if exists && !o.bare.Equal(real.Bare()) {
		return nil, stanza.NewError(mstanza.Cancel, mstanza.Conflict, "That nick is taken")
	}
	if owner := r.nickOwner(nick); owner != "" && owner != real.Bare().String() {
		return nil, stanza.NewError(mstanza.Cancel, mstanza.Conflict, "That nick is registered by someone else")
	}
	if r.cfg.Password != "" && !m.isAdmin(real) {
		pw, _ := x.Child(xml.Name{Space: NS, Local: "password"})
		if !hasX || pw.Text() != r.cfg.Password {
			return nil, stanza.NewError(mstanza.Auth, mstanza.NotAuthorized, "A password is required")
		}
	}
	if !exists && len(r.occ) >= r.cfg.maxUsers(m.opts.MaxOccupants) && affRank(aff) < affRank(storage.AffAdmin) {
		return nil, stanza.NewError(mstanza.Wait, mstanza.ServiceUnavailable, "The room is full")
	}
	sess := &occSession{jid: real, pres: pres}
	var out []*stanza.Stanza
	if !exists {
		o = &occupant{nick: nick, bare: real.Bare(), role: r.defaultRole(aff), tokens: float64(m.opts.MessageBurst), refill: m.now()}
	}
	// The occupants already there, to the new session.
	for _, other := range r.occupants() {
		if other == o || !r.cfg.broadcasts(other.role) {
			continue
		}
		out = append(out, r.presenceOf(m, other, real, r.canSee(o), false, presOpts{}))
	}
	o.sessions = append(o.sessions, sess)
	r.occ[nick] = o
	r.real[real.String()] = o
	m.track(real, r.jid, true)
	var selfCodes []int
	if r.cfg.Whois == whoisAnyone {
		selfCodes = append(selfCodes, 100)
	}
	if r.archiving(m) {
		selfCodes = append(selfCodes, 170)
	}
	if created {
		selfCodes = append(selfCodes, 201)
	}
	po := presOpts{self: selfCodes}
	if exists {
		// A further session of an occupant: others already see it.
		for _, s := range o.sessions {
			out = append(out, r.presenceOf(m, o, s.jid, true, true, po))
		}
	} else {
		out = append(out, r.broadcast(m, o, po)...)
	}
	if !created {
		out = append(out, r.historyFor(ctx, m, real, x, hasX)...)
	}
	// The subject ends the join (§7.2.16), also in a locked room, where
	// clients wait for it before showing the configuration.
	out = append(out, r.subjectMessage(real))
	r.markActive(ctx, m)
	return out, nil
}

// presenceElements returns the children of a client's presence that are
// kept for broadcast: everything but MUC elements.
func presenceElements(st *stanza.Stanza) []stanza.Element {
	var out []stanza.Element
	for el := range st.Children() {
		if !ownElement(el) {
			out = append(out, el)
		}
	}
	return out
}

// changeNick moves occupant o (every session) to nick (XEP-0045 §7.6).
func (r *room) changeNick(m *Module, o *occupant, nick string, pres []stanza.Element) ([]*stanza.Stanza, error) {
	if utf8.RuneCountInString(nick) > m.opts.MaxNickLength {
		return nil, stanza.NewError(mstanza.Modify, mstanza.NotAcceptable, "The nick is too long")
	}
	if other, ok := r.occ[nick]; ok && other != o {
		return nil, stanza.NewError(mstanza.Cancel, mstanza.Conflict, "That nick is taken")
	}
	if owner := r.nickOwner(nick); owner != "" && owner != o.bare.String() {
		return nil, stanza.NewError(mstanza.Cancel, mstanza.Conflict, "That nick is registered by someone else")
	}
	out := r.broadcast(m, o, presOpts{typ: "unavailable", codes: []int{303}, newNick: nick})
	delete(r.occ, o.nick)
	o.nick = nick
	r.occ[nick] = o
	if len(pres) > 0 {
		o.primary().pres = pres
	}
	return append(out, r.broadcast(m, o, presOpts{})...), nil
}

// leave removes the session real from the room. Codes are sent to
// everyone (307 kicked, 333 error); st is the client's unavailable
// presence, whose status is kept.
func (r *room) leave(ctx context.Context, m *Module, real jid.JID, st *stanza.Stanza, codes []int, po *presOpts) []*stanza.Stanza {
	o, ok := r.real[real.String()]
	if !ok {
		return nil
	}
	opts := presOpts{typ: "unavailable", codes: codes}
	if po != nil {
		opts = *po
		opts.typ = "unavailable"
	}
	i := o.session(real)
	delete(r.real, real.String())
	m.track(real, r.jid, false)
	if len(o.sessions) > 1 {
		// Other sessions stay: only this one learns it left.
		p := r.presenceOf(m, o, real, true, true, opts)
		o.sessions = append(o.sessions[:i:i], o.sessions[i+1:]...)
		return []*stanza.Stanza{p}
	}
	if st != nil {
		// Carry the leaving status text, and nothing else.
		o.primary().pres = nil
		if el, ok := st.ChildElement(xml.Name{Local: "status"}); ok {
			o.primary().pres = []stanza.Element{el}
		}
	}
	delete(r.occ, o.nick)
	out := r.broadcast(m, o, opts)
	return append(out, r.emptied(ctx, m)...)
}

// removeOccupant removes every session of o (kick, ban, affiliation
// change, shutdown) with the codes, actor and reason.
func (r *room) removeOccupant(m *Module, o *occupant, po presOpts) []*stanza.Stanza {
	po.typ = "unavailable"
	delete(r.occ, o.nick)
	for _, s := range o.sessions {
		delete(r.real, s.jid.String())
		m.track(s.jid, r.jid, false)
	}
	return r.broadcast(m, o, po)
}

// removeAll removes every occupant with the codes (332: shutdown).
func (r *room) removeAll(m *Module, codes []int, reason string) []*stanza.Stanza {
	var out []*stanza.Stanza
	for _, o := range r.occupants() {
		out = append(out, r.removeOccupant(m, o, presOpts{codes: codes, reason: reason})...)
	}
	return out
}

// archiving reports whether the room's messages are archived.
func (r *room) archiving(m *Module) bool { return r.cfg.Archiving && m.archive != nil }

// subjectMessage is the room's subject for a joining session.
func (r *room) subjectMessage(to jid.JID) *stanza.Stanza {
	from := r.jid
	if r.cfg.SubjectNick != "" {
		from = r.occJID(r.cfg.SubjectNick)
	}
	msg := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", From: from, To: to, ID: "subject-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	msg.AppendChild(text(stanza.NSClient, "subject", r.cfg.Subject))
	return msg
}

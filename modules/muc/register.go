package muc

import (
	"context"
	"encoding/xml"
	"fmt"
	"unicode/utf8"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
)

// Registration namespaces (XEP-0045 §7.10).
const (
	NSRegister        = "jabber:iq:register"
	nsRegisterForm    = "http://jabber.org/protocol/muc#register"
	fieldRegisterNick = "muc#register_roomnick"
)

// register handles jabber:iq:register on a room: a user registers a nick,
// which no one else may then use in the room, and becomes a member (as
// Prosody does); <remove/> gives the nick up. In a members-only room only
// members may register.
func (r *room) register(ctx context.Context, m *Module, st *stanza.Stanza, q stanza.Element) ([]*stanza.Stanza, error) {
	user := st.From.Bare().String()
	aff := r.aff(m, st.From)
	switch {
	case aff == storage.AffOutcast:
		return nil, stanza.NewError(mstanza.Auth, mstanza.Forbidden, "You are banned from this room")
	case r.cfg.MembersOnly && affRank(aff) < affRank(storage.AffMember):
		return nil, stanza.NewError(mstanza.Auth, mstanza.RegistrationRequired, "This room is for members only")
	}
	nick := r.affs[user].nick
	if st.Type == stanza.Get {
		if nick != "" {
			return []*stanza.Stanza{st.ResultReply(elem(NSRegister, "query", nil, elem(NSRegister, "registered", nil), text(NSRegister, "username", nick)))}, nil
		}
		f := &form.Form{Type: form.TypeForm, Title: "Nick registration", Fields: []form.Field{
			form.FormTypeField(nsRegisterForm),
			{Var: fieldRegisterNick, Type: form.TextSingle, Label: "Nick", Required: true},
		}}
		return []*stanza.Stanza{st.ResultReply(elem(NSRegister, "query", nil, f.TokenReader()))}, nil
	}
	if q.HasChild(xml.Name{Space: NSRegister, Local: "remove"}) {
		if nick == "" {
			return []*stanza.Stanza{st.ResultReply(nil)}, nil
		}
		if err := r.setNick(ctx, m, user, ""); err != nil {
			return nil, err
		}
		return []*stanza.Stanza{st.ResultReply(nil)}, nil
	}
	x, ok := q.Child(nameFormX)
	if !ok {
		return nil, stanza.NewError(mstanza.Modify, mstanza.BadRequest, "Expected a form")
	}
	f, err := form.Parse(stanza.Tokens(x.Tokens()...))
	if err != nil || f.Type != form.TypeSubmit {
		return nil, stanza.NewError(mstanza.Modify, mstanza.BadRequest, "Expected a submitted form")
	}
	want, _ := f.Value(fieldRegisterNick)
	switch {
	case want == "" || utf8.RuneCountInString(want) > m.opts.MaxNickLength:
		return nil, stanza.NewError(mstanza.Modify, mstanza.NotAcceptable, "Not a usable nick")
	case r.nickOwner(want) != "" && r.nickOwner(want) != user:
		return nil, stanza.NewError(mstanza.Cancel, mstanza.Conflict, "That nick is registered by someone else")
	}
	if o, ok := r.occ[want]; ok && o.bare.String() != user {
		return nil, stanza.NewError(mstanza.Cancel, mstanza.Conflict, "That nick is in use")
	}
	if _, err := r.jid.WithResource(want); err != nil {
		return nil, stanza.NewError(mstanza.Modify, mstanza.JIDMalformed, "Not a usable nick")
	}
	if err := r.setNick(ctx, m, user, want); err != nil {
		return nil, err
	}
	out := []*stanza.Stanza{st.ResultReply(nil)}
	if affRank(aff) < affRank(storage.AffMember) {
		o, err := r.changeAff(ctx, m, st.From.Bare(), storage.AffMember, "", "")
		if err != nil {
			return nil, err
		}
		out = append(out, o...)
	}
	return out, nil
}

// setNick registers (or, with "", frees) user's nick in the room.
func (r *room) setNick(ctx context.Context, m *Module, user, nick string) error {
	e := r.affs[user]
	e.nick = nick
	if e.aff == "" && e.nick == "" {
		delete(r.affs, user)
	} else {
		r.affs[user] = e
	}
	if !r.stored {
		return nil
	}
	if err := m.store.SetAffiliation(ctx, storage.MUCAffiliation{Room: r.jid.String(), JID: user, Affiliation: e.aff, Nick: e.nick, Reason: e.reason}); err != nil {
		return fmt.Errorf("muc: store nick: %w", err)
	}
	return nil
}

package muc

import (
	"context"
	"encoding/xml"
	"errors"
	"slices"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// Namespaces of message retraction (XEP-0424) and moderation (XEP-0425:
// version 0.3 and, for the clients that still send it, the older version
// 0 wrapped in XEP-0422 apply-to).
const (
	NSRetract   = "urn:xmpp:message-retract:1"
	NSRetract0  = "urn:xmpp:message-retract:0"
	NSModerate  = "urn:xmpp:message-moderate:1"
	NSModerate0 = "urn:xmpp:message-moderate:0"
	NSFasten    = "urn:xmpp:fasten:0"
)

var (
	nameRetract    = xml.Name{Space: NSRetract, Local: "retract"}
	nameOccupantID = xml.Name{Space: NSOccID, Local: "occupant-id"}
	nameStanzaID   = xml.Name{Space: NSSID, Local: "stanza-id"}
)

// original finds the room's message with the stanza-id id: in the
// history kept in memory, else in the archive. It returns nil when
// neither holds it.
func (r *room) original(ctx context.Context, m *Module, id string) (*stanza.Stanza, error) {
	if id == "" {
		return nil, nil
	}
	for i := len(r.hist.entries) - 1; i >= 0; i-- {
		msg := r.hist.entries[i].msg
		if sid, ok := msg.ChildElement(nameStanzaID); ok && sid.Attr("id") == id && sid.Attr("by") == r.jid.String() {
			return msg, nil
		}
	}
	ed, ok := m.archive.(ArchiveEditor)
	if !ok || !r.archiving(m) {
		return nil, nil
	}
	msg, err := ed.Message(ctx, r.jid, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	return msg, err
}

// author returns the occupant-id of a message of the room.
func author(msg *stanza.Stanza) string {
	o, _ := msg.ChildElement(nameOccupantID)
	return o.Attr("id")
}

// checkRetraction accepts a retraction (XEP-0424) by o of the message id
// only if o wrote it: the occupant-ids must match.
func (r *room) checkRetraction(ctx context.Context, m *Module, o *occupant, id string) error {
	orig, err := r.original(ctx, m, id)
	if err != nil {
		return err
	}
	if orig == nil {
		return stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "No such message in this room")
	}
	if a := author(orig); a == "" || a != m.occupantID(r.jid, o.bare) {
		return stanza.NewError(mstanza.Auth, mstanza.Forbidden, "You may only retract your own messages")
	}
	return nil
}

// tombstone replaces the message id, in the history kept in memory and
// in the archive, by a tombstone: its sender, id and occupant-id, with
// the <retracted/> element instead of its content (XEP-0424 §5,
// XEP-0425 §5).
func (r *room) tombstone(ctx context.Context, m *Module, id string, retracted xmlReader) {
	toks := stanza.Resolve(retracted, stanza.NSClient)
	build := func(orig *stanza.Stanza) *stanza.Stanza {
		t := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", ID: orig.ID, From: orig.From}
		t.Inner = append(t.Inner, toks...)
		if o, ok := orig.ChildElement(nameOccupantID); ok {
			t.Inner = append(t.Inner, o.Tokens()...)
		}
		return t
	}
	for i, e := range r.hist.entries {
		if sid, ok := e.msg.ChildElement(nameStanzaID); ok && sid.Attr("id") == id && sid.Attr("by") == r.jid.String() {
			t := build(e.msg)
			t.Inner = append(t.Inner, sid.Tokens()...)
			t.Inner = slices.Clip(t.Inner)
			r.hist.entries[i].msg = t
		}
	}
	ed, ok := m.archive.(ArchiveEditor)
	if !ok || !r.archiving(m) {
		return
	}
	orig, err := ed.Message(ctx, r.jid, id)
	if errors.Is(err, storage.ErrNotFound) {
		return
	}
	if err == nil {
		err = ed.Replace(ctx, r.jid, id, build(orig))
	}
	if err != nil {
		m.log.Warn("muc: replacing a retracted message in the archive", "err", err)
	}
}

// stamp is the time of a tombstone.
func (m *Module) stamp() string { return m.now().UTC().Format("2006-01-02T15:04:05Z") }

// moderate handles a moderator's retraction of another occupant's message
// (XEP-0425): <moderate id='…' xmlns='urn:xmpp:message-moderate:1'> with
// <retract xmlns='urn:xmpp:message-retract:1'/> and a reason, or the
// older <apply-to id='…' xmlns='urn:xmpp:fasten:0'><moderate
// xmlns='urn:xmpp:message-moderate:0'><retract
// xmlns='urn:xmpp:message-retract:0'/>…. The room tells every occupant in
// both forms at once, archives that message, and replaces the original by
// a tombstone.
func (r *room) moderate(ctx context.Context, m *Module, st *stanza.Stanza, id string, mod stanza.Element) ([]*stanza.Stanza, error) {
	ns := mod.Name.Space
	retractNS := NSRetract
	if ns == NSModerate0 {
		retractNS = NSRetract0
	}
	o, ok := r.real[st.From.String()]
	if !ok || o.role != roleModerator {
		return nil, stanza.NewError(mstanza.Auth, mstanza.Forbidden, "Only moderators may retract the messages of others")
	}
	if !mod.HasChild(xml.Name{Space: retractNS, Local: "retract"}) {
		return nil, stanza.NewError(mstanza.Cancel, mstanza.FeatureNotImplemented, "Only retraction is supported")
	}
	orig, err := r.original(ctx, m, id)
	if err != nil {
		return nil, err
	}
	if orig == nil {
		return nil, stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "No such message in this room")
	}
	reason, _ := mod.Child(xml.Name{Space: ns, Local: "reason"})
	by := r.occJID(o.nick).String()
	byID := m.occupantID(r.jid, o.bare)
	moderated := func(ns string, extra ...xmlReader) xmlReader {
		return elem(ns, "moderated", attrs("by", by), append([]xmlReader{elem(NSOccID, "occupant-id", attrs("id", byID))}, extra...)...)
	}
	var why, why0 []xmlReader
	if reason.Text() != "" {
		why = []xmlReader{text(NSRetract, "reason", reason.Text())}
		why0 = []xmlReader{text(NSModerate0, "reason", reason.Text())}
	}
	msg := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", From: r.jid, ID: newStanzaID()}
	msg.AppendChild(elem(NSRetract, "retract", attrs("id", id), append([]xmlReader{moderated(NSModerate)}, why...)...))
	msg.AppendChild(elem(NSFasten, "apply-to", attrs("id", id),
		moderated(NSModerate0, append([]xmlReader{elem(NSRetract0, "retract", nil)}, why0...)...)))
	r.publish(ctx, m, msg, true)
	r.tombstone(ctx, m, id, elem(NSRetract, "retracted", attrs("stamp", m.stamp()), append([]xmlReader{moderated(NSModerate)}, why...)...))
	return append([]*stanza.Stanza{st.ResultReply(nil)}, r.fanout(msg)...), nil
}

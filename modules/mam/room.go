package mam

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/muc"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// RoomOptions configure a RoomArchive.
type RoomOptions struct {
	// MaxPage is the most messages one query returns, and the page size
	// when the client gives none (default 50, at most 250), as
	// Options.MaxPage.
	MaxPage int
	// Logger receives the few warnings of the archive (a stored message
	// that does not read); nil discards them. Pass the server's logger
	// scoped to the muc module.
	Logger *slog.Logger
}

// RoomArchive is the archive of group chat rooms (XEP-0313 on room JIDs)
// for the muc module's Deps.Archive: each room's messages are kept in a
// storage.Archive under the room's bare JID, as a user's are under the
// account's, and queries read them with the same parsing, RSM paging,
// results and urn:xmpp:mam:2#extended as user archives. Create it with
// NewRoomArchive.
//
// What is stored is what occupants receive, from room@service/nick with
// its XEP-0421 occupant-id, never a real JID (the muc module puts none in
// a groupchat message); the party of each message (a query's 'with') is
// room@service/nick. The archive's IDs are the rooms' XEP-0359 stanza-ids.
//
// The rooms' retention is the muc module's (server.Expirer): it calls
// ExpireRoom per room. Replacing retracted messages (XEP-0424, XEP-0425)
// needs a store that is a storage.ArchiveReplacer (both of ours are).
type RoomArchive struct {
	archive storage.Archive
	opts    RoomOptions
	log     *slog.Logger
	now     func() time.Time
}

// NewRoomArchive returns the room archive keeping messages in a. It fails
// without a store or for a MaxPage out of range.
//
// a may be the store user archives use: room JIDs never clash with
// accounts' (they are at the muc service's domain). Note then that the
// user archive's retention (Module.Expire, storage.Archive.ExpireArchive)
// applies to every archive of the store, rooms too: rooms keep their
// messages at most as long as users do.
func NewRoomArchive(a storage.Archive, opts RoomOptions) (*RoomArchive, error) {
	if a == nil {
		return nil, errors.New("mam: no archive store for the rooms")
	}
	switch {
	case opts.MaxPage == 0:
		opts.MaxPage = DefaultMaxPage
	case opts.MaxPage < 0 || opts.MaxPage > MaxMaxPage:
		return nil, fmt.Errorf("mam: room max page %d is not within [1, %d]", opts.MaxPage, MaxMaxPage)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &RoomArchive{archive: a, opts: opts, log: log, now: time.Now}, nil
}

// owner is the archive owner of a room: its bare JID.
func owner(room jid.JID) string { return room.Bare().String() }

// Append implements muc.Archive: it stores msg (without its 'to') in the
// room's archive, durably, and returns its ID as the stanza-id.
func (a *RoomArchive) Append(ctx context.Context, room jid.JID, msg *stanza.Stanza) (string, error) {
	c := *msg
	c.To = jid.JID{}
	id, err := a.archive.AppendArchive(ctx, owner(room), a.now(), msg.From.String(), stanza.Marshal(&c))
	if err != nil {
		return "", fmt.Errorf("mam: room archive: %w", err)
	}
	return EncodeID(id), nil
}

// DeleteRoom implements muc.Archive: the whole archive of the room goes.
func (a *RoomArchive) DeleteRoom(ctx context.Context, room jid.JID) error {
	if err := a.archive.DeleteArchive(ctx, owner(room)); err != nil {
		return fmt.Errorf("mam: room archive: %w", err)
	}
	return nil
}

// History implements muc.HistorySource: the latest max messages archived
// at or after since, oldest first, each with the stanza-id the room gave
// it (<stanza-id by=room/>) so that clients match them with what they
// fetch from the archive.
func (a *RoomArchive) History(ctx context.Context, room jid.JID, max int, since time.Time) ([]muc.ArchivedMessage, error) {
	if max <= 0 {
		return nil, nil
	}
	q := storage.ArchiveQuery{Max: max, Reverse: true}
	if !since.IsZero() {
		if id := storage.TimeID(since); id > 0 {
			q.After = id - 1
		}
	}
	page, err := a.archive.QueryArchive(ctx, owner(room), q)
	if err != nil {
		return nil, fmt.Errorf("mam: room history: %w", err)
	}
	out := make([]muc.ArchivedMessage, 0, len(page.Messages))
	for _, m := range page.Messages {
		st, err := a.stored(room, m)
		if err != nil {
			a.log.Warn("an archived room message does not read", "err", err)
			continue
		}
		out = append(out, muc.ArchivedMessage{Message: st, At: m.Time()})
	}
	return out, nil
}

// stored parses an archived message and adds its stanza-id.
func (a *RoomArchive) stored(room jid.JID, m storage.ArchivedMessage) (*stanza.Stanza, error) {
	st, err := stanza.Unmarshal(m.Data)
	if err != nil {
		return nil, fmt.Errorf("mam: room message %d: %w", m.ID, err)
	}
	st.AppendChild(stanza.Elem(xml.Name{Space: NSSID, Local: "stanza-id"},
		[]xml.Attr{stanza.Attr("by", owner(room)), stanza.Attr("id", EncodeID(m.ID))}))
	return st, nil
}

// Query implements muc.ArchiveQuerier: it answers a XEP-0313 request to
// the room's bare JID (a query set, the form get, metadata), which the
// muc module let through. Each result message goes to send; the answer
// to the iq is returned.
func (a *RoomArchive) Query(ctx context.Context, room jid.JID, iq *stanza.Stanza, send func(*stanza.Stanza)) (*stanza.Stanza, error) {
	w := &capture{iq: iq}
	p, ok := iq.PayloadElement()
	var err error
	switch {
	case !ok || p.Name.Space != NS:
		err = w.Error(stanza.NewError(mstanza.Cancel, mstanza.ServiceUnavailable, ""))
	case p.Name.Local == "query" && iq.Type == stanza.Set:
		aq := archiveQuery{archive: a.archive, owner: room.Bare(), maxPage: a.opts.MaxPage, log: a.log}
		err = answerQuery(ctx, aq, stanza.IQ{Stanza: iq}, w, func(st *stanza.Stanza) bool {
			send(st)
			return true
		})
	case p.Name.Local == "query" && iq.Type == stanza.Get:
		err = answerForm(w)
	case p.Name.Local == "metadata" && iq.Type == stanza.Get:
		err = answerMetadata(ctx, a.archive, room.Bare(), w)
	default:
		err = w.Error(stanza.NewError(mstanza.Cancel, mstanza.ServiceUnavailable, ""))
	}
	if err != nil {
		return nil, err
	}
	return w.reply, nil
}

// capture is a server.ResponseWriter keeping the answer.
type capture struct {
	iq    *stanza.Stanza
	reply *stanza.Stanza
}

func (w *capture) Result(payload xml.TokenReader) error {
	if w.reply != nil {
		return server.ErrAlreadyAnswered
	}
	w.reply = w.iq.ResultReply(payload)
	return nil
}

func (w *capture) Error(e mstanza.Error) error {
	if w.reply != nil {
		return server.ErrAlreadyAnswered
	}
	w.reply = w.iq.ErrorReply(e)
	return nil
}

// Message implements muc.ArchiveEditor: the archived message with the
// stanza-id id, as stored (without its stanza-id). An id the archive does
// not hold is an error wrapping storage.ErrNotFound.
func (a *RoomArchive) Message(ctx context.Context, room jid.JID, id string) (*stanza.Stanza, error) {
	n, ok := DecodeID(id)
	if !ok {
		return nil, fmt.Errorf("mam: room message %q: %w", id, storage.ErrNotFound)
	}
	page, err := a.archive.QueryArchive(ctx, owner(room), storage.ArchiveQuery{IDs: []uint64{n}, Max: 1})
	if err != nil {
		return nil, fmt.Errorf("mam: room message: %w", err)
	}
	if len(page.Messages) == 0 {
		return nil, fmt.Errorf("mam: room message %q: %w", id, storage.ErrNotFound)
	}
	st, err := stanza.Unmarshal(page.Messages[0].Data)
	if err == nil {
		err = st.ParseRaw()
	}
	if err != nil {
		return nil, fmt.Errorf("mam: room message %q: %w", id, err)
	}
	return st, nil
}

// Replace implements muc.ArchiveEditor: the archived message id gives way
// to msg (a tombstone), keeping its ID and place. It fails with
// errors.ErrUnsupported when the store is no storage.ArchiveReplacer.
func (a *RoomArchive) Replace(ctx context.Context, room jid.JID, id string, msg *stanza.Stanza) error {
	rp, ok := a.archive.(storage.ArchiveReplacer)
	if !ok {
		return fmt.Errorf("mam: replacing room messages: %w", errors.ErrUnsupported)
	}
	n, ok := DecodeID(id)
	if !ok {
		return fmt.Errorf("mam: room message %q: %w", id, storage.ErrNotFound)
	}
	c := *msg
	c.To = jid.JID{}
	if err := rp.ReplaceArchived(ctx, owner(room), n, stanza.Marshal(&c)); err != nil {
		return fmt.Errorf("mam: replacing a room message: %w", err)
	}
	return nil
}

// ExpireRoom implements muc.ArchiveExpirer: it removes at most limit of
// the room's messages archived before t (limit <= 0: no limit).
func (a *RoomArchive) ExpireRoom(ctx context.Context, room jid.JID, t time.Time, limit int) (int, error) {
	n, err := a.archive.ExpireUserArchive(ctx, owner(room), t, limit)
	if err != nil {
		return n, fmt.Errorf("mam: expiring a room archive: %w", err)
	}
	return n, nil
}

// Interface guards.
var (
	_ muc.Archive           = (*RoomArchive)(nil)
	_ muc.HistorySource     = (*RoomArchive)(nil)
	_ muc.ArchiveQuerier    = (*RoomArchive)(nil)
	_ muc.ArchiveEditor     = (*RoomArchive)(nil)
	_ muc.ArchiveExpirer    = (*RoomArchive)(nil)
	_ server.ResponseWriter = (*capture)(nil)
)

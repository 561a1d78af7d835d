package mam

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/stanza/paging"
	"github.com/kiez-im/kiez/storage"
)

// EncodeID returns the string form of an archive ID, as it appears in
// stanza-id, result and RSM elements.
func EncodeID(id uint64) string { return strconv.FormatUint(id, 10) }

// DecodeID parses an ID EncodeID wrote.
func DecodeID(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	id, err := strconv.ParseUint(s, 10, 64)
	return id, err == nil && id > 0
}

// stamp formats an archive ID's time as a XEP-0082 DateTime.
func stamp(id uint64) string {
	return storage.IDTime(id).Format("2006-01-02T15:04:05.000000Z")
}

// IQRoutes serves queries, the query form, metadata and preferences to the
// archive's owner; the same requests to another account are forbidden.
func (m *Module) IQRoutes() []server.IQRoute {
	forbidden := server.IQHandlerFunc(func(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
		return w.Error(mstanza.Error{Type: mstanza.Auth, Condition: mstanza.Forbidden})
	})
	var routes []server.IQRoute
	add := func(typ mstanza.IQType, local string, h server.IQHandlerFunc) {
		name := xml.Name{Space: NS, Local: local}
		routes = append(routes,
			server.IQRoute{Type: typ, Payload: name, To: server.TargetSelf, Handler: h},
			server.IQRoute{Type: typ, Payload: name, To: server.TargetBare, Handler: forbidden})
	}
	add(mstanza.SetIQ, "query", m.query)
	add(mstanza.GetIQ, "query", m.serveForm)
	add(mstanza.GetIQ, "metadata", m.metadata)
	add(mstanza.GetIQ, "prefs", m.getPrefs)
	add(mstanza.SetIQ, "prefs", m.setPrefs)
	return routes
}

// queryForm is the query form (XEP-0313 §4.1.5). The ids field is
// list-multi with an open validation (XEP-0122): any IDs, no options.
var queryForm = &form.Form{Type: form.TypeForm, Fields: []form.Field{
	form.FormTypeField(NS),
	{Var: "with", Type: form.JIDSingle},
	{Var: "start", Type: form.TextSingle},
	{Var: "end", Type: form.TextSingle},
	{Var: "before-id", Type: form.TextSingle},
	{Var: "after-id", Type: form.TextSingle},
	{Var: "ids", Type: form.ListMulti, Extra: stanza.Resolve(stanza.Elem(xml.Name{Space: form.NSValidate, Local: "validate"},
		[]xml.Attr{stanza.Attr("datatype", "xs:string")},
		stanza.Elem(xml.Name{Space: form.NSValidate, Local: "open"}, nil)), "")},
}}

// serveForm answers the query form.
func (m *Module) serveForm(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	return answerForm(w)
}

// answerForm answers the query form, for a user's or a room's archive.
func answerForm(w server.ResponseWriter) error {
	return w.Result(stanza.Elem(xml.Name{Space: NS, Local: "query"}, nil, queryForm.TokenReader()))
}

// metadata answers the archive's first and last IDs (XEP-0313 §5).
func (m *Module) metadata(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	return answerMetadata(ctx, m.archive, iq.From.Bare(), w)
}

// answerMetadata answers the first and last IDs of owner's archive in a,
// a user's or a room's.
func answerMetadata(ctx context.Context, a storage.Archive, owner jid.JID, w server.ResponseWriter) error {
	st, err := a.ArchiveStats(ctx, owner.String())
	if err != nil {
		return fmt.Errorf("mam: %w", err)
	}
	var children []xml.TokenReader
	if st.Count > 0 {
		for _, e := range []struct {
			name string
			id   uint64
		}{{"start", st.First.ID}, {"end", st.Last.ID}} {
			children = append(children, stanza.Elem(xml.Name{Space: NS, Local: e.name},
				[]xml.Attr{stanza.Attr("id", EncodeID(e.id)), stanza.Attr("timestamp", stamp(e.id))}))
		}
	}
	return w.Result(stanza.Elem(xml.Name{Space: NS, Local: "metadata"}, nil, children...))
}

// request is a parsed archive query.
type request struct {
	queryID  string
	q        storage.ArchiveQuery
	filtered bool     // with, start, end, ids, before-id or after-id given
	known    []uint64 // IDs that must exist (item-not-found otherwise)
	max      int      // -1 when not given
	flip     bool
}

// parseTime parses a XEP-0082 DateTime.
func parseTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
}

// parseQuery reads a <query/> element into a request, or returns the
// stanza error to answer.
func (m *Module) parseQuery(iq stanza.IQ) (*request, *mstanza.Error) { return parseQuery(iq) }

// parseQuery reads a <query/> element into a request, or returns the
// stanza error to answer; user and room archives read queries alike.
func parseQuery(iq stanza.IQ) (*request, *mstanza.Error) {
	start, r, _ := iq.Payload()
	req := &request{queryID: stanza.AttrValue(start.Attr, "queryid"), max: -1}
	fail := func(e mstanza.Error) (*request, *mstanza.Error) { return nil, &e }
	if stanza.AttrValue(start.Attr, "node") != "" {
		return fail(stanza.NewError(mstanza.Cancel, mstanza.FeatureNotImplemented, "node archives are not supported"))
	}
	toks := stanza.Resolve(r, NS)
	var after, before uint64
	addAfter := func(id uint64) {
		after = max(after, id)
	}
	addBefore := func(id uint64) {
		if before == 0 || id < before {
			before = id
		}
	}
	// Children of <query/>: the form, the RSM set and flip-page.
	for query := range stanza.Elements(toks) {
		for child := range query.Children() {
			switch {
			case child.Name.Space == form.NS && child.Name.Local == "x":
				f, err := form.Parse(stanza.Tokens(child.Tokens()...))
				if err != nil {
					if se, ok := errors.AsType[*form.SyntaxError](err); ok {
						return fail(se.StanzaError())
					}
					return fail(stanza.NewError(mstanza.Modify, mstanza.BadRequest, "malformed form"))
				}
				if ft := f.FormType(); ft != "" && ft != NS {
					return fail(stanza.NewError(mstanza.Modify, mstanza.BadRequest, "unknown FORM_TYPE"))
				}
				for _, fd := range f.Fields {
					v := ""
					if len(fd.Values) > 0 {
						v = strings.TrimSpace(fd.Values[0])
					}
					if v == "" && fd.Var != "ids" {
						continue
					}
					switch fd.Var {
					case "FORM_TYPE":
					case "with":
						j, err := jid.Parse(v)
						if err != nil {
							return fail(stanza.NewError(mstanza.Modify, mstanza.JIDMalformed, "malformed with"))
						}
						req.q.With = j.String()
						req.filtered = true
					case "start":
						t, err := parseTime(v)
						if err != nil {
							return fail(stanza.NewError(mstanza.Modify, mstanza.BadRequest, "malformed start"))
						}
						// ID >= the first microsecond at or after t.
						if id := storage.TimeID(t.Add(time.Microsecond - time.Nanosecond)); id > 0 {
							addAfter(id - 1)
						}
						req.filtered = true
					case "end":
						t, err := parseTime(v)
						if err != nil {
							return fail(stanza.NewError(mstanza.Modify, mstanza.BadRequest, "malformed end"))
						}
						if t.Before(time.UnixMicro(0)) {
							addBefore(1) // nothing is that old; 1 keeps the bound
						} else {
							addBefore(storage.TimeID(t) + 1)
						}
						req.filtered = true
					case "after-id", "before-id":
						id, ok := DecodeID(v)
						if !ok {
							return fail(stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, ""))
						}
						if fd.Var == "after-id" {
							addAfter(id)
						} else {
							addBefore(id)
						}
						req.known = append(req.known, id)
						req.filtered = true
					case "ids":
						if len(fd.Values) > MaxMaxPage {
							return fail(stanza.NewError(mstanza.Modify, mstanza.PolicyViolation, "too many ids"))
						}
						for _, s := range fd.Values {
							id, ok := DecodeID(strings.TrimSpace(s))
							if !ok {
								return fail(stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, ""))
							}
							req.q.IDs = append(req.q.IDs, id)
						}
						req.known = append(req.known, req.q.IDs...)
						req.filtered = true
					default:
						return fail(stanza.NewError(mstanza.Cancel, mstanza.FeatureNotImplemented, "unknown field "+fd.Var))
					}
				}
			case child.Name.Space == paging.NS && child.Name.Local == "set":
				if e := req.paging(child.Tokens(), addAfter, addBefore); e != nil {
					return fail(*e)
				}
			case child.Name.Space == NS && child.Name.Local == "flip-page":
				req.flip = true
			}
		}
	}
	req.q.After, req.q.Before = after, before
	return req, nil
}

// paging reads an RSM <set/> (XEP-0059): max, after, before; paging by
// index is not supported.
func (req *request) paging(toks []xml.Token, addAfter, addBefore func(uint64)) *mstanza.Error {
	set, err := paging.Parse(stanza.Tokens(toks...))
	if err == nil {
		err = set.RejectIndex()
	}
	if err != nil {
		if pe, ok := errors.AsType[*paging.Error](err); ok {
			e := pe.StanzaError()
			return &e
		}
		e := stanza.NewError(mstanza.Modify, mstanza.BadRequest, "malformed set")
		return &e
	}
	if set.Max != nil {
		req.max = *set.Max
	}
	var after, before uint64
	ok := true
	if set.After != "" {
		after, ok = DecodeID(set.After)
	}
	if set.Backward() {
		req.q.Reverse = true
		if *set.Before != "" && ok {
			before, ok = DecodeID(*set.Before)
		}
	}
	if !ok {
		e := stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, "")
		return &e
	}
	if after != 0 {
		addAfter(after)
		req.known = append(req.known, after)
	}
	if before != 0 {
		addBefore(before)
		req.known = append(req.known, before)
	}
	return nil
}

// query answers an archive query: one message per result, then the iq
// result with <fin/> (XEP-0313 §4).
func (m *Module) query(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	return m.runQuery(ctx, iq, w, m.sender(iq.From))
}

// sender returns a function queueing stanzas to the session of to, the
// requester; it reports false once the session is gone or cannot keep up.
func (m *Module) sender(to jid.JID) func(*stanza.Stanza) bool {
	for _, s := range m.host.Sessions(to.Bare()) {
		if s.JID().Equal(to) {
			return s.Send
		}
	}
	return func(*stanza.Stanza) bool { return false }
}

// runQuery answers a query, handing each result message to send.
func (m *Module) runQuery(ctx context.Context, iq stanza.IQ, w server.ResponseWriter, send func(*stanza.Stanza) bool) error {
	return answerQuery(ctx, archiveQuery{archive: m.archive, owner: iq.From.Bare(), maxPage: m.opts.MaxPage, log: m.host.Logger()}, iq, w, send)
}

// archiveQuery is the archive a query reads: a user's (its owner is the
// requester) or a room's (the room's bare JID).
type archiveQuery struct {
	archive storage.Archive
	owner   jid.JID
	maxPage int
	log     *slog.Logger
}

// answerQuery answers a query on aq's archive: one message per result,
// each handed to send, then the iq result with <fin/> (XEP-0313 §4). Result
// messages come from aq.owner.
func answerQuery(ctx context.Context, aq archiveQuery, iq stanza.IQ, w server.ResponseWriter, send func(*stanza.Stanza) bool) error {
	req, e := parseQuery(iq)
	if e != nil {
		return w.Error(*e)
	}
	user := aq.owner
	if len(req.known) > 0 {
		known := slices.Clone(req.known)
		slices.Sort(known)
		known = slices.Compact(known)
		page, err := aq.archive.QueryArchive(ctx, user.String(), storage.ArchiveQuery{IDs: known, Max: len(known)})
		if err != nil {
			return fmt.Errorf("mam: %w", err)
		}
		if len(page.Messages) != len(known) {
			return w.Error(stanza.NewError(mstanza.Cancel, mstanza.ItemNotFound, ""))
		}
	}
	req.q.Max = aq.maxPage
	if req.max >= 0 && req.max < req.q.Max {
		req.q.Max = req.max
	}
	// The count is only given when it costs nothing: for the whole archive.
	count := -1
	if !req.filtered {
		st, err := aq.archive.ArchiveStats(ctx, user.String())
		if err != nil {
			return fmt.Errorf("mam: %w", err)
		}
		count = st.Count
	}
	var page storage.ArchivePage
	if req.q.Max > 0 {
		var err error
		page, err = aq.archive.QueryArchive(ctx, user.String(), req.q)
		if err != nil {
			return fmt.Errorf("mam: %w", err)
		}
	}
	for i := range page.Messages {
		msg := page.Messages[i]
		if req.flip {
			msg = page.Messages[len(page.Messages)-1-i]
		}
		st, err := resultMessage(iq.From, user, req.queryID, msg)
		if err != nil {
			aq.log.Warn("an archived message does not read", "err", err)
			continue
		}
		if !send(st) {
			break
		}
	}
	return w.Result(fin(req, page, count))
}

var (
	nameResult = xml.Name{Space: NS, Local: "result"}
	nameDelay  = xml.Name{Space: NSDelay, Local: "delay"}
	// Tokens every result shares; tokens are never changed in place.
	startForwarded xml.Token = xml.StartElement{Name: xml.Name{Space: NSForward, Local: "forwarded"}}
	endForwarded   xml.Token = xml.EndElement{Name: xml.Name{Space: NSForward, Local: "forwarded"}}
	endResult      xml.Token = xml.EndElement{Name: nameResult}
	endDelay       xml.Token = xml.EndElement{Name: nameDelay}
)

// result is one result message with its parts in one allocation.
type result struct {
	st    stanza.Stanza
	inner [7]xml.Token
	attrs [3]xml.Attr
}

// resultMessage wraps an archived message for a query result; the stored
// XML is written verbatim.
func resultMessage(to, user jid.JID, queryID string, msg storage.ArchivedMessage) (*stanza.Stanza, error) {
	raw, err := stanza.RawElement(msg.Data)
	if err != nil {
		return nil, fmt.Errorf("mam: message %d: %w", msg.ID, err)
	}
	id := EncodeID(msg.ID)
	r := &result{}
	attrs := r.attrs[:0]
	if queryID != "" {
		attrs = append(attrs, stanza.Attr("queryid", queryID))
	}
	attrs = append(attrs, stanza.Attr("id", id))
	delay := r.attrs[2:3]
	delay[0] = stanza.Attr("stamp", stamp(msg.ID))
	r.inner = [7]xml.Token{
		xml.StartElement{Name: nameResult, Attr: attrs},
		startForwarded,
		xml.StartElement{Name: nameDelay, Attr: delay},
		endDelay,
		raw,
		endForwarded,
		endResult,
	}
	r.st = stanza.Stanza{Kind: stanza.Message, ID: id, From: user, To: to, Inner: r.inner[:]}
	return &r.st, nil
}

// fin builds the <fin/> element ending a query.
func fin(req *request, page storage.ArchivePage, count int) xml.TokenReader {
	var set paging.Result
	if n := len(page.Messages); n > 0 {
		set.First, set.Last = EncodeID(page.Messages[0].ID), EncodeID(page.Messages[n-1].ID)
	}
	if count >= 0 {
		set.Count = &count
	}
	var attrs []xml.Attr
	// A page of max 0 only asks for the count; it completes nothing.
	if req.q.Max > 0 && page.Complete {
		attrs = append(attrs, stanza.Attr("complete", "true"))
	}
	return stanza.Elem(xml.Name{Space: NS, Local: "fin"}, attrs, set.TokenReader())
}

// DeleteNode is the ad-hoc command node of DeleteArchiveCommand.
const DeleteNode = "urn:kiez:mam:delete"

// DeleteArchiveCommand returns the ad-hoc command "Delete my message
// archive": it asks the user to confirm with a boolean field, then
// deletes the whole archive at once (preferences are kept).
func (m *Module) DeleteArchiveCommand() adhoc.Command {
	confirm := func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
		if req.Form == nil || !req.Form.Bool("confirm") {
			return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Type: "info", Text: "Nothing was deleted."}}}, nil
		}
		if err := m.archive.DeleteArchive(ctx, user.Bare().String()); err != nil {
			return adhoc.Response{}, fmt.Errorf("mam: %w", err)
		}
		return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Type: "info", Text: "Your message archive was deleted."}}}, nil
	}
	return adhoc.Command{
		Node: DeleteNode,
		Name: "Delete my message archive",
		Handler: func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
			return adhoc.Response{
				Status: adhoc.Executing,
				Form: &form.Form{
					Type:         form.TypeForm,
					Title:        "Delete my message archive",
					Instructions: "All messages the server keeps for you will be deleted at once. This cannot be undone.",
					Fields: []form.Field{{
						Var: "confirm", Type: form.Boolean, Label: "Delete all my archived messages", Required: true, Values: []string{"0"},
					}},
				},
				Actions: []adhoc.Action{adhoc.Complete},
				Next:    confirm,
			}, nil
		},
	}
}

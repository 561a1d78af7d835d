package muc

import (
	"bytes"
	"context"
	"encoding/xml"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
)

// history is a room's recent groupchat messages, kept in memory (XEP-0045
// §7.2.14), bounded by the room's history length.
type history struct {
	entries []histEntry
}

// histEntry is one message as occupants received it (without 'to').
type histEntry struct {
	msg   *stanza.Stanza
	at    time.Time
	chars int // the size of its XML, for maxchars
}

// add appends msg, keeping at most max messages.
func (h *history) add(msg *stanza.Stanza, at time.Time, max int) {
	if max <= 0 {
		h.entries = nil
		return
	}
	var b bytes.Buffer
	msg.WriteTo(&b)
	h.entries = append(h.entries, histEntry{msg: msg, at: at, chars: b.Len()})
	if n := len(h.entries) - max; n > 0 {
		h.entries = slices.Delete(h.entries, 0, n)
	}
}

// historyFor returns the history a session joining with the <x/> element
// x asked for (all the room keeps when it did not ask), each message with
// a XEP-0203 delay. A room that archives, with an archive that serves
// history (HistorySource), takes it from the archive, so that history
// outlives a restart; otherwise from memory.
func (r *room) historyFor(ctx context.Context, m *Module, to jid.JID, x stanza.Element, hasX bool) []*stanza.Stanza {
	max := r.cfg.History
	maxChars := -1
	var since time.Time
	if hasX {
		if h, ok := x.Child(xml.Name{Space: NS, Local: "history"}); ok {
			if v, ok := h.LookupAttr("maxstanzas"); ok {
				if n, err := strconv.Atoi(v); err == nil && n >= 0 && n < max {
					max = n
				}
			}
			if v, ok := h.LookupAttr("maxchars"); ok {
				if n, err := strconv.Atoi(v); err == nil && n >= 0 {
					maxChars = n
				}
			}
			if v, ok := h.LookupAttr("seconds"); ok {
				if n, err := strconv.Atoi(v); err == nil && n >= 0 {
					since = m.now().Add(-time.Duration(n) * time.Second)
				}
			}
			if v, ok := h.LookupAttr("since"); ok {
				if t, err := time.Parse(time.RFC3339Nano, v); err == nil && t.After(since) {
					since = t
				}
			}
		}
	}
	if max <= 0 || maxChars == 0 {
		return nil
	}
	entries := r.hist.entries
	if hs, ok := m.archive.(HistorySource); ok && r.archiving(m) {
		msgs, err := hs.History(ctx, r.jid, max, since)
		if err != nil {
			m.log.Warn("muc: history from the archive", "err", err)
		} else {
			entries = make([]histEntry, 0, len(msgs))
			for _, am := range msgs {
				var b bytes.Buffer
				am.Message.WriteTo(&b)
				entries = append(entries, histEntry{msg: am.Message, at: am.At, chars: b.Len()})
			}
		}
	}
	if len(entries) > max {
		entries = entries[len(entries)-max:]
	}
	start := 0
	for i, e := range entries {
		if e.at.Before(since) {
			start = i + 1
		}
	}
	entries = entries[start:]
	if maxChars > 0 {
		total, start := 0, len(entries)
		for i := len(entries) - 1; i >= 0; i-- {
			total += entries[i].chars
			if total > maxChars {
				break
			}
			start = i
		}
		entries = entries[start:]
	}
	out := make([]*stanza.Stanza, 0, len(entries))
	for _, e := range entries {
		c := *e.msg
		c.To = to
		c.Inner = slices.Clip(e.msg.Inner)
		c.AppendChild(elem(NSDelay, "delay", attrs("from", r.jid.String(), "stamp", e.at.UTC().Format("2006-01-02T15:04:05.000Z"))))
		out = append(out, &c)
	}
	return out
}

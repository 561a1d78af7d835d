package server

import (
	"encoding/xml"

	"github.com/kiez-im/kiez/stanza"
)

// XEP-0352 client state indication.
const (
	nsCSI = "urn:xmpp:csi:0"

	// csiMaxHeld is how many stanzas an inactive client may have held
	// back before they are all written anyway.
	csiMaxHeld = 100
)

// csiState is what an inactive client has not been sent yet. It is
// guarded by the session's qmu and allocated by the first <inactive/>.
type csiState struct {
	inactive bool
	held     []outItem
}

// hold keeps it back; a presence replaces the held one of the same
// sender. It reports false when the buffer is full (it is kept too) and
// must be flushed.
func (cs *csiState) hold(it outItem) bool {
	if it.st.Kind == stanza.Presence && (it.st.Type == "" || it.st.Type == "unavailable") {
		from := it.st.From.String()
		for i, h := range cs.held {
			if h.st.Kind == stanza.Presence && (h.st.Type == "" || h.st.Type == "unavailable") && h.st.From.String() == from {
				// Only the latest presence of each sender matters; it
				// takes its place at the end, in arrival order.
				copy(cs.held[i:], cs.held[i+1:])
				cs.held[len(cs.held)-1] = it
				return true
			}
		}
	}
	cs.held = append(cs.held, it)
	return len(cs.held) < csiMaxHeld
}

// take removes and returns what is held, in order.
func (cs *csiState) take() []outItem {
	h := cs.held
	cs.held = nil
	return h
}

// csiElement handles <active/> and <inactive/> on a bound session.
func (s *Session) csiElement(start xml.StartElement) error {
	switch start.Name.Local {
	case "inactive":
		s.qmu.Lock()
		if s.csi == nil {
			s.csi = &csiState{}
		}
		s.csi.inactive = true
		s.qmu.Unlock()
	case "active":
		s.qmu.Lock()
		if s.csi != nil && s.csi.inactive {
			s.csi.inactive = false
			s.items = append(s.items, s.csi.take()...)
			s.startWriterLocked()
		}
		s.qmu.Unlock()
	default:
		return streamErr(condUnsupportedStanza, "")
	}
	return nil
}

// isImportant tells whether an inactive client should get st at once,
// as Prosody's mod_csi_simple decides: iqs, presence other than
// availability, errors, messages with a body, subject, encrypted payload,
// invitation or call, stored messages (whose content is not looked at),
// and carbons copies and archive results of those.
func isImportant(st *stanza.Stanza) bool {
	switch st.Kind {
	case stanza.Presence:
		return st.Type != "" && st.Type != "unavailable" && st.Type != "error"
	case stanza.Message:
		switch st.Type {
		case "headline":
			return false
		case "error":
			return true
		}
		c := stanza.Classify(st)
		if c&importantContent != 0 {
			return true
		}
		return c&stanza.Forwarded != 0 && stanza.ClassifyForwarded(st)&importantContent != 0
	}
	return true
}

// importantContent is what makes a message important to an inactive
// client.
const importantContent = stanza.Body | stanza.Subject | stanza.Encrypted | stanza.Invitation | stanza.Call | stanza.Stored

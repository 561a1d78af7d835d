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

// Namespaces isImportant looks at.
const (
	nsCarbons    = "urn:xmpp:carbons:2"
	nsForward    = "urn:xmpp:forward:0"
	nsMAM        = "urn:xmpp:mam:2"
	nsEME        = "urn:xmpp:eme:0"
	nsOMEMO      = "eu.siacs.conversations.axolotl"
	nsOMEMO2     = "urn:xmpp:omemo:2"
	nsOX         = "urn:xmpp:openpgp:0"
	nsConference = "jabber:x:conference"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
	nsJingleMsg  = "urn:xmpp:jingle-message:0"
)

// isImportant tells whether an inactive client should get st at once,
// as Prosody's mod_csi_simple decides: iqs, presence other than
// availability, errors, messages with a body, subject, encrypted payload,
// invitation or call, and carbons copies and archive results of those.
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
		return importantMessage(st.Inner)
	}
	return true
}

// importantMessage looks at the children of a message (inner tokens, with
// explicit namespaces), following carbons and MAM wrappers to the
// forwarded message.
func importantMessage(inner []xml.Token) bool {
	depth := 0
	for i, t := range inner {
		switch tt := t.(type) {
		case stanza.Raw:
			return true // stored XML (offline, archive): unknown content
		case xml.StartElement:
			depth++
			if depth != 1 {
				continue
			}
			switch n := tt.Name; {
			case n.Local == "body" && (n.Space == nsClient || n.Space == ""),
				n.Local == "subject" && (n.Space == nsClient || n.Space == ""),
				n.Space == nsEME && n.Local == "encryption",
				n.Space == nsOMEMO && n.Local == "encrypted",
				n.Space == nsOMEMO2 && n.Local == "encrypted",
				n.Space == nsOX && n.Local == "openpgp",
				n.Space == nsConference && n.Local == "x",
				n.Space == nsJingleMsg:
				return true
			case n.Space == nsMUCUser && n.Local == "x":
				if hasDescendant(inner[i:], xml.Name{Space: nsMUCUser, Local: "invite"}) {
					return true
				}
			case n.Space == nsCarbons && (n.Local == "sent" || n.Local == "received"),
				n.Space == nsMAM && n.Local == "result":
				if fwd := forwardedMessage(inner[i:]); fwd != nil && importantMessage(fwd) {
					return true
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	return false
}

// hasDescendant reports whether the element starting at toks[0] contains
// an element named n.
func hasDescendant(toks []xml.Token, n xml.Name) bool {
	depth := 0
	for _, t := range toks {
		switch tt := t.(type) {
		case xml.StartElement:
			depth++
			if depth > 1 && tt.Name == n {
				return true
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return false
			}
		}
	}
	return false
}

// forwardedMessage returns the inner tokens of the message inside the
// <forwarded/> of the wrapper element starting at toks[0], or nil.
func forwardedMessage(toks []xml.Token) []xml.Token {
	depth := 0
	start := -1
	for i, t := range toks {
		switch tt := t.(type) {
		case xml.StartElement:
			depth++
			if depth == 3 && tt.Name.Local == "message" && start < 0 && i > 0 {
				start = i + 1
				inner := 0
				for j := start; j < len(toks); j++ {
					switch toks[j].(type) {
					case xml.StartElement:
						inner++
					case xml.EndElement:
						if inner == 0 {
							return toks[start:j]
						}
						inner--
					}
				}
				return nil
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return nil
			}
		}
	}
	return nil
}

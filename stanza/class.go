package stanza

import (
	"encoding/xml"
	"strconv"
	"strings"
)

// Class tells what a message carries, one bit per kind of top-level child
// element, so that the server and the modules decide alike what a message
// is: whether an inactive client gets it at once (CSI), whether it is
// archived, copied to other resources (carbons) or stored offline. Each
// keeps its own policy as a combination of bits.
type Class uint64

// The kinds of children Classify tells apart. An element the list does not
// name sets Other.
const (
	// Body is a <body/> in jabber:client, jabber:server or no namespace
	// (as in a message built without one); Subject and Thread likewise.
	Body Class = 1 << iota
	Subject
	Thread
	// ChatState is any element of XEP-0085 chat state notifications.
	ChatState
	// Receipt is any element of XEP-0184 message delivery receipts (a
	// request or a receipt).
	Receipt
	// Markable is a XEP-0333 <markable/>; Marker is any other element of
	// chat markers (<received/>, <displayed/>, <acknowledged/>).
	Markable
	Marker
	// OMEMO is a XEP-0384 <encrypted/> (eu.siacs.conversations.axolotl or
	// urn:xmpp:omemo:2).
	OMEMO
	// OpenPGP is a XEP-0373 <openpgp/>.
	OpenPGP
	// EME is a XEP-0380 <encryption/> declaration.
	EME
	// OOB is a XEP-0066 <x xmlns='jabber:x:oob'/> URL.
	OOB
	// Reaction is a XEP-0444 <reactions/>.
	Reaction
	// Retraction is a XEP-0424 <retract/> (urn:xmpp:message-retract:0
	// or :1).
	Retraction
	// DirectInvite is a XEP-0249 <x xmlns='jabber:x:conference'/>.
	DirectInvite
	// MUCUser is a XEP-0045 <x xmlns='http://jabber.org/protocol/muc#user'/>;
	// MUCInvite is set too when it holds an <invite/> (a mediated
	// invitation).
	MUCUser
	MUCInvite
	// Call is any element of XEP-0353 Jingle message initiation
	// (urn:xmpp:jingle-message:0 or :1).
	Call
	// Store, NoStore, NoPermanentStore and NoCopy are the XEP-0334 hints.
	Store
	NoStore
	NoPermanentStore
	NoCopy
	// CarbonsCopy is a XEP-0280 <sent/> or <received/>: the message is a
	// carbons copy. CarbonsPrivate is a XEP-0280 <private/>.
	CarbonsCopy
	CarbonsPrivate
	// ArchiveResult is a XEP-0313 <result/>: the message is an archive
	// query result.
	ArchiveResult
	// Delay is any element of XEP-0203 delayed delivery.
	Delay
	// StanzaID is any element of XEP-0359 unique and stable stanza IDs.
	StanzaID
	// Stored is stored XML (a Raw token) among the children: content the
	// server does not look into, such as an offline message's.
	Stored
	// Other is an element none of the above names.
	Other

	lastClass = Other
)

// Combinations of the bits above.
const (
	// Encrypted is an encrypted payload or a declaration of one.
	Encrypted = OMEMO | OpenPGP | EME
	// Invitation is a MUC invitation, direct or mediated.
	Invitation = DirectInvite | MUCInvite
	// Hints are the XEP-0334 processing hints.
	Hints = Store | NoStore | NoPermanentStore | NoCopy
	// Forwarded is what makes a message a copy of another that the server
	// forwards (XEP-0297): a carbons copy or an archive result.
	Forwarded = CarbonsCopy | ArchiveResult
)

// Namespaces Classify knows.
const (
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsReceipts   = "urn:xmpp:receipts"
	nsMarkers    = "urn:xmpp:chat-markers:0"
	nsOMEMO      = "eu.siacs.conversations.axolotl"
	nsOMEMO2     = "urn:xmpp:omemo:2"
	nsOX         = "urn:xmpp:openpgp:0"
	nsEME        = "urn:xmpp:eme:0"
	nsOOB        = "jabber:x:oob"
	nsReactions  = "urn:xmpp:reactions:0"
	nsRetract0   = "urn:xmpp:message-retract:0"
	nsRetract1   = "urn:xmpp:message-retract:1"
	nsConference = "jabber:x:conference"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
	nsJingleMsg0 = "urn:xmpp:jingle-message:0"
	nsJingleMsg1 = "urn:xmpp:jingle-message:1"
	nsHints      = "urn:xmpp:hints"
	nsCarbons    = "urn:xmpp:carbons:2"
	nsMAM        = "urn:xmpp:mam:2"
	nsDelay      = "urn:xmpp:delay"
	nsSID        = "urn:xmpp:sid:0"
	nsForward    = "urn:xmpp:forward:0"
)

// Classify returns what the children of s carry. It looks at the direct
// children only: the message a carbons copy or an archive result forwards
// is ClassifyForwarded's. It does not look at s's kind or type.
func Classify(s *Stanza) Class { return classify(s.Inner) }

// ClassifyElement returns what the children of e carry, as Classify does
// for a stanza's.
func ClassifyElement(e Element) Class { return classify(e.Inner()) }

func classify(toks []xml.Token) Class {
	var c Class
	for i := 0; i < len(toks); i++ {
		switch t := toks[i].(type) {
		case Raw:
			c |= Stored
		case xml.StartElement:
			end := matchingEnd(toks, i)
			c |= classOf(t.Name, toks[i:end+1])
			i = end
		}
	}
	return c
}

// classOf classifies one child element (toks are its tokens).
func classOf(n xml.Name, toks []xml.Token) Class {
	switch n.Space {
	case NSClient, NSServer, "":
		switch n.Local {
		case "body":
			return Body
		case "subject":
			return Subject
		case "thread":
			return Thread
		}
	case nsChatStates:
		return ChatState
	case nsReceipts:
		return Receipt
	case nsMarkers:
		if n.Local == "markable" {
			return Markable
		}
		return Marker
	case nsOMEMO, nsOMEMO2:
		if n.Local == "encrypted" {
			return OMEMO
		}
	case nsOX:
		if n.Local == "openpgp" {
			return OpenPGP
		}
	case nsEME:
		if n.Local == "encryption" {
			return EME
		}
	case nsOOB:
		if n.Local == "x" {
			return OOB
		}
	case nsReactions:
		if n.Local == "reactions" {
			return Reaction
		}
	case nsRetract0, nsRetract1:
		if n.Local == "retract" {
			return Retraction
		}
	case nsConference:
		if n.Local == "x" {
			return DirectInvite
		}
	case nsMUCUser:
		if n.Local == "x" {
			if (Element{Name: n, toks: toks}).HasChild(xml.Name{Space: nsMUCUser, Local: "invite"}) {
				return MUCUser | MUCInvite
			}
			return MUCUser
		}
	case nsJingleMsg0, nsJingleMsg1:
		return Call
	case nsHints:
		switch n.Local {
		case "store":
			return Store
		case "no-store":
			return NoStore
		case "no-permanent-store":
			return NoPermanentStore
		case "no-copy":
			return NoCopy
		}
	case nsCarbons:
		switch n.Local {
		case "sent", "received":
			return CarbonsCopy
		case "private":
			return CarbonsPrivate
		}
	case nsMAM:
		if n.Local == "result" {
			return ArchiveResult
		}
	case nsDelay:
		return Delay
	case nsSID:
		return StanzaID
	}
	return Other
}

// maxForwards bounds how many forwards ClassifyForwarded follows (a
// carbons copy of an archive result, and so on).
const maxForwards = 4

// ClassifyForwarded returns what the message forwarded (XEP-0297) by s, a
// carbons copy or an archive result, carries, following a forwarded
// message that is itself a copy. It is Stored when the forwarded message
// is stored XML (the archive's results), and 0 when s forwards nothing.
func ClassifyForwarded(s *Stanza) Class {
	toks := s.Inner
	for range maxForwards {
		fwd, ok := forwarded(toks)
		if !ok {
			return 0
		}
		var c Class
		for i := 0; i < len(fwd) && c == 0; i++ {
			switch t := fwd[i].(type) {
			case Raw:
				return Stored
			case xml.StartElement:
				end := matchingEnd(fwd, i)
				if t.Name.Local == "message" {
					toks = fwd[i+1 : end]
					c = classify(toks)
					if c == 0 {
						return 0
					}
				}
				i = end
			}
		}
		if c&Forwarded == 0 {
			return c
		}
	}
	return 0
}

// forwarded returns the inner tokens of the <forwarded/> in the first
// carbons copy or archive result among toks's top-level elements.
func forwarded(toks []xml.Token) ([]xml.Token, bool) {
	for el := range Elements(toks) {
		if classOf(el.Name, el.toks)&Forwarded == 0 {
			continue
		}
		fwd, ok := el.Child(xml.Name{Space: nsForward, Local: "forwarded"})
		return fwd.Inner(), ok
	}
	return nil, false
}

// classNames are the names String uses, by bit.
var classNames = [...]string{
	"Body", "Subject", "Thread", "ChatState", "Receipt", "Markable", "Marker",
	"OMEMO", "OpenPGP", "EME", "OOB", "Reaction", "Retraction", "DirectInvite",
	"MUCUser", "MUCInvite", "Call", "Store", "NoStore", "NoPermanentStore",
	"NoCopy", "CarbonsCopy", "CarbonsPrivate", "ArchiveResult", "Delay",
	"StanzaID", "Stored", "Other",
}

// String lists the bits of c by name, joined with "|".
func (c Class) String() string {
	if c == 0 {
		return "0"
	}
	var names []string
	for i, n := range classNames {
		if c&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if rest := c &^ (lastClass<<1 - 1); rest != 0 {
		names = append(names, "0x"+strconv.FormatUint(uint64(rest), 16))
	}
	return strings.Join(names, "|")
}

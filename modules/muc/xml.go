package muc

import (
	"encoding/xml"
	"strconv"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
)

// xmlReader is a reader over complete elements.
type xmlReader = xml.TokenReader

// elem returns <local xmlns=ns attrs…>children</local>.
func elem(ns, local string, a []xml.Attr, children ...xmlReader) xmlReader {
	return stanza.Elem(xml.Name{Space: ns, Local: local}, a, children...)
}

// text returns <local xmlns=ns>s</local>.
func text(ns, local, s string) xmlReader {
	return stanza.TextElem(xml.Name{Space: ns, Local: local}, s)
}

// attrs returns unqualified attributes from name, value pairs, leaving
// out empty values.
func attrs(kv ...string) []xml.Attr {
	var out []xml.Attr
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			out = append(out, stanza.Attr(kv[i], kv[i+1]))
		}
	}
	return out
}

// statuses returns <status code=…/> elements.
func statuses(codes []int) []xmlReader {
	out := make([]xmlReader, 0, len(codes))
	for _, c := range codes {
		out = append(out, elem(NSUser, "status", attrs("code", strconv.Itoa(c))))
	}
	return out
}

// mucX reports whether el is an element of a MUC namespace the service
// writes itself (and so strips from what clients send).
func ownElement(el stanza.Element) bool {
	switch el.Name.Space {
	case NS, NSUser, NSAdmin, NSOwner, NSOccID:
		return true
	}
	return false
}

// kickable reports whether an error a client bounced means its session
// is gone, so that it should leave the rooms (the conditions Prosody's
// muc kicks on); a client refusing one message (blocking, a policy) stays.
func kickable(st *stanza.Stanza) bool {
	e, ok := st.ChildElement(xml.Name{Local: "error"})
	if !ok {
		return true
	}
	for el := range e.Children() {
		if el.Name.Space != mstanza.NSError {
			continue
		}
		switch mstanza.Condition(el.Name.Local) {
		case mstanza.Gone, mstanza.InternalServerError, mstanza.ItemNotFound, mstanza.JIDMalformed,
			mstanza.RecipientUnavailable, mstanza.Redirect, mstanza.RemoteServerNotFound,
			mstanza.RemoteServerTimeout, mstanza.ServiceUnavailable:
			return true
		case "text":
			continue
		}
		return false
	}
	return true
}

package main

import (
	"bytes"
	"encoding/xml"
	"strings"
)

// node is a decoded element, for the few elements the client must
// understand (stream features, SASL answers, errors). Stanzas on the hot
// path are never decoded: name and attr read the start tag's bytes.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

// parseNode decodes one element. The stream namespace prefix of
// <stream:features/> and <stream:error/> is left undeclared in the element
// alone, which encoding/xml tolerates.
func parseNode(el []byte) (*node, error) {
	var n node
	if err := xml.Unmarshal(el, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// find returns the first descendant named local, depth first.
func (n *node) find(local string) *node {
	for i := range n.Children {
		c := &n.Children[i]
		if c.XMLName.Local == local {
			return c
		}
		if f := c.find(local); f != nil {
			return f
		}
	}
	return nil
}

// condition returns the name of the first child that is an error condition
// (stream, stanza or SASL), or "unknown".
func (n *node) condition() string {
	if e := n.find("error"); e != nil && n.XMLName.Local != "error" {
		return e.condition()
	}
	for _, c := range n.Children {
		switch c.XMLName.Local {
		case "text", "error":
			continue
		}
		if strings.HasPrefix(c.XMLName.Space, "urn:ietf:params:xml:ns:xmpp-") {
			return c.XMLName.Local
		}
	}
	return "unknown"
}

// name returns the local name of the element in el ("message" for
// <message ...>, "features" for <stream:features>).
func name(el []byte) string {
	if len(el) < 2 || el[0] != '<' {
		return ""
	}
	end := bytes.IndexAny(el[1:], " \t\r\n/>")
	if end < 0 {
		return ""
	}
	n := el[1 : 1+end]
	if i := bytes.IndexByte(n, ':'); i >= 0 {
		n = n[i+1:]
	}
	return string(n)
}

// attr returns the value of attribute key in el's start tag, unescaped only
// for the entities a server writes in ids and JIDs.
func attr(el []byte, key string) string {
	end, _ := tagEnd(el, 0)
	if end < 0 {
		return ""
	}
	tag := el[:end]
	for i := 0; ; {
		j := bytes.Index(tag[i:], []byte(key+"="))
		if j < 0 {
			return ""
		}
		i += j
		if c := tag[i-1]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			i += len(key)
			continue
		}
		v := tag[i+len(key)+1:]
		if len(v) == 0 {
			return ""
		}
		q := v[0]
		v = v[1:]
		if k := bytes.IndexByte(v, q); k >= 0 {
			return unescape(string(v[:k]))
		}
		return ""
	}
}

var unescaper = strings.NewReplacer("&apos;", "'", "&quot;", `"`, "&lt;", "<", "&gt;", ">", "&amp;", "&")

func unescape(s string) string {
	if strings.IndexByte(s, '&') < 0 {
		return s
	}
	return unescaper.Replace(s)
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;")

// escape makes s safe inside an attribute value or text.
func escape(s string) string {
	if !strings.ContainsAny(s, `&<>'"`) {
		return s
	}
	return escaper.Replace(s)
}

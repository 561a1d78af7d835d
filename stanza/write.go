package stanza

import (
	"encoding/xml"
	"io"
	"strconv"
	"unicode/utf8"
)

// BufWriter is what WriteTo writes to; *bufio.Writer and *bytes.Buffer
// implement it.
type BufWriter interface {
	io.Writer
	io.ByteWriter
	io.StringWriter
}

// WriteTo serialises s onto a stream whose default namespace is
// jabber:client. Namespaces of inner elements are declared where they
// differ from the parent's; namespaced attributes get generated prefixes.
// Characters not allowed in XML are replaced by U+FFFD.
func (s *Stanza) WriteTo(w BufWriter) error { return s.write(w, NSClient, false) }

// WriteIn serialises s onto a stream whose content namespace is ns (for
// example jabber:server on a server-to-server stream): s and the elements
// inside it in jabber:client are written in ns.
func (s *Stanza) WriteIn(w BufWriter, ns string) error { return s.write(w, ns, false) }

// WriteDeclared serialises s with its namespace, jabber:client, declared
// on it, as an element that stands on its own must (a stored stanza, or a
// WebSocket message, RFC 7395 §3.3.3).
func (s *Stanza) WriteDeclared(w BufWriter) error { return s.write(w, NSClient, true) }

// write writes s in content namespace ns; with declare, the element
// declares ns.
func (s *Stanza) write(w BufWriter, ns string, declare bool) error {
	name := s.Kind.String()
	w.WriteByte('<')
	w.WriteString(name)
	if declare {
		writeAttr(w, "xmlns", ns)
	}
	if s.ID != "" {
		writeAttr(w, "id", s.ID)
	}
	if s.Type != "" {
		writeAttr(w, "type", s.Type)
	}
	if s.From.String() != "" {
		writeAttr(w, "from", s.From.String())
	}
	if s.To.String() != "" {
		writeAttr(w, "to", s.To.String())
	}
	if s.Lang != "" {
		writeAttr(w, "xml:lang", s.Lang)
	}
	writeAttrs(w, s.Attrs)
	if len(s.Inner) == 0 {
		_, err := w.WriteString("/>")
		return err
	}
	w.WriteByte('>')
	if err := writeTokens(w, s.Inner, ns, ns); err != nil {
		return err
	}
	w.WriteString("</")
	w.WriteString(name)
	_, err := w.WriteString(">")
	return err
}

// WriteTokens serialises a balanced token sequence whose parent element's
// default namespace is parentNS. Element namespaces must be explicit (see
// Resolve); an empty one is written as xmlns="" (no namespace).
func WriteTokens(w BufWriter, toks []xml.Token, parentNS string) error {
	return writeTokens(w, toks, parentNS, NSClient)
}

// writeTokens is WriteTokens writing elements in jabber:client in the
// content namespace content instead.
func writeTokens(w BufWriter, toks []xml.Token, parentNS, content string) error {
	// stack holds the default namespace in force at each open element.
	var stackBuf [16]string
	stack := append(stackBuf[:0], parentNS)
	var names [16]string
	open := names[:0]
	for i, t := range toks {
		switch tt := t.(type) {
		case xml.StartElement:
			cur := stack[len(stack)-1]
			ns := tt.Name.Space
			if ns == NSClient {
				ns = content
			}
			w.WriteByte('<')
			w.WriteString(tt.Name.Local)
			if ns != cur {
				writeAttr(w, "xmlns", ns)
			}
			writeAttrs(w, tt.Attr)
			stack = append(stack, ns)
			// Write an empty element as <x/> when its end follows at once.
			if i+1 < len(toks) {
				if _, ok := toks[i+1].(xml.EndElement); ok {
					w.WriteString("/>")
					open = append(open, "")
					continue
				}
			}
			w.WriteByte('>')
			open = append(open, tt.Name.Local)
		case xml.EndElement:
			if len(open) == 0 {
				continue // unbalanced; never write a stray end tag
			}
			local := open[len(open)-1]
			open = open[:len(open)-1]
			stack = stack[:len(stack)-1]
			if local == "" {
				continue // already closed as <x/>
			}
			w.WriteString("</")
			w.WriteString(local)
			w.WriteByte('>')
		case xml.CharData:
			escape(w, tt, false)
		case Raw:
			w.Write(tt)
		}
	}
	// Close anything a malformed sequence left open.
	for j := len(open) - 1; j >= 0; j-- {
		if open[j] != "" {
			w.WriteString("</")
			w.WriteString(open[j])
			w.WriteByte('>')
		}
	}
	_, err := w.WriteString("")
	return err
}

func writeAttrs(w BufWriter, attrs []xml.Attr) {
	gen := 0
	for _, a := range attrs {
		switch {
		case isNSDecl(a.Name):
		case a.Name.Space == "":
			writeAttr(w, a.Name.Local, a.Value)
		case a.Name.Space == NSXML || a.Name.Space == "xml":
			writeAttr(w, "xml:"+a.Name.Local, a.Value)
		default:
			p := "a" + strconv.Itoa(gen)
			gen++
			writeAttr(w, "xmlns:"+p, a.Name.Space)
			writeAttr(w, p+":"+a.Name.Local, a.Value)
		}
	}
}

func writeAttr(w BufWriter, name, value string) {
	w.WriteByte(' ')
	w.WriteString(name)
	w.WriteString(`="`)
	escape(w, []byte(value), true)
	w.WriteByte('"')
}

// escape writes text with the XML special characters escaped; in attribute
// values quotes and whitespace other than space are escaped too, so they
// survive attribute value normalisation.
func escape(w BufWriter, s []byte, attr bool) {
	last := 0
	for i := 0; i < len(s); {
		r, width := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, width = utf8.DecodeRune(s[i:])
		}
		var esc string
		switch {
		case r == '<':
			esc = "&lt;"
		case r == '>':
			esc = "&gt;"
		case r == '&':
			esc = "&amp;"
		case r == '"' && attr:
			esc = "&quot;"
		case r == '\r':
			esc = "&#xD;"
		case r == '\n' && attr:
			esc = "&#xA;"
		case r == '\t' && attr:
			esc = "&#x9;"
		case !validChar(r) || (r == utf8.RuneError && width == 1):
			esc = "\uFFFD"
		default:
			i += width
			continue
		}
		w.Write(s[last:i])
		w.WriteString(esc)
		i += width
		last = i
	}
	w.Write(s[last:])
}

// validChar reports whether r is in the XML 1.0 Char production.
func validChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) ||
		(r >= 0x10000 && r <= 0x10FFFF)
}

// Package xmltok reads the XML of client streams into encoding/xml tokens,
// faster than encoding/xml's Decoder and with fewer allocations.
//
// A Decoder yields what an encoding/xml Decoder with Strict set yields for
// the same input: the same tokens (names translated to namespace URLs the
// same way, character data with references resolved and line ends
// normalised) and an error where it errs, of a Kind that tells apart what
// RFC 6120 §4.9.3 names differently. The differences are deliberate and
// concern input an XMPP stream must not carry (RFC 6120 §11):
//
//   - A comment or a directive (DTD) is returned as an empty Comment or
//     Directive token as soon as it is recognised, without reading it, so
//     that the caller can refuse it at once.
//   - An XML declaration with an encoding other than UTF-8 is returned as
//     a ProcInst for the caller to refuse, not as an error.
//   - Some errors in input that is cut short or malformed in two ways at
//     once are reported as another error of the same Kind, or a little
//     later in the same token.
//
// The Decoder reads from a *bufio.Reader and consumes exactly the bytes of
// the tokens it returns: it never buffers input of its own, so the reader
// can be handed to a TLS handshake between two tokens, and Buffered tells
// whether input is waiting. Every byte consumed counts against a budget
// (SetBudget); a token that would exceed it ends with ErrTooBig.
package xmltok

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// ErrTooBig is returned when reading on would exceed the byte budget.
var ErrTooBig = errors.New("xmltok: byte budget exceeded")

// Kind classifies a SyntaxError.
type Kind int

const (
	// Malformed input: not well-formed XML.
	Malformed Kind = iota
	// Entity: a reference other than the five predefined entities or a
	// valid character reference.
	Entity
	// Char: invalid UTF-8 or a character outside XML's Char production.
	Char
	// Truncated: the input ended inside a token or an element.
	Truncated
)

// SyntaxError is an error in the input.
type SyntaxError struct {
	Kind Kind
	Msg  string
}

func (e *SyntaxError) Error() string { return "xml: " + e.Msg }

func syntaxErr(k Kind, msg string) error { return &SyntaxError{Kind: k, Msg: msg} }

// errTruncated is what an unexpected end of input becomes.
var errTruncated = &SyntaxError{Kind: Truncated, Msg: "unexpected EOF"}

const (
	xmlURL   = "http://www.w3.org/XML/1998/namespace"
	nsPrefix = "xmlns"
)

// maxKept is the largest buffer a Decoder keeps between tokens.
const maxKept = 4 << 10

// Decoder reads tokens from a bufio.Reader. It is not safe for concurrent
// use.
type Decoder struct {
	r      *bufio.Reader
	budget int   // bytes that may still be consumed
	err    error // a read error to return from the next call

	elems   []elem    // open elements, innermost last
	ns      []binding // namespace declarations in scope, innermost last
	closing bool      // the last token was a self-closing start: its end is next

	scratch []byte // a token that spans more than the buffered input
	text    []byte // character data returned
	sc      scanner
}

type elem struct {
	prefix, local string   // as written, to match the end tag
	name          xml.Name // as returned
	nsLen         int      // len(Decoder.ns) outside the element
}

type binding struct{ prefix, url string }

// NewDecoder returns a Decoder reading from r with an unlimited budget.
func NewDecoder(r *bufio.Reader) *Decoder {
	return &Decoder{r: r, budget: int(^uint(0) >> 1)}
}

// SetBudget sets how many more bytes the Decoder may consume.
func (d *Decoder) SetBudget(n int) { d.budget = n }

// Reset forgets the open elements and namespace declarations, for a new
// stream on the same reader (an XMPP stream restart). A pending read error
// stays.
func (d *Decoder) Reset() {
	d.elems = d.elems[:0]
	d.ns = d.ns[:0]
	d.closing = false
}

// Depth returns the number of open elements.
func (d *Decoder) Depth() int { return len(d.elems) }

// Token returns the next token, as encoding/xml's Decoder.Token does. The
// bytes of a CharData token are valid until the next call. At the end of
// input it returns io.EOF if no element is open.
func (d *Decoder) Token() (xml.Token, error) {
	if d.closing {
		d.closing = false
		return xml.EndElement{Name: d.pop()}, nil
	}
	// An idle stream should not keep the buffers of a big stanza.
	if cap(d.scratch) > maxKept {
		d.scratch = nil
	}
	if cap(d.text) > maxKept {
		d.text = nil
	}
	if d.err != nil {
		return nil, d.readErr(d.err)
	}
	if d.budget <= 0 {
		d.err = ErrTooBig
		return nil, ErrTooBig
	}
	if d.r.Buffered() == 0 {
		if _, err := d.r.Peek(1); err != nil {
			d.err = err
			return nil, d.readErr(err)
		}
	}
	b, _ := d.r.Peek(1)
	if b[0] != '<' {
		return d.readText()
	}
	return d.readMarkup()
}

// readErr is what a read error becomes when it ends a token: the end of
// input inside an element is unexpected.
func (d *Decoder) readErr(err error) error {
	if err == io.EOF && len(d.elems) > 0 {
		return errTruncated
	}
	return err
}

// cutErr is what a read error becomes inside a token.
func cutErr(err error) error {
	if err == io.EOF {
		return errTruncated
	}
	return err
}

// consume discards n bytes that the caller has looked at.
func (d *Decoder) consume(n int) {
	d.budget -= n
	d.r.Discard(n)
}

// span reads one token: it feeds the buffered input to scan until scan
// reports the token's end, and returns the token's bytes, which are valid
// until the next read. A read error or the budget cuts the token short;
// then err says why and tok holds what was read.
func (d *Decoder) span(scan func([]byte) (int, bool)) (tok []byte, err error) {
	d.scratch = d.scratch[:0]
	for {
		if d.r.Buffered() == 0 {
			if _, err := d.r.Peek(1); err != nil {
				return d.scratch, err
			}
		}
		b, _ := d.r.Peek(d.r.Buffered())
		cut := false
		if len(b) > d.budget {
			b, cut = b[:d.budget], true
		}
		n, done := scan(b)
		if done {
			if len(d.scratch) == 0 {
				tok = b[:n]
			} else {
				d.scratch = append(d.scratch, b[:n]...)
				tok = d.scratch
			}
			d.consume(n)
			return tok, nil
		}
		d.scratch = append(d.scratch, b...)
		d.consume(len(b))
		if cut || d.budget <= 0 {
			return d.scratch, ErrTooBig
		}
	}
}

// readText reads character data up to the next '<'.
func (d *Decoder) readText() (xml.Token, error) {
	raw, rerr := d.span(func(b []byte) (int, bool) {
		if i := bytes.IndexByte(b, '<'); i >= 0 {
			return i, true
		}
		return 0, false
	})
	if len(raw) == 0 {
		d.err = rerr
		return nil, d.readErr(rerr)
	}
	var text []byte
	if plain(raw) {
		text = append(d.text[:0], raw...)
	} else {
		var err error
		if text, err = decode(d.text[:0], raw, modeText, cutErr(rerr)); err == nil {
			err = checkChars(text)
		}
		if err != nil {
			d.err = err
			return nil, err
		}
	}
	// Text cut short is returned; the read error comes next.
	d.err = rerr
	d.text = text
	return xml.CharData(text), nil
}

// readMarkup reads a token starting with '<'.
func (d *Decoder) readMarkup() (xml.Token, error) {
	sc := &d.sc
	sc.reset()
	tok, rerr := d.span(sc.scan)
	rerr = cutErr(rerr)
	var t xml.Token
	var err error
	switch sc.kind {
	case kindStart:
		t, err = d.start(tok, rerr)
	case kindEnd:
		t, err = d.end(tok, rerr)
	case kindPI:
		t, err = d.procInst(tok, rerr)
	case kindComment:
		switch {
		case sc.bad:
			err = syntaxErr(Malformed, sc.msg)
		case rerr != nil:
			err = rerr
		default:
			t = xml.Comment{}
		}
	case kindDirective:
		if err = rerr; err == nil {
			t = xml.Directive{}
		}
	case kindCDATA:
		switch {
		case sc.bad:
			err = syntaxErr(Malformed, sc.msg)
		case rerr == errTruncated:
			err = syntaxErr(Truncated, "unexpected EOF in CDATA section")
		case rerr != nil:
			err = rerr
		default:
			var text []byte
			text, err = decode(d.text[:0], tok[len("<![CDATA["):len(tok)-len("]]>")], modeCDATA, nil)
			if err == nil {
				err = checkChars(text)
			}
			if err == nil {
				d.text = text
				t = xml.CharData(text)
			}
		}
	default: // cut short before the kind was known
		err = rerr
	}
	if err != nil {
		d.err = err
		return nil, err
	}
	return t, nil
}

// start builds a start element from tok, which the scanner took apart.
// Errors come in the order of the input, as encoding/xml finds them: the
// name, then each attribute, then whatever stopped the scanner.
func (d *Decoder) start(tok []byte, rerr error) (xml.Token, error) {
	sc := &d.sc
	stopped := func() error { // the scanner's error or the read error
		if sc.bad {
			return syntaxErr(Malformed, sc.msg)
		}
		return rerr
	}
	if sc.name.e < 0 {
		return nil, stopped()
	}
	prefix, local, err := qname(tok[sc.name.s:sc.name.e], "expected element name after <")
	if err != nil {
		return nil, err
	}
	var attrs []xml.Attr
	if len(sc.attrs) > 0 {
		attrs = make([]xml.Attr, 0, len(sc.attrs))
	}
	for _, a := range sc.attrs {
		if a.name.e < 0 {
			return nil, stopped()
		}
		ap, al, err := qname(tok[a.name.s:a.name.e], "expected attribute name in element")
		if err != nil {
			return nil, err
		}
		if a.val.s < 0 {
			return nil, stopped()
		}
		if a.val.e < 0 {
			// The value was cut short, or stopped by a '<'.
			raw := tok[a.val.s:]
			if sc.bad {
				if _, err := decode(nil, raw[:len(raw)-1], modeAttr, nil); err != nil {
					return nil, err
				}
				return nil, stopped()
			}
			v, err := decode(nil, raw, modeAttr, rerr)
			if err == nil {
				err = checkChars(v)
			}
			if err != nil {
				return nil, err
			}
			return nil, rerr
		}
		v, err := attrValue(tok[a.val.s:a.val.e], ap, al)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, xml.Attr{Name: xml.Name{Space: ap, Local: al}, Value: v})
	}
	if err := stopped(); err != nil {
		return nil, err
	}
	// Namespace declarations apply to the element's own name and
	// attributes, so they come first.
	nsLen := len(d.ns)
	for _, a := range attrs {
		switch {
		case a.Name.Space == nsPrefix:
			d.ns = append(d.ns, binding{a.Name.Local, a.Value})
		case a.Name.Space == "" && a.Name.Local == nsPrefix:
			d.ns = append(d.ns, binding{"", a.Value})
		}
	}
	name := d.translate(xml.Name{Space: prefix, Local: local}, true)
	for i := range attrs {
		attrs[i].Name = d.translate(attrs[i].Name, false)
	}
	d.elems = append(d.elems, elem{prefix: prefix, local: local, name: name, nsLen: nsLen})
	d.closing = sc.empty
	return xml.StartElement{Name: name, Attr: attrs}, nil
}

// attrValue decodes a complete attribute value. Namespace declarations
// and type values are interned.
func attrValue(raw []byte, prefix, local string) (string, error) {
	if plain(raw) {
		if prefix == nsPrefix || prefix == "" && (local == nsPrefix || local == "type") {
			return intern(raw), nil
		}
		return string(raw), nil
	}
	var buf [256]byte
	v, err := decode(buf[:0], raw, modeAttr, nil)
	if err == nil {
		err = checkChars(v)
	}
	if err != nil {
		return "", err
	}
	return string(v), nil
}

// end checks an end tag against the open element and closes it.
func (d *Decoder) end(tok []byte, rerr error) (xml.Token, error) {
	sc := &d.sc
	if sc.name.e < 0 {
		if sc.bad {
			return nil, syntaxErr(Malformed, sc.msg)
		}
		return nil, rerr
	}
	prefix, local, err := qnameBytes(tok[sc.name.s:sc.name.e], "expected element name after </")
	switch {
	case err != nil:
		return nil, err
	case sc.bad:
		return nil, syntaxErr(Malformed, "invalid characters between </"+string(local)+" and >")
	case rerr != nil:
		return nil, rerr
	}
	if len(d.elems) == 0 {
		return nil, syntaxErr(Malformed, "unexpected end element </"+string(local)+">")
	}
	top := &d.elems[len(d.elems)-1]
	if top.local != string(local) {
		return nil, syntaxErr(Malformed, "element <"+top.local+"> closed by </"+string(local)+">")
	}
	if top.prefix != string(prefix) {
		return nil, syntaxErr(Malformed, "element <"+top.local+"> in space "+top.prefix+" closed by </"+string(local)+"> in space "+string(prefix))
	}
	return xml.EndElement{Name: d.pop()}, nil
}

// pop closes the innermost element and returns its name.
func (d *Decoder) pop() xml.Name {
	top := d.elems[len(d.elems)-1]
	d.elems = d.elems[:len(d.elems)-1]
	clear(d.ns[top.nsLen:])
	d.ns = d.ns[:top.nsLen]
	return top.name
}

// procInst builds a processing instruction.
func (d *Decoder) procInst(tok []byte, rerr error) (xml.Token, error) {
	sc := &d.sc
	if sc.name.e < 0 {
		return nil, rerr
	}
	target := tok[sc.name.s:sc.name.e]
	if len(target) == 0 {
		return nil, syntaxErr(Malformed, "expected target name after <?")
	}
	if !isName(target) {
		return nil, syntaxErr(Malformed, "invalid XML name: "+string(target))
	}
	if rerr != nil {
		return nil, rerr
	}
	i := sc.name.e
	for i < len(tok) && isSpace(tok[i]) {
		i++
	}
	inst := bytes.Clone(tok[i : len(tok)-2])
	if string(target) == "xml" {
		if v := procInstParam("version", inst); v != "" && v != "1.0" {
			return nil, syntaxErr(Malformed, "unsupported version "+strconv.Quote(v)+"; only version 1.0 is supported")
		}
	}
	return xml.ProcInst{Target: intern(target), Inst: inst}, nil
}

// translate resolves a name's prefix as encoding/xml does: unprefixed
// attributes stay in no namespace, xmlns declarations keep their form, an
// unknown prefix stays as it is.
func (d *Decoder) translate(n xml.Name, element bool) xml.Name {
	switch {
	case n.Space == nsPrefix:
		return n
	case n.Space == "" && !element:
		return n
	case n.Space == "xml":
		n.Space = xmlURL
		return n
	case n.Space == "" && n.Local == nsPrefix:
		return n
	}
	for i := len(d.ns) - 1; i >= 0; i-- {
		if d.ns[i].prefix == n.Space {
			n.Space = d.ns[i].url
			return n
		}
	}
	return n
}

// qname splits a name into prefix and local part as encoding/xml's nsname
// does, and interns both.
func qname(b []byte, missing string) (prefix, local string, err error) {
	p, l, err := qnameBytes(b, missing)
	if err != nil {
		return "", "", err
	}
	if p != nil {
		prefix = intern(p)
	}
	return prefix, intern(l), nil
}

func qnameBytes(b []byte, missing string) (prefix, local []byte, err error) {
	if len(b) == 0 {
		return nil, nil, syntaxErr(Malformed, missing)
	}
	if !isName(b) {
		return nil, nil, syntaxErr(Malformed, "invalid XML name: "+string(b))
	}
	i := bytes.IndexByte(b, ':')
	switch {
	case i < 0:
		return nil, b, nil
	case bytes.IndexByte(b[i+1:], ':') >= 0:
		return nil, nil, syntaxErr(Malformed, missing)
	case i == 0 || i == len(b)-1:
		return nil, b, nil
	}
	return b[:i], b[i+1:], nil
}

// isName reports whether b is an XML name as encoding/xml understands it.
func isName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	ascii := true
	for i, c := range b {
		switch {
		case c >= utf8.RuneSelf:
			ascii = false
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_', c == ':':
		case '0' <= c && c <= '9', c == '-', c == '.':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return ascii || isNameSlow(b)
}

// isNameSlow asks encoding/xml about a name with non-ASCII letters, which
// clients hardly ever send: its tables of name characters are not
// exported. Colons are letters to it, so they are replaced, and the name
// goes in an element of its own.
func isNameSlow(b []byte) bool {
	in := make([]byte, 0, len(b)+3)
	in = append(in, '<')
	for _, c := range b {
		if c == ':' {
			c = 'a'
		}
		in = append(in, c)
	}
	in = append(in, '/', '>')
	_, err := xml.NewDecoder(bytes.NewReader(in)).RawToken()
	return err == nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\r' || c == '\n' || c == '\t' }

// isNameByte reports whether c may be part of a name; bytes of multi-byte
// characters all may, and isName checks them.
func isNameByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '_' || c == ':' || c == '.' || c == '-' || c >= utf8.RuneSelf
}

// procInstParam returns a pseudo-attribute of an XML declaration, as
// encoding/xml's procInst does.
func procInstParam(param string, s []byte) string {
	p := []byte(param + "=")
	i := 0
	var sep byte
	for i < len(s) {
		sub := s[i:]
		k := bytes.Index(sub, p)
		if k < 0 || len(p)+k >= len(sub) {
			return ""
		}
		i += len(p) + k + 1
		if c := sub[len(p)+k]; c == '\'' || c == '"' {
			sep = c
			break
		}
	}
	if sep == 0 {
		return ""
	}
	j := bytes.IndexByte(s[i:], sep)
	if j < 0 {
		return ""
	}
	return string(s[i : i+j])
}

// XMLDeclEncoding returns the encoding an XML declaration's instruction
// names, or "".
func XMLDeclEncoding(inst []byte) string { return procInstParam("encoding", inst) }

// plain reports whether raw needs no decoding: printable ASCII without
// references, carriage returns or "]]>".
func plain(raw []byte) bool {
	for _, c := range raw {
		if c < 0x20 && c != '\t' && c != '\n' || c >= utf8.RuneSelf || c == '&' || c == ']' || c == '\r' {
			return false
		}
	}
	return true
}

type mode int

const (
	modeText  mode = iota // character data between tags
	modeAttr              // an attribute value
	modeCDATA             // a CDATA section's content
)

// decode appends the character data raw stands for to dst: references
// resolved (but not in CDATA), line ends normalised. raw ends where the
// text ends, or, if rerr is not nil, where a read error cut it short: a
// reference cut short then reports rerr. The characters are left for
// checkChars, which encoding/xml runs once the text is complete.
func decode(dst, raw []byte, m mode, rerr error) ([]byte, error) {
	i := 0
	for i < len(raw) {
		c := raw[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '&' && c != ']' || c == '\n' || c == '\t' {
			i++
			continue
		}
		break
	}
	dst = append(dst, raw[:i]...)
	var p1, p2 byte // the raw bytes before, for "]]>" and "\r\n"
	for i < len(raw) {
		c := raw[i]
		switch {
		case c == '&' && m != modeCDATA:
			j, err := reference(&dst, raw, i, rerr)
			if err != nil {
				return nil, err
			}
			i = j
			p1, p2 = 0, 0
			continue
		case c == '>' && m == modeText && p1 == ']' && p2 == ']':
			return nil, syntaxErr(Malformed, "unescaped ]]> not in CDATA section")
		case c == '\r':
			dst = append(dst, '\n')
		case c == '\n' && p1 == '\r':
		default:
			dst = append(dst, c)
		}
		p2, p1 = p1, c
		i++
	}
	return dst, nil
}

// checkChars checks that b is UTF-8 made of XML Chars.
func checkChars(b []byte) error {
	for len(b) > 0 {
		c := b[0]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return syntaxErr(Char, "illegal character code "+strconv.QuoteRuneToASCII(rune(c)))
			}
			b = b[1:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			return syntaxErr(Char, "invalid UTF-8")
		}
		if !inCharRange(r) {
			return syntaxErr(Char, "illegal character code "+strconv.QuoteRuneToASCII(r))
		}
		b = b[size:]
	}
	return nil
}

// reference resolves the reference at raw[i] ('&') and returns the index
// after it.
func reference(dst *[]byte, raw []byte, i int, rerr error) (int, error) {
	// What encoding/xml does when the reference stops at the end of raw:
	// if raw was cut short, it reads on and gets the read error; if the
	// text ended (at '<' or a quote), that character cannot continue a
	// reference.
	end := func(ent []byte) (int, error) {
		if rerr != nil {
			return 0, rerr
		}
		return 0, entityErr(ent, false)
	}
	j := i + 1
	if j == len(raw) {
		return end(raw[i:j])
	}
	if raw[j] == '#' {
		j++
		if j == len(raw) {
			return end(raw[i:j])
		}
		base := 10
		if raw[j] == 'x' {
			base = 16
			j++
			if j == len(raw) {
				return end(raw[i:j])
			}
		}
		digits := j
		for j < len(raw) && isDigit(raw[j], base) {
			j++
		}
		if j == len(raw) {
			return end(raw[i:j])
		}
		if raw[j] != ';' {
			return 0, entityErr(raw[i:j], false)
		}
		n, err := strconv.ParseUint(string(raw[digits:j]), base, 64)
		if err != nil || n > unicode.MaxRune {
			return 0, entityErr(raw[i:j+1], true)
		}
		*dst = utf8.AppendRune(*dst, rune(n))
		return j + 1, nil
	}
	for j < len(raw) && isNameByte(raw[j]) {
		j++
	}
	if j == len(raw) {
		return end(raw[i:j])
	}
	if raw[j] != ';' {
		return 0, entityErr(raw[i:j], false)
	}
	var r byte
	switch string(raw[i+1 : j]) {
	case "lt":
		r = '<'
	case "gt":
		r = '>'
	case "amp":
		r = '&'
	case "apos":
		r = '\''
	case "quot":
		r = '"'
	default:
		return 0, entityErr(raw[i:j+1], true)
	}
	*dst = append(*dst, r)
	return j + 1, nil
}

func entityErr(ent []byte, semicolon bool) error {
	s := string(ent)
	if !semicolon {
		s += " (no semicolon)"
	}
	return syntaxErr(Entity, "invalid character entity "+s)
}

func isDigit(c byte, base int) bool {
	return '0' <= c && c <= '9' || base == 16 && ('a' <= c && c <= 'f' || 'A' <= c && c <= 'F')
}

// inCharRange reports whether r is an XML Char.
func inCharRange(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

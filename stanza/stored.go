package stanza

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"sync"

	"mellium.im/xmpp/jid"
)

// Stored stanzas (offline messages, the message archive) have one format,
// the bytes Marshal returns: the stanza element as WriteTo writes it, with
// xmlns="jabber:client" declared on it, so that it is a well-formed
// element on its own. An archive result carries it verbatim as a Raw
// token, and Unmarshal rebuilds a stanza from it without parsing its
// inner XML.
//
// The format is told apart from older ones by its first byte, '<'.
// Records beginning with byte 1 are in the format the offline module
// stored before (a version byte; id, type, xml:lang, from and to, each a
// uvarint length and its bytes; a uvarint count of other attributes, each
// as namespace, local name and value; then the inner XML as WriteTokens
// writes it inside jabber:client): Unmarshal and RawElement still read
// them. The archive always stored the current format.

// ErrStored is wrapped by the errors Unmarshal, RawElement and ParseRaw
// return for data that is no stored stanza.
var ErrStored = errors.New("stanza: malformed stored stanza")

// legacyOffline is the version byte of the offline module's older records.
const legacyOffline = 1

// Marshal returns the stored form of s, for offline storage and the
// archive.
func Marshal(s *Stanza) []byte {
	b := marshalBufs.Get().(*bytes.Buffer)
	b.Reset()
	s.WriteDeclared(b)
	out := bytes.Clone(b.Bytes())
	if b.Cap() <= 64<<10 {
		marshalBufs.Put(b)
	}
	return out
}

// marshalBufs are Marshal's scratch buffers.
var marshalBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Unmarshal rebuilds a stanza from data Marshal returned (or an older
// offline record). Its inner XML is kept as one Raw token that aliases
// data, so data must not change afterwards; ParseRaw turns it into tokens
// where they are needed.
func Unmarshal(data []byte) (*Stanza, error) {
	switch {
	case len(data) == 0:
		return nil, fmt.Errorf("%w: empty", ErrStored)
	case data[0] == '<':
		return unmarshalElement(data)
	case data[0] == legacyOffline:
		return unmarshalLegacy(data)
	}
	return nil, fmt.Errorf("%w: unknown format %#x", ErrStored, data[0])
}

// RawElement returns stored data as one serialised element declaring its
// namespace, to be placed among another stanza's tokens (a forwarded
// message in an archive result): data itself (aliased) when it is in the
// current format, which is only checked by its first byte.
func RawElement(data []byte) (Raw, error) {
	if len(data) > 0 && data[0] == '<' {
		return Raw(data), nil
	}
	st, err := Unmarshal(data)
	if err != nil {
		return nil, err
	}
	return Raw(Marshal(st)), nil
}

// unmarshalElement reads the current format: the start element is parsed,
// what follows up to the end tag is the inner XML.
func unmarshalElement(data []byte) (*Stanza, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	t, err := d.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStored, err)
	}
	start, ok := t.(xml.StartElement)
	if !ok || start.Name.Space != NSClient {
		return nil, fmt.Errorf("%w: no jabber:client element", ErrStored)
	}
	st, err := header(start)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStored, err)
	}
	off := int(d.InputOffset())
	if off >= 2 && off <= len(data) && data[off-2] == '/' {
		// <message .../>: nothing may follow.
		if off != len(data) {
			return nil, fmt.Errorf("%w: data after the element", ErrStored)
		}
		return st, nil
	}
	rest, local := data[off:], start.Name.Local
	n := len(rest) - len(local) - 3
	if n < 0 || string(rest[n:n+2]) != "</" || string(rest[n+2:len(rest)-1]) != local || rest[len(rest)-1] != '>' {
		return nil, fmt.Errorf("%w: no end tag", ErrStored)
	}
	if n > 0 {
		st.Inner = []xml.Token{Raw(rest[:n])}
	}
	return st, nil
}

// unmarshalLegacy reads the offline module's older records (version byte
// 1), which held messages only.
func unmarshalLegacy(data []byte) (*Stanza, error) {
	r := legacyReader{b: data[1:]}
	var f [5]string
	for i := range f {
		f[i] = r.string()
	}
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		return nil, ErrStored
	}
	st := &Stanza{Kind: Message, ID: f[0], Type: f[1], Lang: f[2]}
	var err error
	if f[3] != "" {
		if st.From, err = jid.Parse(f[3]); err != nil {
			return nil, fmt.Errorf("%w: from: %w", ErrStored, err)
		}
	}
	if f[4] != "" {
		if st.To, err = jid.Parse(f[4]); err != nil {
			return nil, fmt.Errorf("%w: to: %w", ErrStored, err)
		}
	}
	for range n {
		space, local, value := r.string(), r.string(), r.string()
		st.Attrs = append(st.Attrs, xml.Attr{Name: xml.Name{Space: space, Local: local}, Value: value})
	}
	if r.err != nil {
		return nil, ErrStored
	}
	// The attributes must make a well-formed start element (names and
	// values were never checked): the header must read back as one.
	if _, err := unmarshalElement(Marshal(st)); err != nil {
		return nil, err
	}
	if len(r.b) > 0 {
		st.Inner = []xml.Token{Raw(r.b)}
	}
	return st, nil
}

type legacyReader struct {
	b   []byte
	err error
}

func (r *legacyReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = ErrStored
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *legacyReader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = ErrStored
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// ParseRaw replaces the Raw tokens among s's inner tokens (at any depth)
// by the tokens they hold, for readers that need them, such as an
// XEP-0227 export of stored messages. Errors wrap ErrStored.
func (s *Stanza) ParseRaw() error {
	has := false
	for _, t := range s.Inner {
		if _, ok := t.(Raw); ok {
			has = true
			break
		}
	}
	if !has {
		return nil
	}
	inner := make([]xml.Token, 0, len(s.Inner))
	stack := []string{NSClient} // namespaces of the open elements
	var doc bytes.Buffer
	for _, t := range s.Inner {
		switch tt := t.(type) {
		case xml.StartElement:
			stack = append(stack, tt.Name.Space)
		case xml.EndElement:
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
		case Raw:
			// Parse it inside an element of its parent's namespace.
			doc.Reset()
			doc.WriteString("<raw")
			writeAttr(&doc, "xmlns", stack[len(stack)-1])
			doc.WriteByte('>')
			doc.Write(tt)
			doc.WriteString("</raw>")
			toks, err := ParseElement(doc.Bytes())
			if err != nil {
				return fmt.Errorf("%w: %w", ErrStored, err)
			}
			inner = append(inner, toks[1:len(toks)-1]...)
			continue
		}
		inner = append(inner, t)
	}
	s.Inner = inner
	return nil
}

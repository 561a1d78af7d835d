package offline

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
)

// recordVersion is the first byte of every stored record.
const recordVersion = 1

// A stored message (storage.OfflineMessage.Data) is:
//
//	version byte (1)
//	id, type, xml:lang, from, to: each a uvarint length and the bytes
//	uvarint count of other attributes, each as namespace, local name, value
//	the inner XML, as stanza.WriteTokens writes it inside jabber:client
//
// The header is kept apart from the inner XML so that delivery rebuilds the
// stanza without parsing: the inner XML goes out as stanza.Raw.

var errRecord = errors.New("offline: malformed stored message")

// encode serialises a message for storage.
func encode(s *stanza.Stanza) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte(recordVersion)
	for _, f := range []string{s.ID, s.Type, s.Lang, s.From.String(), s.To.String()} {
		putString(&b, f)
	}
	putUvarint(&b, uint64(len(s.Attrs)))
	for _, a := range s.Attrs {
		putString(&b, a.Name.Space)
		putString(&b, a.Name.Local)
		putString(&b, a.Value)
	}
	if err := stanza.WriteTokens(&b, s.Inner, stanza.NSClient); err != nil {
		return nil, fmt.Errorf("offline: serialising a message: %w", err)
	}
	return b.Bytes(), nil
}

// decode rebuilds a stored message whose inner XML is kept as stanza.Raw
// (aliasing data, which must not change afterwards).
func decode(data []byte) (*stanza.Stanza, error) {
	if len(data) == 0 || data[0] != recordVersion {
		return nil, errRecord
	}
	r := reader{b: data[1:]}
	var f [5]string
	for i := range f {
		f[i] = r.string()
	}
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		return nil, errRecord
	}
	st := &stanza.Stanza{Kind: stanza.Message, ID: f[0], Type: f[1], Lang: f[2]}
	var err error
	if f[3] != "" {
		if st.From, err = jid.Parse(f[3]); err != nil {
			return nil, fmt.Errorf("%w: from: %w", errRecord, err)
		}
	}
	if f[4] != "" {
		if st.To, err = jid.Parse(f[4]); err != nil {
			return nil, fmt.Errorf("%w: to: %w", errRecord, err)
		}
	}
	for range n {
		space, local, value := r.string(), r.string(), r.string()
		st.Attrs = append(st.Attrs, xml.Attr{Name: xml.Name{Space: space, Local: local}, Value: value})
	}
	if r.err != nil {
		return nil, errRecord
	}
	if len(r.b) > 0 {
		st.Inner = []xml.Token{stanza.Raw(r.b)}
	}
	return st, nil
}

// parseInner replaces a decoded message's Raw inner XML by tokens, for
// readers that need them (the XEP-0227 export).
func parseInner(st *stanza.Stanza) error {
	if len(st.Inner) != 1 {
		return nil
	}
	raw, ok := st.Inner[0].(stanza.Raw)
	if !ok {
		return nil
	}
	doc := make([]byte, 0, len(raw)+64)
	doc = append(doc, `<message xmlns="jabber:client">`...)
	doc = append(doc, raw...)
	doc = append(doc, `</message>`...)
	toks, err := stanza.ParseElement(doc)
	if err != nil {
		return fmt.Errorf("%w: %w", errRecord, err)
	}
	st.Inner = toks[1 : len(toks)-1]
	return nil
}

func putUvarint(b *bytes.Buffer, v uint64) {
	var tmp [binary.MaxVarintLen64]byte
	b.Write(tmp[:binary.PutUvarint(tmp[:], v)])
}

func putString(b *bytes.Buffer, s string) {
	putUvarint(b, uint64(len(s)))
	b.WriteString(s)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errRecord
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

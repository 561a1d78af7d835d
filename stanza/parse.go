package stanza

import (
	"bytes"
	"encoding/xml"
)

// ParseElement reads one serialised element (as WriteTokens wrote it, for
// storage) back into tokens with explicit namespaces and no namespace
// declarations, start and end element included.
func ParseElement(data []byte) ([]xml.Token, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	for {
		t, err := d.Token()
		if err != nil {
			return nil, err
		}
		se, ok := t.(xml.StartElement)
		if !ok {
			continue
		}
		inner, err := ReadElement(d, 0)
		if err != nil {
			return nil, err
		}
		toks := make([]xml.Token, 0, len(inner)+2)
		toks = append(toks, copyStart(se))
		toks = append(toks, inner...)
		return append(toks, se.End()), nil
	}
}

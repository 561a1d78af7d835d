// Package caps implements the verification string of XEP-0115 Entity
// Capabilities: the hash of an entity's disco#info (identities,
// features and XEP-0128 extended forms) that it advertises in a
// <c xmlns='http://jabber.org/protocol/caps'/> element of its presence,
// so that others learn its features once per hash instead of once per
// entity.
//
// Info holds the pieces of a disco#info answer; its Ver method is the
// generation method of XEP-0115 §5.1 and Verify the check of §5.4 that
// a processing entity makes before it caches an answer. Parse reads a
// disco#info <query/> element, as a client sends it, into an Info and
// rejects the answers §5.4 calls ill-formed. FromStanza reads the <c/>
// element of a presence.
//
// Sorting is by octets ("i;octet", RFC 4790 §9.3), Go's string order.
// Character data is used as decoded: a name containing the four
// characters "&lt;" is hashed as those four characters (the §5.1
// warning), one containing "<" (written &lt; in XML) as "<".
package caps

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"hash"
	"slices"
	"strings"

	"github.com/kiez-im/kiez/stanza"
)

// Namespaces this package reads and writes.
const (
	NS          = "http://jabber.org/protocol/caps"       // XEP-0115
	NSDiscoInfo = "http://jabber.org/protocol/disco#info" // XEP-0030
	NSData      = "jabber:x:data"                         // XEP-0004 forms, XEP-0128 in disco#info
)

const (
	formType = "FORM_TYPE"                            // XEP-0068
	nsXML    = "http://www.w3.org/XML/1998/namespace" // xml:lang
)

// Hash functions, named as in the IANA "Hash Function Textual Names"
// registry that XEP-0115's 'hash' attribute uses. SHA-1 is the one every
// implementation must support (XEP-0115 §8.1).
const (
	SHA1   = "sha-1"
	SHA256 = "sha-256"
	SHA512 = "sha-512"
)

// ErrUnsupportedHash is returned by Ver for a hash function this package
// does not implement.
var ErrUnsupportedHash = errors.New("caps: unsupported hash function")

// Supported reports whether h names a hash function Ver implements:
// SHA1, SHA256 or SHA512.
func Supported(h string) bool { return newHash(h) != nil }

func newHash(h string) hash.Hash {
	switch h {
	case SHA1:
		return sha1.New()
	case SHA256:
		return sha256.New()
	case SHA512:
		return sha512.New()
	}
	return nil
}

// Identity is a XEP-0030 identity. Category and Type are required, Lang
// (xml:lang) and Name optional.
type Identity struct {
	Category, Type, Lang, Name string
}

// String returns the identity as §5.1 hashes it: category/type/lang/name.
func (id Identity) String() string {
	return id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name
}

// Field is a field of an extended form: its var and its values.
type Field struct {
	Var    string
	Values []string
}

// Form is a XEP-0128 extended disco#info form: its FORM_TYPE and its
// other fields.
type Form struct {
	FormType string
	Fields   []Field // every field but FORM_TYPE
}

// Info is what a disco#info answer tells, as far as the verification
// string covers it.
type Info struct {
	Identities []Identity
	Features   []string
	Forms      []Form
}

// Input returns the string S that §5.1 hashes, built from in without
// changing it: identities sorted by category, type, lang (then name),
// features sorted, forms sorted by FORM_TYPE with their fields sorted by
// var and each field's values sorted, every item followed by '<'.
func (in Info) Input() string { return in.input(false) }

// input builds S. joined sorts identities by their category/type/lang/name
// strings instead of field by field: the two orders differ only when a
// category or type is a prefix of another followed by a character below
// '/', and some implementations use the second.
func (in Info) input(joined bool) string {
	var b strings.Builder
	ids := slices.Clone(in.Identities)
	if joined {
		slices.SortFunc(ids, func(a, c Identity) int { return strings.Compare(a.String(), c.String()) })
	} else {
		slices.SortFunc(ids, compareIdentities)
	}
	for _, id := range ids {
		b.WriteString(id.Category)
		b.WriteByte('/')
		b.WriteString(id.Type)
		b.WriteByte('/')
		b.WriteString(id.Lang)
		b.WriteByte('/')
		b.WriteString(id.Name)
		b.WriteByte('<')
	}
	for _, f := range sorted(in.Features) {
		b.WriteString(f)
		b.WriteByte('<')
	}
	forms := slices.Clone(in.Forms)
	slices.SortStableFunc(forms, func(a, c Form) int { return strings.Compare(a.FormType, c.FormType) })
	for _, f := range forms {
		b.WriteString(f.FormType)
		b.WriteByte('<')
		fields := slices.Clone(f.Fields)
		slices.SortStableFunc(fields, func(a, c Field) int { return strings.Compare(a.Var, c.Var) })
		for _, fd := range fields {
			b.WriteString(fd.Var)
			b.WriteByte('<')
			for _, v := range sorted(fd.Values) {
				b.WriteString(v)
				b.WriteByte('<')
			}
		}
	}
	return b.String()
}

func compareIdentities(a, c Identity) int {
	if n := strings.Compare(a.Category, c.Category); n != 0 {
		return n
	}
	if n := strings.Compare(a.Type, c.Type); n != 0 {
		return n
	}
	if n := strings.Compare(a.Lang, c.Lang); n != 0 {
		return n
	}
	return strings.Compare(a.Name, c.Name)
}

func sorted(s []string) []string {
	if slices.IsSorted(s) {
		return s
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// Ver returns the verification string of in for the hash function h
// (XEP-0115 §5.1): S hashed and encoded in standard base64 with padding.
// It returns ErrUnsupportedHash for a function Supported does not know.
func (in Info) Ver(h string) (string, error) {
	return digest(h, in.Input())
}

func digest(h, s string) (string, error) {
	f := newHash(h)
	if f == nil {
		return "", ErrUnsupportedHash
	}
	f.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(f.Sum(nil)), nil
}

// Verify reports whether ver is the verification string of in for the
// hash function h (XEP-0115 §5.4). It reports false for a hash function
// Supported does not know. in should come from Parse, which rejects
// what §5.4 calls ill-formed. Identities sorted by their joined
// category/type/lang/name strings are accepted too, as some
// implementations generate them (the two orders rarely differ).
func (in Info) Verify(h, ver string) bool {
	if ver == "" {
		return false
	}
	s := in.input(false)
	if got, err := digest(h, s); err != nil || got == ver {
		return err == nil
	}
	if j := in.input(true); j != s {
		got, _ := digest(h, j)
		return got == ver
	}
	return false
}

// Caps is the <c xmlns='http://jabber.org/protocol/caps'/> element an
// entity adds to its presence (XEP-0115 §4). Hash is empty in the legacy
// format (before version 1.4 of XEP-0115), whose Ver is no verification
// string.
type Caps struct {
	Hash string
	Node string // a URI naming the software
	Ver  string
}

// Legacy reports whether c is in the legacy format: no 'hash'.
func (c Caps) Legacy() bool { return c.Hash == "" }

// DiscoNode returns the disco#info node to ask for c's information:
// node#ver (XEP-0115 §6.2).
func (c Caps) DiscoNode() string { return c.Node + "#" + c.Ver }

// TokenReader returns the <c/> element.
func (c Caps) TokenReader() xml.TokenReader {
	var attrs []xml.Attr
	if c.Hash != "" {
		attrs = append(attrs, stanza.Attr("hash", c.Hash))
	}
	attrs = append(attrs, stanza.Attr("node", c.Node), stanza.Attr("ver", c.Ver))
	return stanza.Elem(xml.Name{Space: NS, Local: "c"}, attrs)
}

// FromStanza returns the first <c xmlns='http://jabber.org/protocol/caps'/>
// child of st, and whether it has one with a 'ver'.
func FromStanza(st *stanza.Stanza) (Caps, bool) {
	el, ok := st.ChildElement(xml.Name{Space: NS, Local: "c"})
	if !ok {
		return Caps{}, false
	}
	c := Caps{Hash: el.Attr("hash"), Node: el.Attr("node"), Ver: el.Attr("ver")}
	return c, c.Ver != ""
}

// Query returns a disco#info <query/> element telling in, with the node
// attribute if node is not empty: what an entity answers for its caps
// node (XEP-0115 §6.2). Forms are written with type result and a hidden
// FORM_TYPE field.
func (in Info) Query(node string) xml.TokenReader {
	var attrs []xml.Attr
	if node != "" {
		attrs = append(attrs, stanza.Attr("node", node))
	}
	children := make([]xml.TokenReader, 0, len(in.Identities)+len(in.Features)+len(in.Forms))
	for _, id := range in.Identities {
		a := []xml.Attr{stanza.Attr("category", id.Category), stanza.Attr("type", id.Type)}
		if id.Lang != "" {
			a = append(a, xml.Attr{Name: xml.Name{Space: nsXML, Local: "lang"}, Value: id.Lang})
		}
		if id.Name != "" {
			a = append(a, stanza.Attr("name", id.Name))
		}
		children = append(children, stanza.Elem(nameIdentity, a))
	}
	for _, f := range in.Features {
		children = append(children, stanza.Elem(nameFeature, []xml.Attr{stanza.Attr("var", f)}))
	}
	for _, f := range in.Forms {
		fields := make([]xml.TokenReader, 0, 1+len(f.Fields))
		fields = append(fields, stanza.Elem(nameField, []xml.Attr{stanza.Attr("var", formType), stanza.Attr("type", "hidden")},
			stanza.TextElem(nameValue, f.FormType)))
		for _, fd := range f.Fields {
			values := make([]xml.TokenReader, 0, len(fd.Values))
			for _, v := range fd.Values {
				values = append(values, stanza.TextElem(nameValue, v))
			}
			fields = append(fields, stanza.Elem(nameField, []xml.Attr{stanza.Attr("var", fd.Var)}, values...))
		}
		children = append(children, stanza.Elem(nameX, []xml.Attr{stanza.Attr("type", "result")}, fields...))
	}
	return stanza.Elem(nameQuery, attrs, children...)
}

package caps

import (
	"encoding/xml"
	"errors"
	"fmt"

	"github.com/kiez-im/kiez/stanza"
)

// ErrMalformed is wrapped by the errors of Parse: the answer is not a
// disco#info <query/>, or it is one that XEP-0115 §5.4 calls ill-formed,
// whose verification string must not be trusted.
var ErrMalformed = errors.New("caps: ill-formed disco#info")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

var (
	nameQuery    = xml.Name{Space: NSDiscoInfo, Local: "query"}
	nameIdentity = xml.Name{Space: NSDiscoInfo, Local: "identity"}
	nameFeature  = xml.Name{Space: NSDiscoInfo, Local: "feature"}
	nameX        = xml.Name{Space: NSData, Local: "x"}
	nameField    = xml.Name{Space: NSData, Local: "field"}
	nameValue    = xml.Name{Space: NSData, Local: "value"}
)

// Parse reads a disco#info <query xmlns='http://jabber.org/protocol/disco#info'/>
// element (with explicit namespaces, as in a stanza's Inner) into the
// pieces the verification string covers. Following XEP-0115 §5.4, it
// fails with an error wrapping ErrMalformed when:
//
//   - query is not a disco#info query;
//   - an identity lacks its category or type (XEP-0030 requires both),
//     or a feature its var;
//   - two identities have the same category, type, lang and name, or two
//     features the same var;
//   - a form has two fields with the same var (among them two FORM_TYPE
//     fields: XEP-0004 makes vars unique), or a FORM_TYPE with values
//     that differ;
//   - two forms kept have the same FORM_TYPE.
//
// A form without a FORM_TYPE field, or whose FORM_TYPE is not of type
// hidden or has no value, is ignored, as §5.4 says; so are fields without
// a var (they cannot be sorted by it) and children of other names.
func Parse(query stanza.Element) (Info, error) {
	if query.Name != nameQuery {
		return Info{}, malformed("<%s xmlns='%s'/> is no disco#info query", query.Name.Local, query.Name.Space)
	}
	var in Info
	ids := make(map[Identity]struct{})
	features := make(map[string]struct{})
	types := make(map[string]struct{})
	for el := range query.Children() {
		switch el.Name {
		case nameIdentity:
			id := Identity{Category: el.Attr("category"), Type: el.Attr("type"), Lang: lang(el), Name: el.Attr("name")}
			if id.Category == "" || id.Type == "" {
				return Info{}, malformed("identity without category or type")
			}
			if _, dup := ids[id]; dup {
				return Info{}, malformed("duplicate identity %q", id.String())
			}
			ids[id] = struct{}{}
			in.Identities = append(in.Identities, id)
		case nameFeature:
			v := el.Attr("var")
			if v == "" {
				return Info{}, malformed("feature without var")
			}
			if _, dup := features[v]; dup {
				return Info{}, malformed("duplicate feature %q", v)
			}
			features[v] = struct{}{}
			in.Features = append(in.Features, v)
		case nameX:
			f, ok, err := ParseForm(el)
			if err != nil {
				return Info{}, err
			}
			if !ok {
				continue
			}
			if _, dup := types[f.FormType]; dup {
				return Info{}, malformed("two forms of FORM_TYPE %q", f.FormType)
			}
			types[f.FormType] = struct{}{}
			in.Forms = append(in.Forms, f)
		}
	}
	return in, nil
}

// ParseTokens is Parse on the first element of toks.
func ParseTokens(toks []xml.Token) (Info, error) {
	for el := range stanza.Elements(toks) {
		return Parse(el)
	}
	return Info{}, malformed("no element")
}

// ParseForm reads a XEP-0128 extended form, <x xmlns='jabber:x:data'/>,
// for the verification string. ok is false for a form §5.4 ignores: no
// FORM_TYPE field, or one that is not hidden or has no value. The errors
// are Parse's for a form: a var twice, or a FORM_TYPE with values that
// differ.
func ParseForm(x stanza.Element) (f Form, ok bool, err error) {
	if x.Name != nameX {
		return Form{}, false, malformed("<%s xmlns='%s'/> is no data form", x.Name.Local, x.Name.Space)
	}
	vars := make(map[string]struct{})
	var hasType, hidden bool
	var typeValues []string
	for fd := range x.Children() {
		if fd.Name != nameField {
			continue
		}
		v := fd.Attr("var")
		if v == "" {
			continue
		}
		if _, dup := vars[v]; dup {
			return Form{}, false, malformed("field %q twice in a form", v)
		}
		vars[v] = struct{}{}
		var values []string
		for val := range fd.Children() {
			if val.Name == nameValue {
				values = append(values, val.Text())
			}
		}
		if v == formType {
			hasType, hidden, typeValues = true, fd.Attr("type") == "hidden", values
			continue
		}
		f.Fields = append(f.Fields, Field{Var: v, Values: values})
	}
	for _, v := range typeValues {
		if v != typeValues[0] {
			return Form{}, false, malformed("FORM_TYPE with different values")
		}
	}
	if !hasType || !hidden || len(typeValues) == 0 {
		return Form{}, false, nil
	}
	f.FormType = typeValues[0]
	return f, true, nil
}

// lang returns an element's xml:lang.
func lang(el stanza.Element) string {
	for _, a := range el.Start().Attr {
		if a.Name.Local == "lang" && (a.Name.Space == nsXML || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}

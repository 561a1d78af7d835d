package server

import (
	"crypto/sha1"
	"encoding/base64"
	"sort"
	"strings"

	"github.com/kiez-im/kiez/stanza"
)

// XEP-0115 entity capabilities of the server itself.
const (
	nsCaps   = "http://jabber.org/protocol/caps"
	capsNode = "https://kiez.im"
)

// capsVer computes the XEP-0115 §5.1 verification string of the server's
// disco#info: identities, features and extended forms, sorted and hashed
// with SHA-1 (the hash every client knows).
func (s *Server) capsVer() string {
	var b strings.Builder
	ids := s.identitiesFor(TargetHost)
	sort.Slice(ids, func(i, j int) bool {
		a, c := ids[i], ids[j]
		return a.Category+"/"+a.Type+"/"+a.Lang+"/"+a.Name < c.Category+"/"+c.Type+"/"+c.Lang+"/"+c.Name
	})
	for _, id := range ids {
		b.WriteString(id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name + "<")
	}
	for _, f := range s.sortedFeatures(TargetHost) {
		b.WriteString(f + "<")
	}
	type form struct {
		formType string
		fields   map[string][]string
	}
	var forms []form
	for _, p := range s.forms {
		for _, r := range p.Forms(TargetHost) {
			f := form{fields: make(map[string][]string)}
			for x := range stanza.Elements(stanza.Resolve(r, "jabber:x:data")) {
				for fd := range x.Children() {
					if fd.Name.Local != "field" {
						continue
					}
					field := fd.Attr("var")
					f.fields[field] = f.fields[field][:0:0]
					for v := range fd.Children() {
						if v.Name.Local == "value" {
							f.fields[field] = append(f.fields[field], v.Text())
						}
					}
				}
			}
			if v := f.fields["FORM_TYPE"]; len(v) > 0 {
				f.formType = v[0]
			}
			forms = append(forms, f)
		}
	}
	sort.Slice(forms, func(i, j int) bool { return forms[i].formType < forms[j].formType })
	for _, f := range forms {
		b.WriteString(f.formType + "<")
		vars := make([]string, 0, len(f.fields))
		for v := range f.fields {
			if v != "FORM_TYPE" {
				vars = append(vars, v)
			}
		}
		sort.Strings(vars)
		for _, v := range vars {
			b.WriteString(v + "<")
			values := append([]string(nil), f.fields[v]...)
			sort.Strings(values)
			for _, val := range values {
				b.WriteString(val + "<")
			}
		}
	}
	sum := sha1.Sum([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// capsFeature is the <c/> element the server adds to its stream features
// (XEP-0115 §6.3).
func (s *Server) capsFeature() string {
	return `<c xmlns='` + nsCaps + `' hash='sha-1' node='` + capsNode + `' ver='` + s.caps + `'/>`
}

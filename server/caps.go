package server

import (
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/caps"
)

// XEP-0115 entity capabilities of the server itself.
const (
	nsCaps   = caps.NS
	capsNode = "https://kiez.im"
)

// capsVer computes the XEP-0115 §5.1 verification string of the server's
// disco#info: identities, features and extended forms, hashed with SHA-1
// (the hash every client knows) by package stanza/caps. Forms that a
// verifying client ignores (XEP-0115 §5.4: no hidden FORM_TYPE) are left
// out, as it leaves them out.
func (s *Server) capsVer() string {
	var in caps.Info
	for _, id := range s.identitiesFor(TargetHost) {
		in.Identities = append(in.Identities, caps.Identity{Category: id.Category, Type: id.Type, Lang: id.Lang, Name: id.Name})
	}
	in.Features = s.sortedFeatures(TargetHost)
	for _, p := range s.forms {
		for _, r := range p.Forms(TargetHost) {
			for x := range stanza.Elements(stanza.Resolve(r, caps.NSData)) {
				if f, ok, err := caps.ParseForm(x); err == nil && ok {
					in.Forms = append(in.Forms, f)
				}
			}
		}
	}
	ver, _ := in.Ver(caps.SHA1) // SHA-1 is always supported
	return ver
}

// capsFeature is the <c/> element the server adds to its stream features
// (XEP-0115 §6.3).
func (s *Server) capsFeature() string {
	return `<c xmlns='` + nsCaps + `' hash='` + caps.SHA1 + `' node='` + capsNode + `' ver='` + s.caps + `'/>`
}

package server

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"
	"unicode/utf8"
)

// The identities of an XMPP server a certificate may present besides a
// DNS-ID (RFC 6120 §13.7.1.2, RFC 6125): an XmppAddr (id-on-xmppAddr,
// RFC 6120 §13.7.1.4) and an SRV-ID (id-on-dnsSRV, RFC 4985), both
// otherNames of the subjectAltName extension.
var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXMPPAddr       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5}
	oidSRVName        = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
)

// srvServer is the service label of an SRV-ID for a server-to-server
// stream (RFC 6120 §13.7.1.2.1). XEP-0368's direct TLS keeps the
// verification of RFC 6120, and Prosody too matches _xmpp-server for it.
const srvServer = "_xmpp-server."

// certOtherNames returns the XmppAddr and SRVName identities of a
// subjectAltName extension's value (a GeneralNames sequence). Other
// kinds of names, and otherNames of other types, are skipped; an
// XmppAddr that is not a UTF8String or an SRVName that is not an
// IA5String is an error, as is malformed DER.
func certOtherNames(der []byte) (xmppAddrs, srvNames []string, err error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil {
		return nil, nil, err
	}
	if len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, nil, errors.New("subjectAltName: not a sequence")
	}
	for in := seq.Bytes; len(in) > 0; {
		var gn asn1.RawValue
		if in, err = asn1.Unmarshal(in, &gn); err != nil {
			return nil, nil, err
		}
		// otherName [0] IMPLICIT SEQUENCE { type-id OID, value [0] EXPLICIT ANY }
		if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 || !gn.IsCompound {
			continue
		}
		var oid asn1.ObjectIdentifier
		body, err := asn1.Unmarshal(gn.Bytes, &oid)
		if err != nil {
			return nil, nil, err
		}
		xmpp, srv := oid.Equal(oidXMPPAddr), oid.Equal(oidSRVName)
		if !xmpp && !srv {
			continue
		}
		var wrapper asn1.RawValue
		if rest, err := asn1.Unmarshal(body, &wrapper); err != nil || len(rest) > 0 {
			return nil, nil, errors.New("subjectAltName: malformed otherName")
		}
		if wrapper.Class != asn1.ClassContextSpecific || wrapper.Tag != 0 || !wrapper.IsCompound {
			return nil, nil, errors.New("subjectAltName: malformed otherName")
		}
		var val asn1.RawValue
		if rest, err := asn1.Unmarshal(wrapper.Bytes, &val); err != nil || len(rest) > 0 || val.Class != asn1.ClassUniversal {
			return nil, nil, errors.New("subjectAltName: malformed otherName value")
		}
		switch {
		case xmpp && val.Tag == asn1.TagUTF8String && utf8.Valid(val.Bytes):
			xmppAddrs = append(xmppAddrs, string(val.Bytes))
		case srv && val.Tag == asn1.TagIA5String && isASCII(val.Bytes):
			srvNames = append(srvNames, string(val.Bytes))
		default:
			return nil, nil, errors.New("subjectAltName: otherName of the wrong string type")
		}
	}
	return xmppAddrs, srvNames, nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// sanExtension returns the value of cert's subjectAltName extension.
func sanExtension(cert *x509.Certificate) []byte {
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidSubjectAltName) {
			return e.Value
		}
	}
	return nil
}

// xmppIdentityOK says whether cert presents domain as an XmppAddr (equal,
// without wildcards: RFC 6120 §13.7.1.4) or as the SRV-ID
// _xmpp-server.domain (RFC 4985; a wildcard may stand for the left-most
// label of the domain, as RFC 6125 §6.4.3 lets a DNS-ID's).
func xmppIdentityOK(cert *x509.Certificate, domain string) bool {
	ext := sanExtension(cert)
	if ext == nil || domain == "" {
		return false
	}
	addrs, srvs, err := certOtherNames(ext)
	if err != nil {
		return false
	}
	domain = strings.TrimSuffix(domain, ".")
	for _, a := range addrs {
		if strings.EqualFold(a, domain) {
			return true
		}
	}
	for _, s := range srvs {
		if len(s) > len(srvServer) && strings.EqualFold(s[:len(srvServer)], srvServer) && matchDomain(s[len(srvServer):], domain) {
			return true
		}
	}
	return false
}

// matchDomain matches domain against a reference identifier's domain,
// case-insensitively, where "*" may be the whole left-most label and
// stands for exactly one label of domain.
func matchDomain(pattern, domain string) bool {
	pattern = strings.TrimSuffix(pattern, ".")
	if strings.EqualFold(pattern, domain) {
		return !strings.Contains(pattern, "*")
	}
	rest, ok := strings.CutPrefix(pattern, "*.")
	if !ok || rest == "" || strings.Contains(rest, "*") {
		return false // a wildcard only as a whole label, the left-most
	}
	_, dRest, ok := strings.Cut(domain, ".")
	return ok && dRest != "" && strings.EqualFold(rest, dRest) && !strings.HasPrefix(domain, ".")
}

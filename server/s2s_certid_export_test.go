package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"
)

// SANName is one name of a certificate's subjectAltName for
// CertWithNames.
type SANName struct {
	Kind  string // "dns", "xmpp" (an XmppAddr) or "srv" (an SRVName)
	Value string
}

// otherNameDER returns an otherName GeneralName of type oid whose value
// is a string with the universal tag tag.
func otherNameDER(oid asn1.ObjectIdentifier, tag int, value string) asn1.RawValue {
	oidDER, _ := asn1.Marshal(oid)
	val, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: tag, Bytes: []byte(value)})
	explicit, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: val})
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oidDER, explicit...)}
}

// SANDER returns a subjectAltName extension's value with names.
func SANDER(names ...SANName) []byte {
	var gns []asn1.RawValue
	for _, n := range names {
		switch n.Kind {
		case "dns":
			gns = append(gns, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(n.Value)})
		case "xmpp":
			gns = append(gns, otherNameDER(oidXMPPAddr, asn1.TagUTF8String, n.Value))
		case "srv":
			gns = append(gns, otherNameDER(oidSRVName, asn1.TagIA5String, n.Value))
		default:
			panic("SANDER: kind " + n.Kind)
		}
	}
	der, err := asn1.Marshal(gns)
	if err != nil {
		panic(err)
	}
	return der
}

// CertWithNames issues with parent and its key a certificate for servers
// and clients whose subjectAltName holds names. With an empty cn, its
// subject is empty and the extension critical (RFC 5280 §4.2.1.6).
func CertWithNames(t testing.TB, parent *x509.Certificate, parentKey crypto.Signer, cn string, names ...SANName) tls.Certificate {
	t.Helper()
	leaf, key := createTestCert(t, &x509.Certificate{
		Subject:         pkix.Name{CommonName: cn},
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		ExtraExtensions: []pkix.Extension{{Id: oidSubjectAltName, Critical: cn == "", Value: SANDER(names...)}},
	}, parent, parentKey)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

// NewTestIssuer makes a CA certificate signed by parent, or self-signed
// if parent is nil, whose DNS names are limited to permitted if any are
// given.
func NewTestIssuer(t testing.TB, parent *x509.Certificate, parentKey crypto.Signer, permitted ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	return createTestCert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "kiez test CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
		PermittedDNSDomains:   permitted,
	}, parent, parentKey)
}

// createTestCert signs tmpl, valid for a day from an hour ago with a
// random serial number and a new key, with parentKey, or by itself if
// parent is nil.
func createTestCert(t testing.TB, tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber, _ = rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

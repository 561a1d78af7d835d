package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"slices"
	"testing"
)

// TestVerifyPeerIdentities checks which certificates verifyPeer, the
// check of both ends of an s2s stream, accepts for a.test: a DNS-ID, an
// XmppAddr or the SRV-ID _xmpp-server.a.test from a trusted CA.
func TestVerifyPeerIdentities(t *testing.T) {
	root, rootKey := NewTestIssuer(t, nil, nil)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	limited, limitedKey := NewTestIssuer(t, root, rootKey, "b.test")
	stranger, strangerKey := NewTestIssuer(t, nil, nil)
	f := &federation{cfg: S2SConfig{RootCAs: pool}}
	dns := func(v string) SANName { return SANName{"dns", v} }
	xmpp := func(v string) SANName { return SANName{"xmpp", v} }
	srv := func(v string) SANName { return SANName{"srv", v} }
	for _, tc := range []struct {
		name  string
		cn    string // "": an empty subject and a critical subjectAltName
		names []SANName
		chain []*x509.Certificate // the intermediates sent
		ok    bool
	}{
		{name: "DNS-ID", cn: "a.test", names: []SANName{dns("a.test")}, ok: true},
		{name: "DNS-ID wildcard", cn: "x", names: []SANName{dns("*.test")}, ok: true},
		{name: "XmppAddr", cn: "x", names: []SANName{xmpp("a.test")}, ok: true},
		{name: "XmppAddr, empty subject", names: []SANName{xmpp("a.test")}, ok: true},
		{name: "XmppAddr upper case", cn: "x", names: []SANName{xmpp("A.Test")}, ok: true},
		{name: "XmppAddr beside a DNS-ID of another domain", cn: "x", names: []SANName{dns("c.test"), xmpp("a.test")}, ok: true},
		{name: "SRV-ID", cn: "x", names: []SANName{srv("_xmpp-server.a.test")}, ok: true},
		{name: "SRV-ID, empty subject", names: []SANName{srv("_xmpp-server.a.test")}, ok: true},
		{name: "SRV-ID wildcard", cn: "x", names: []SANName{srv("_xmpp-server.*.test")}, ok: true},
		{name: "XmppAddr of another domain", cn: "x", names: []SANName{xmpp("b.test")}},
		{name: "XmppAddr of another domain, empty subject", names: []SANName{xmpp("b.test")}},
		{name: "XmppAddr wildcard", cn: "x", names: []SANName{xmpp("*.test")}},
		{name: "XmppAddr of an account", cn: "x", names: []SANName{xmpp("alice@a.test")}},
		{name: "XmppAddr of a sub-domain", cn: "x", names: []SANName{xmpp("conference.a.test")}},
		{name: "SRV-ID of the client service", cn: "x", names: []SANName{srv("_xmpp-client.a.test")}},
		{name: "SRV-ID of another domain", cn: "x", names: []SANName{srv("_xmpp-server.b.test")}},
		{name: "SRV-ID wildcard too wide", cn: "x", names: []SANName{srv("_xmpp-server.*.a.test")}},
		{name: "SRV-ID wildcard in a label", cn: "x", names: []SANName{srv("_xmpp-server.a*.test")}},
		{name: "SRV-ID wildcard over a top-level domain", cn: "x", names: []SANName{srv("_xmpp-server.*")}},
		{name: "only a common name", cn: "a.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := CertWithNames(t, root, rootKey, tc.cn, tc.names...)
			err := f.verifyPeer(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}}, "a.test")
			if (err == nil) != tc.ok {
				t.Fatalf("verifyPeer: %v, want ok %v", err, tc.ok)
			}
		})
	}

	// The chain is verified as before, whatever names the certificate has.
	for _, names := range [][]SANName{{dns("a.test")}, {xmpp("a.test")}, {srv("_xmpp-server.a.test")}} {
		cert := CertWithNames(t, stranger, strangerKey, "", names...)
		if err := f.verifyPeer(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}}, "a.test"); err == nil {
			t.Errorf("%v from an untrusted CA accepted", names)
		}
	}
	// An intermediate limited to b.test (name constraints) vouches for
	// no XmppAddr or SRV-ID of a.test, though the x509 package checks
	// constraints against DNS-IDs only.
	for _, tc := range []struct {
		names []SANName
		ok    bool
	}{
		{[]SANName{xmpp("b.test")}, true},
		{[]SANName{srv("_xmpp-server.b.test")}, true},
		{[]SANName{xmpp("a.test")}, false},
		{[]SANName{srv("_xmpp-server.a.test")}, false},
	} {
		cert := CertWithNames(t, limited, limitedKey, "x", tc.names...)
		cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf, limited}}
		domain := "a.test"
		if tc.ok {
			domain = "b.test"
		}
		if err := f.verifyPeer(cs, domain); (err == nil) != tc.ok {
			t.Errorf("%v under a CA limited to b.test, for %s: %v", tc.names, domain, err)
		}
	}
}

func TestCertOtherNames(t *testing.T) {
	der := SANDER(SANName{"dns", "c.test"}, SANName{"xmpp", "a.test"}, SANName{"srv", "_xmpp-server.b.test"}, SANName{"xmpp", "ä.test"})
	addrs, srvs, err := certOtherNames(der)
	if err != nil || !slices.Equal(addrs, []string{"a.test", "ä.test"}) || !slices.Equal(srvs, []string{"_xmpp-server.b.test"}) {
		t.Fatalf("certOtherNames = %q, %q, %v", addrs, srvs, err)
	}
	// An otherName of another type is skipped.
	other := otherNameDER(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}, asn1.TagUTF8String, "a.test")
	der, _ = asn1.Marshal([]asn1.RawValue{other})
	if addrs, srvs, err := certOtherNames(der); err != nil || len(addrs)+len(srvs) > 0 {
		t.Fatalf("an unknown otherName: %q, %q, %v", addrs, srvs, err)
	}
	for name, der := range map[string][]byte{
		"XmppAddr as an IA5String":  mustMarshal(t, []asn1.RawValue{otherNameDER(oidXMPPAddr, asn1.TagIA5String, "a.test")}),
		"SRVName as a UTF8String":   mustMarshal(t, []asn1.RawValue{otherNameDER(oidSRVName, asn1.TagUTF8String, "_xmpp-server.a.test")}),
		"SRVName not ASCII":         mustMarshal(t, []asn1.RawValue{otherNameDER(oidSRVName, asn1.TagIA5String, "_xmpp-server.ä.test")}),
		"XmppAddr not UTF-8":        mustMarshal(t, []asn1.RawValue{otherNameDER(oidXMPPAddr, asn1.TagUTF8String, "a\xff.test")}),
		"not a sequence":            mustMarshal(t, "a.test"),
		"trailing data":             append(SANDER(SANName{"xmpp", "a.test"}), 0),
		"truncated":                 SANDER(SANName{"xmpp", "a.test"})[:10],
		"empty":                     nil,
		"otherName without a value": mustMarshal(t, []asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: mustMarshal(t, oidXMPPAddr)}}),
	} {
		if addrs, srvs, err := certOtherNames(der); err == nil {
			t.Errorf("%s: %q, %q, no error", name, addrs, srvs)
		}
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	der, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// FuzzCertOtherNames checks that the subjectAltName parser never panics
// and that what it reads, written again, reads the same. Its seeds are the
// DER values in testdata/san (written by SANDER).
func FuzzCertOtherNames(f *testing.F) {
	for _, b := range fuzzSeeds(f, "testdata/san/*.der") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		addrs, srvs, err := certOtherNames(der)
		if err != nil {
			return
		}
		var names []SANName
		for _, a := range addrs {
			names = append(names, SANName{"xmpp", a})
		}
		for _, s := range srvs {
			names = append(names, SANName{"srv", s})
		}
		addrs2, srvs2, err := certOtherNames(SANDER(names...))
		if err != nil || !slices.Equal(addrs, addrs2) || !slices.Equal(srvs, srvs2) {
			t.Fatalf("%q, %q read again as %q, %q, %v", addrs, srvs, addrs2, srvs2, err)
		}
	})
}

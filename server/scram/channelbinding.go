package scram

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// Channel binding types, as named in the gs2-cbind-flag and in XEP-0440.
const (
	// TLSExporter is tls-exporter (RFC 9266), offered only over TLS 1.3.
	TLSExporter = "tls-exporter"
	// TLSServerEndPoint is tls-server-end-point (RFC 5929 §4): a hash of
	// the server's certificate.
	TLSServerEndPoint = "tls-server-end-point"
	// TLSUnique is tls-unique (RFC 5929 §3), offered only below TLS 1.3,
	// where mellium.im/sasl uses it.
	TLSUnique = "tls-unique"
)

// exporterLabel and exporterLen are fixed by RFC 9266 §2.
const (
	exporterLabel = "EXPORTER-Channel-Binding"
	exporterLen   = 32
)

// ChannelBindingTypes lists the channel binding types a TLS connection
// supports, best first, for XEP-0440 <sasl-channel-binding/>: tls-exporter
// over TLS 1.3, tls-server-end-point over any version, and tls-unique below
// TLS 1.3 when the connection has tls-unique data. It returns nil for a nil
// state or an unfinished handshake.
//
// tls-server-end-point is listed whenever there is TLS; the server must set
// ServerConfig.Certificate to a certificate signed with a single hash
// function (RSA or ECDSA; not Ed25519, for which RFC 5929 defines no
// binding), or exchanges that pick it fail with MalformedRequest.
func ChannelBindingTypes(cs *tls.ConnectionState) []string {
	if cs == nil || !cs.HandshakeComplete {
		return nil
	}
	if cs.Version >= tls.VersionTLS13 {
		return []string{TLSExporter, TLSServerEndPoint}
	}
	if len(cs.TLSUnique) > 0 {
		return []string{TLSServerEndPoint, TLSUnique}
	}
	return []string{TLSServerEndPoint}
}

// Mechanisms lists the mechanism names to advertise on a connection, the
// strongest first: the -PLUS variants only when cs allows channel binding.
func Mechanisms(cs *tls.ConnectionState) []string {
	plain := []string{MechSHA512, MechSHA256, MechSHA1}
	if len(ChannelBindingTypes(cs)) == 0 {
		return plain
	}
	return append([]string{MechSHA512Plus, MechSHA256Plus, MechSHA1Plus}, plain...)
}

// BindingData returns the channel binding data of type cbType (one of the
// constants above) for cs; cert is the server's certificate, used for
// tls-server-end-point. Other mechanisms that bind to the channel
// (XEP-0484's HT-SHA-256-EXPR, -ENDP and -UNIQ) take theirs from here.
func BindingData(cs *tls.ConnectionState, cert *x509.Certificate, cbType string) ([]byte, error) {
	return bindingData(cs, cert, cbType)
}

// bindingData returns the channel binding data of type cbType for cs. cert
// is the server's certificate, used for tls-server-end-point.
func bindingData(cs *tls.ConnectionState, cert *x509.Certificate, cbType string) ([]byte, error) {
	if cs == nil || !cs.HandshakeComplete {
		return nil, errors.New("scram: channel binding needs a completed TLS handshake")
	}
	var data []byte
	switch cbType {
	case TLSExporter:
		if cs.Version < tls.VersionTLS13 {
			return nil, errors.New("scram: tls-exporter needs TLS 1.3")
		}
		var err error
		if data, err = exportKeyingMaterial(cs); err != nil {
			return nil, fmt.Errorf("scram: tls-exporter: %w", err)
		}
	case TLSUnique:
		if cs.Version >= tls.VersionTLS13 {
			return nil, errors.New("scram: tls-unique is undefined for TLS 1.3")
		}
		data = cs.TLSUnique
	case TLSServerEndPoint:
		if cert == nil {
			return nil, errors.New("scram: tls-server-end-point needs the server certificate")
		}
		var err error
		if data, err = endPointHash(cert); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("scram: unsupported channel binding type %q", cbType)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("scram: no %s data on this connection", cbType)
	}
	return data, nil
}

// exportKeyingMaterial returns the RFC 9266 exporter value. A
// ConnectionState built by hand rather than taken from a tls.Conn has no
// exporter and would make ExportKeyingMaterial panic; that is an error here.
func exportKeyingMaterial(cs *tls.ConnectionState) (data []byte, err error) {
	defer func() {
		if recover() != nil {
			data, err = nil, errors.New("connection state has no keying material exporter")
		}
	}()
	return cs.ExportKeyingMaterial(exporterLabel, nil, exporterLen)
}

// endPointHash hashes a certificate for tls-server-end-point (RFC 5929
// §4.1) with the hash of its signature algorithm, SHA-256 when that is MD5
// or SHA-1.
func endPointHash(cert *x509.Certificate) ([]byte, error) {
	var h crypto.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.DSAWithSHA256, x509.ECDSAWithSHA256:
		h = crypto.SHA256
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = crypto.SHA384
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = crypto.SHA512
	default:
		return nil, fmt.Errorf("scram: tls-server-end-point is undefined for %v certificates", cert.SignatureAlgorithm)
	}
	d := h.New()
	d.Write(cert.Raw)
	return d.Sum(nil), nil
}

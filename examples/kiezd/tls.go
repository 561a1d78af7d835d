package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/kiez-im/kiez/server"
)

// certStore serves the certificates read from PEM files. The set is
// replaced as a whole by reload, so a handshake sees either the old or the
// new certificates, never a mix.
type certStore struct {
	files []certConfig
	certs atomic.Pointer[[]tls.Certificate]
}

// newCertStore reads the certificate files.
func newCertStore(files []certConfig) (*certStore, error) {
	s := &certStore{files: files}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// reload reads every certificate and key again. If any fails, it returns
// the error and keeps serving the previous set.
func (s *certStore) reload() error {
	certs := make([]tls.Certificate, 0, len(s.files))
	for _, f := range s.files {
		c, err := loadKeyPair(f)
		if err != nil {
			return err
		}
		certs = append(certs, c)
	}
	s.certs.Store(&certs)
	return nil
}

// loadKeyPair reads one certificate chain and its key, with errors naming
// the file at fault.
func loadKeyPair(f certConfig) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cannot read certificate %s: %v", f.Cert, pathErr(err))
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cannot read key %s: %v", f.Key, pathErr(err))
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cannot load certificate %s with key %s: %v", f.Cert, f.Key, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("cannot parse certificate %s: %v", f.Cert, err)
		}
	}
	return c, nil
}

// pathErr drops the path from an *fs.PathError, which the caller names.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// GetCertificate picks, for the name the client asked for, the first
// certificate valid for it that the client supports; failing that, the
// first valid for the name, then the first of all.
func (s *certStore) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := *s.certs.Load()
	if len(certs) == 0 {
		return nil, errors.New("kiezd: no certificate loaded")
	}
	name := hello.ServerName
	var byName *tls.Certificate
	for i := range certs {
		c := &certs[i]
		if name != "" && c.Leaf.VerifyHostname(name) != nil {
			continue
		}
		if hello.SupportsCertificate(c) == nil {
			return c, nil
		}
		if byName == nil {
			byName = c
		}
	}
	if byName != nil {
		return byName, nil
	}
	return &certs[0], nil
}

// check reports domains no certificate covers and certificates that have
// expired or expire within two weeks, as warnings for the log.
func (s *certStore) check(domains []string, now time.Time) []string {
	certs := *s.certs.Load()
	var warn []string
	for _, d := range domains {
		covered := false
		for i := range certs {
			if certs[i].Leaf.VerifyHostname(d) == nil {
				covered = true
				break
			}
		}
		if !covered {
			warn = append(warn, fmt.Sprintf("no certificate is valid for %s: clients will refuse to connect to it", d))
		}
	}
	for i, c := range certs {
		switch {
		case now.After(c.Leaf.NotAfter):
			warn = append(warn, fmt.Sprintf("certificate %s expired on %s", s.files[i].Cert, c.Leaf.NotAfter.Format(time.DateOnly)))
		case now.Add(14 * 24 * time.Hour).After(c.Leaf.NotAfter):
			warn = append(warn, fmt.Sprintf("certificate %s expires on %s", s.files[i].Cert, c.Leaf.NotAfter.Format(time.DateOnly)))
		}
	}
	return warn
}

// selfSignedFiles makes sure dir holds a self-signed certificate and key
// for each domain, named DOMAIN.crt and DOMAIN.key, generating those that
// are missing or expire within 30 days. It keeps existing ones, so clients
// that pinned a certificate keep trusting it across restarts.
func selfSignedFiles(dir string, domains []string, now time.Time, log *slog.Logger) ([]certConfig, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create %s: %v", dir, pathErr(err))
	}
	files := make([]certConfig, 0, len(domains))
	for _, d := range domains {
		f := certConfig{Cert: filepath.Join(dir, d+".crt"), Key: filepath.Join(dir, d+".key")}
		files = append(files, f)
		c, err := loadKeyPair(f)
		if err == nil && now.Add(30*24*time.Hour).Before(c.Leaf.NotAfter) {
			continue
		}
		if err == nil {
			log.Info("renewing the self-signed certificate, which expires soon", "domain", d, "cert", f.Cert)
		} else if _, statErr := os.Stat(f.Cert); statErr == nil {
			return nil, err // a file is there but unusable: do not overwrite it
		}
		_, certPEM, keyPEM, err := server.SelfSigned(d)
		if err != nil {
			return nil, err
		}
		if err := writeFile(f.Key, keyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := writeFile(f.Cert, certPEM, 0o644); err != nil {
			return nil, err
		}
		log.Warn("generated a self-signed certificate; clients will warn about it until you configure a real one (see tls in kiezd.example.toml)", "domain", d, "cert", f.Cert)
	}
	return files, nil
}

// writeFile writes data to path atomically: a temporary file in the same
// directory, renamed over path.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("cannot write %s: %v", path, pathErr(err))
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write %s: %v", path, pathErr(err))
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write %s: %v", path, pathErr(err))
	}
	// On the disk before the rename, so that a crash leaves the old
	// file or the whole new one, never an empty one.
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write %s: %v", path, pathErr(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %v", path, pathErr(err))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot write %s: %v", path, pathErr(err))
	}
	return nil
}

// acmeCerts obtains and renews certificates from an ACME CA (Let's
// Encrypt by default) with autocert.
type acmeCerts struct {
	m       *autocert.Manager
	domains []string
}

func newACME(cfg *config) *acmeCerts {
	a := cfg.TLS.ACME
	cache := a.CacheDir
	if cache == "" {
		cache = filepath.Join(cfg.DataDir, "acme")
	}
	return &acmeCerts{
		m: &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(cache),
			HostPolicy: autocert.HostWhitelist(cfg.Domains...),
			Email:      a.Email,
			Client:     &acme.Client{DirectoryURL: a.DirectoryURL},
		},
		domains: cfg.Domains,
	}
}

// GetCertificate answers XMPP handshakes. A client that sends no server
// name gets the first domain's certificate.
func (a *acmeCerts) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		h := *hello
		h.ServerName = a.domains[0]
		hello = &h
	}
	return a.m.GetCertificate(hello)
}

// serveTLSALPN answers TLS-ALPN-01 challenges on ln: the CA connects on
// port 443 and autocert presents the challenge certificate during the
// handshake. Other connections are closed after the handshake.
func (a *acmeCerts) serveTLSALPN(ln net.Listener) error {
	cfg := &tls.Config{GetCertificate: a.m.GetCertificate, NextProtos: []string{acme.ALPNProto}}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			tls.Server(c, cfg).Handshake()
		}()
	}
}

// httpServer answers HTTP-01 challenges; other requests are redirected to
// https. Its error log is discarded: it would name client addresses.
func (a *acmeCerts) httpServer() *http.Server {
	return &http.Server{
		Handler:           a.m.HTTPHandler(nil),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
}

// prefetch asks for each domain's certificate in the background, so the
// first client does not wait for the CA. Failures are logged without the
// client-side details.
func (a *acmeCerts) prefetch(ctx context.Context, log *slog.Logger) {
	for _, d := range a.domains {
		go func() {
			hello := &tls.ClientHelloInfo{
				ServerName:        d,
				SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
				SupportedCurves:   []tls.CurveID{tls.CurveP256},
				CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
				SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
			}
			if _, err := a.m.GetCertificate(hello); err != nil {
				if ctx.Err() == nil {
					log.Error("acme: cannot obtain a certificate", "domain", d, "err", err)
				}
				return
			}
			log.Info("acme: certificate ready", "domain", d)
		}()
	}
}

package server

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strconv"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/storage"
)

// NSPIESCRAM is the XEP-0227 namespace of an account's SCRAM credentials.
const NSPIESCRAM = "urn:xmpp:pie:0#scram"

// scramHashes are the hashes whose credentials an export carries, in the
// order they are written, with their SASL mechanism names.
var scramHashes = [...]struct {
	hash storage.Hash
	mech string
}{
	{storage.SHA1, "SCRAM-SHA-1"},
	{storage.SHA256, "SCRAM-SHA-256"},
	{storage.SHA512, "SCRAM-SHA-512"},
}

// ExportOptions tune ExportUsers.
type ExportOptions struct {
	// OmitCredentials leaves out the accounts' SCRAM credentials: for a
	// copy of their data given to users, who do not need the keys (and
	// should not carry around what an offline guessing attack on their
	// password starts from). An admin moving accounts to another server
	// keeps them, so that the accounts can log in there with their old
	// passwords.
	OmitCredentials bool
}

// ExportUsers writes the accounts users as one XEP-0227 <server-data/>
// document: a <host/> per virtual host, in the order the hosts first
// appear in users, each holding a <user/> per account whose children are
// the account's SCRAM credentials (one <scram-credentials/> per hash,
// unless opts.OmitCredentials) and what each data owner writes. Passwords
// are never exported: they are not stored. An account named twice is
// written once; an unknown one is an error, before anything is written.
func (s *Server) ExportUsers(ctx context.Context, w xmlstream.TokenWriter, opts ExportOptions, users ...jid.JID) error {
	var hosts []string
	byHost := map[string][]storage.Account{}
	seen := map[string]bool{}
	for _, u := range users {
		u, err := s.userJID(u)
		if err != nil {
			return err
		}
		if seen[u.String()] {
			continue
		}
		seen[u.String()] = true
		acct, err := s.accounts.Account(ctx, u.String())
		if err != nil {
			return fmt.Errorf("server: exporting %s: %w", u, err)
		}
		d := u.Domainpart()
		if _, ok := byHost[d]; !ok {
			hosts = append(hosts, d)
		}
		byHost[d] = append(byHost[d], acct)
	}
	sd := xml.StartElement{Name: xml.Name{Space: NSPIE, Local: "server-data"}}
	if err := w.EncodeToken(sd); err != nil {
		return err
	}
	for _, h := range hosts {
		hs := xml.StartElement{Name: xml.Name{Local: "host"}, Attr: []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: h}}}
		if err := w.EncodeToken(hs); err != nil {
			return err
		}
		for _, acct := range byHost[h] {
			if err := s.exportUser(ctx, w, acct, !opts.OmitCredentials); err != nil {
				return err
			}
		}
		if err := w.EncodeToken(hs.End()); err != nil {
			return err
		}
	}
	if err := w.EncodeToken(sd.End()); err != nil {
		return err
	}
	if f, ok := w.(xmlstream.Flusher); ok {
		return f.Flush()
	}
	return nil
}

// exportUser writes one <user/> element.
func (s *Server) exportUser(ctx context.Context, w xmlstream.TokenWriter, acct storage.Account, credentials bool) error {
	user, err := jid.Parse(acct.JID)
	if err != nil {
		return fmt.Errorf("server: exporting %q: %w", acct.JID, err)
	}
	us := xml.StartElement{Name: xml.Name{Local: "user"}, Attr: []xml.Attr{{Name: xml.Name{Local: "name"}, Value: user.Localpart()}}}
	if err := w.EncodeToken(us); err != nil {
		return err
	}
	if credentials {
		if err := encodeTokens(w, scramTokens(acct.Keys)); err != nil {
			return err
		}
	}
	for _, o := range s.owners {
		if err := o.owner.ExportUser(ctx, user, w); err != nil {
			return fmt.Errorf("server: exporting %s: module %s: %w", user, o.name, err)
		}
	}
	return w.EncodeToken(us.End())
}

// scramTokens returns a XEP-0227 <scram-credentials/> element per hash
// keys has: the iteration count, the salt, the ServerKey and the
// StoredKey, the binary values in base64.
func scramTokens(keys map[storage.Hash]storage.SCRAMKeys) []xml.Token {
	var toks []xml.Token
	text := func(local, v string) {
		n := xml.Name{Space: NSPIESCRAM, Local: local}
		toks = append(toks, xml.StartElement{Name: n}, xml.CharData(v), xml.EndElement{Name: n})
	}
	b64 := base64.StdEncoding.EncodeToString
	for _, h := range scramHashes {
		k, ok := keys[h.hash]
		if !ok {
			continue
		}
		start := xml.StartElement{Name: xml.Name{Space: NSPIESCRAM, Local: "scram-credentials"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "mechanism"}, Value: h.mech}}}
		toks = append(toks, start)
		text("iter-count", strconv.Itoa(k.Iterations))
		text("salt", b64(k.Salt))
		text("server-key", b64(k.ServerKey))
		text("stored-key", b64(k.StoredKey))
		toks = append(toks, start.End())
	}
	return toks
}

func encodeTokens(w xmlstream.TokenWriter, toks []xml.Token) error {
	for _, t := range toks {
		if err := w.EncodeToken(t); err != nil {
			return err
		}
	}
	return nil
}

package vcard

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
)

// ImportUser restores what ExportUser writes (XEP-0227): the
// <vCard xmlns='vcard-temp'/> element, stored as it is, replacing the
// user's vCard. A vCard larger than Options.MaxSize is an error.
func (m *Module) ImportUser(ctx context.Context, user jid.JID, el *server.ImportElement) (bool, error) {
	if el.Start.Name != (xml.Name{Space: NS, Local: "vCard"}) {
		return false, nil
	}
	toks, err := el.Tokens()
	if err != nil {
		return true, err
	}
	var buf bytes.Buffer
	if err := stanza.WriteTokens(&buf, toks, ""); err != nil {
		return true, fmt.Errorf("vcard: %w", err)
	}
	if buf.Len() > m.maxSize {
		return true, fmt.Errorf("vcard: a vCard of %d bytes exceeds the limit of %d", buf.Len(), m.maxSize)
	}
	if err := m.store.Put(ctx, user.Bare().String(), Key, buf.Bytes()); err != nil {
		return true, fmt.Errorf("vcard: %w", err)
	}
	return true, nil
}

var _ server.UserDataImporter = (*Module)(nil)

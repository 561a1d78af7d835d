package private

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
)

// ImportUser restores what ExportUser writes (XEP-0227): each element
// inside <query xmlns='jabber:iq:private'/>, stored under its name as a
// set would store it, replacing the user's item of that name. An item
// larger than Options.MaxSize, or more items than Options.MaxItems, is
// an error.
func (m *Module) ImportUser(ctx context.Context, user jid.JID, el *server.ImportElement) (bool, error) {
	if el.Start.Name != queryName {
		return false, nil
	}
	u := user.Bare().String()
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		c, err := el.Child()
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return true, err
		}
		toks, err := c.Tokens()
		if err != nil {
			return true, err
		}
		var buf bytes.Buffer
		if err := stanza.WriteTokens(&buf, toks, ""); err != nil {
			return true, fmt.Errorf("private: %w", err)
		}
		if buf.Len() > m.maxSize {
			return true, fmt.Errorf("private: an item of %d bytes exceeds the limit of %d", buf.Len(), m.maxSize)
		}
		keys, err := m.keys(ctx, u)
		if err != nil {
			return true, err
		}
		k := key(c.Start.Name)
		if len(keys) >= m.maxItems && !contains(keys, k) {
			return true, fmt.Errorf("private: more than %d items", m.maxItems)
		}
		if err := m.store.Put(ctx, u, k, buf.Bytes()); err != nil {
			return true, fmt.Errorf("private: %w", err)
		}
	}
}

func contains(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

var _ server.UserDataImporter = (*Module)(nil)

package blocking

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
)

// ImportUser restores what ExportUser writes: the items of a
// <blocklist xmlns='urn:xmpp:blocking'/> (XEP-0191's element; XEP-0227
// has none of its own), added to the user's blocklist. More than
// Options.MaxItems items in all is an error.
func (m *Module) ImportUser(ctx context.Context, user jid.JID, el *server.ImportElement) (bool, error) {
	if el.Start.Name != (xml.Name{Space: NS, Local: "blocklist"}) {
		return false, nil
	}
	var items []string
	for {
		c, err := el.Child()
		if err == io.EOF {
			break
		}
		if err != nil {
			return true, err
		}
		if c.Start.Name.Local != "item" {
			continue
		}
		raw := c.Attr("jid")
		j, err := jid.Parse(raw)
		if err != nil || raw == "" {
			return true, fmt.Errorf("blocking: an item with the address %q: not an address", raw)
		}
		items = append(items, j.String())
	}
	u := user.Bare().String()
	l, err := m.load(ctx, u)
	if err != nil {
		return true, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[string]struct{}, len(l.items)+len(items))
	for j := range l.items {
		next[j] = struct{}{}
	}
	for _, j := range items {
		next[j] = struct{}{}
	}
	if len(next) > m.max {
		return true, fmt.Errorf("blocking: a blocklist holds at most %d items", m.max)
	}
	if len(next) == 0 {
		return true, nil
	}
	nl := &list{items: next}
	if err := m.store.Put(ctx, u, storeKey, []byte(strings.Join(nl.sorted(), "\n"))); err != nil {
		return true, fmt.Errorf("blocking: saving a list: %w", err)
	}
	m.cache.Store(u, nl)
	return true, nil
}

var _ server.UserDataImporter = (*Module)(nil)

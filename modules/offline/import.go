package offline

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// ImportUser restores what ExportUser writes (XEP-0227): each message of
// <offline-messages/>, queued after those the user has, with the time
// of the delay stamp a server put on it (the import's time if it has
// none). That delay is removed, as any delay claiming to be from a local
// domain: delivery adds it again. A queue that would hold more than
// Options.Limit messages is an error.
func (m *Module) ImportUser(ctx context.Context, user jid.JID, el *server.ImportElement) (bool, error) {
	if el.Start.Name != (xml.Name{Space: server.NSPIE, Local: "offline-messages"}) {
		return false, nil
	}
	user = user.Bare()
	unlock := m.lock(user.String())
	defer unlock()
	for {
		c, err := el.Child()
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return true, err
		}
		if c.Start.Name.Local != "message" {
			continue
		}
		toks, err := c.Tokens()
		if err != nil {
			return true, err
		}
		st, err := stanza.FromTokens(stanza.Tokens(toks...))
		if err != nil {
			return true, fmt.Errorf("offline: a message: %w", err)
		}
		stored := time.Now()
		for e := range st.Children() {
			if m.serverDelay(e) {
				if t, err := time.Parse(time.RFC3339, e.Attr("stamp")); err == nil {
					stored = t
				}
			}
		}
		rec := storage.OfflineMessage{Stored: stored, Data: stanza.Marshal(m.withoutServerDelays(st))}
		if err := m.store.PushOffline(ctx, user.String(), rec, m.limit); err != nil {
			return true, fmt.Errorf("offline: %w", err)
		}
	}
}

var _ server.UserDataImporter = (*Module)(nil)

package muc

import (
	"context"
	"fmt"
	"io"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// ImportUser restores the <rooms xmlns='urn:kiez:muc:export'/> list
// ExportUser writes: the account's affiliation and registered nick in
// each listed room that exists on this server. Entries for rooms that do
// not exist here are not restored (a room's own configuration is not part
// of an account's export); they are reported as not carried
// (server.ErrNotCarried), with their number.
func (m *Module) ImportUser(ctx context.Context, user jid.JID, el *server.ImportElement) (bool, error) {
	if el.Start.Name.Space != NSExport || el.Start.Name.Local != "rooms" {
		return false, nil
	}
	user = user.Bare()
	missing := 0
	for {
		c, err := el.Child()
		if err == io.EOF {
			break
		}
		if err != nil {
			return true, err
		}
		if c.Start.Name.Local != "room" {
			continue
		}
		rj, err := jid.Parse(c.Attr("jid"))
		if err != nil || rj.Localpart() == "" {
			return true, fmt.Errorf("muc: import: bad room address %q", c.Attr("jid"))
		}
		aff, nick := c.Attr("affiliation"), c.Attr("nick")
		switch aff {
		case "", storage.AffOwner, storage.AffAdmin, storage.AffMember, storage.AffOutcast:
		default:
			return true, fmt.Errorf("muc: import: unknown affiliation %q", aff)
		}
		found := false
		err = m.withRoom(ctx, rj.Bare(), func(r *room) ([]*stanza.Stanza, error) {
			if r == nil || !r.stored {
				return nil, nil
			}
			found = true
			if err := r.setNick(ctx, m, user.String(), nick); err != nil {
				return nil, err
			}
			return nil, r.setAff(ctx, m, user.String(), aff, "")
		})
		if err != nil {
			return true, err
		}
		if !found {
			missing++
		}
	}
	if missing > 0 {
		return true, fmt.Errorf("muc: %d room affiliations in rooms not on this server: %w", missing, server.ErrNotCarried)
	}
	return true, nil
}

var _ server.UserDataImporter = (*Module)(nil)

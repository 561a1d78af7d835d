package mam

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// ImportUser restores what ExportUser writes (XEP-0227): the <prefs/> and
// the <result/> messages of <archive xmlns='urn:xmpp:pie:0#mam'/>. Each
// message is archived with the time its ID encodes (that of the delay
// stamp for an ID from another server), so that into an archive that
// ends before it, as a new account's empty one, it comes back with its
// old ID, and references to it (stanza IDs clients kept) still hold;
// into a longer archive it gets the next free ID. The peer is the
// message's sender if the user received it, else its addressee.
// Preferences replace the user's.
func (m *Module) ImportUser(ctx context.Context, user jid.JID, el *server.ImportElement) (bool, error) {
	if el.Start.Name != (xml.Name{Space: NSPIE, Local: "archive"}) {
		return false, nil
	}
	user = user.Bare()
	renumbered := 0
	for {
		c, err := el.Child()
		if err == io.EOF {
			break
		}
		if err != nil {
			return true, err
		}
		switch c.Start.Name {
		case xml.Name{Space: NS, Local: "prefs"}:
			if err := m.importPrefs(ctx, user.String(), c); err != nil {
				return true, err
			}
		case xml.Name{Space: NS, Local: "result"}:
			same, err := m.importResult(ctx, user, c)
			if err != nil {
				return true, err
			}
			if !same {
				renumbered++
			}
		}
	}
	if renumbered > 0 && m.host != nil {
		m.host.Logger().Info("imported archive messages got new IDs", "count", renumbered)
	}
	return true, nil
}

// importResult archives one exported <result/>, and reports whether it
// kept its ID.
func (m *Module) importResult(ctx context.Context, user jid.JID, c *server.ImportElement) (bool, error) {
	toks, err := c.Tokens()
	if err != nil {
		return false, err
	}
	res := stanza.Element{}
	for e := range stanza.Elements(toks) {
		res = e
	}
	fwd, ok := res.Child(xml.Name{Space: NSForward, Local: "forwarded"})
	if !ok {
		return false, errors.New("mam: an archived message without <forwarded/>")
	}
	var msg []xml.Token
	var at time.Time
	for e := range fwd.Children() {
		switch {
		case e.Name == (xml.Name{Space: NSDelay, Local: "delay"}):
			at, err = time.Parse(time.RFC3339Nano, e.Attr("stamp"))
			if err != nil {
				return false, fmt.Errorf("mam: an archived message with the stamp %q: %w", e.Attr("stamp"), err)
			}
		case e.Name.Local == "message":
			msg = e.Tokens()
		}
	}
	id, idOK := DecodeID(res.Attr("id"))
	if idOK {
		at = storage.IDTime(id)
	}
	if msg == nil || at.IsZero() {
		return false, fmt.Errorf("mam: archived message %q lacks its message or its time", res.Attr("id"))
	}
	st, err := stanza.FromTokens(stanza.Tokens(msg...))
	if err != nil {
		return false, fmt.Errorf("mam: archived message %q: %w", res.Attr("id"), err)
	}
	with := st.To
	if st.To.Bare().Equal(user) || st.To.String() == "" {
		with = st.From
	}
	got, err := m.archive.AppendArchive(ctx, user.String(), at, with.String(), stanza.Marshal(st))
	if err != nil {
		return false, fmt.Errorf("mam: %w", err)
	}
	return idOK && got == id, nil
}

// importPrefs stores the preferences of an exported <prefs/>.
func (m *Module) importPrefs(ctx context.Context, user string, c *server.ImportElement) error {
	toks, err := c.Tokens()
	if err != nil {
		return err
	}
	var q stanza.Element
	for e := range stanza.Elements(toks) {
		q = e
	}
	p := &prefs{def: q.Attr("default"), always: map[string]struct{}{}, never: map[string]struct{}{}}
	switch p.def {
	case Always, Roster, Never:
	default:
		return fmt.Errorf("mam: preferences with the default %q", p.def)
	}
	for el := range q.Children() {
		list := p.always
		switch el.Name.Local {
		case "always":
		case "never":
			list = p.never
		default:
			continue
		}
		for item := range el.Children() {
			text := strings.TrimSpace(item.Text())
			j, err := jid.Parse(text)
			if item.Name.Local != "jid" || err != nil || text == "" {
				return fmt.Errorf("mam: preferences list an address %q", text)
			}
			list[j.String()] = struct{}{}
		}
		if len(list) > MaxPrefsJIDs {
			return fmt.Errorf("mam: preferences: a list holds at most %d addresses", MaxPrefsJIDs)
		}
	}
	for j := range p.never {
		delete(p.always, j)
	}
	m.prefs.mu.Lock()
	defer m.prefs.mu.Unlock()
	if err := m.kv.Put(ctx, user, prefsKey, p.marshal()); err != nil {
		return fmt.Errorf("mam: storing preferences: %w", err)
	}
	m.prefs.users.Store(user, p)
	return nil
}

var _ server.UserDataImporter = (*Module)(nil)

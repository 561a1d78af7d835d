package mam

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// prefs are one user's archiving preferences (XEP-0441). A value is never
// changed once cached; a change replaces it.
type prefs struct {
	def           string
	always, never map[string]struct{} // JIDs as given: bare or full
}

// prefsCache keeps every user's preferences that were read once, so the
// check on each message is a map lookup.
type prefsCache struct {
	mu    sync.Mutex // serialises changes
	users sync.Map   // bare JID → *prefs
}

// parsePrefs reads the stored form: the default mode on the first line,
// then "+jid" for the always list and "-jid" for the never list.
func parsePrefs(b []byte) *prefs {
	p := &prefs{always: map[string]struct{}{}, never: map[string]struct{}{}}
	lines := strings.Split(string(b), "\n")
	p.def = lines[0]
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "+"):
			p.always[l[1:]] = struct{}{}
		case strings.HasPrefix(l, "-"):
			p.never[l[1:]] = struct{}{}
		}
	}
	return p
}

func (p *prefs) marshal() []byte {
	var b strings.Builder
	b.WriteString(p.def)
	for _, j := range sortedKeys(p.always) {
		b.WriteString("\n+" + j)
	}
	for _, j := range sortedKeys(p.never) {
		b.WriteString("\n-" + j)
	}
	return []byte(b.String())
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// element returns the <prefs/> element (XEP-0441 §2.1).
func (p *prefs) element() xml.TokenReader {
	list := func(local string, set map[string]struct{}) xml.TokenReader {
		var jids []xml.TokenReader
		for _, j := range sortedKeys(set) {
			jids = append(jids, stanza.TextElem(xml.Name{Space: NS, Local: "jid"}, j))
		}
		return stanza.Elem(xml.Name{Space: NS, Local: local}, nil, jids...)
	}
	return stanza.Elem(xml.Name{Space: NS, Local: "prefs"}, []xml.Attr{stanza.Attr("default", p.def)},
		list("always", p.always), list("never", p.never))
}

// matches reports whether the list holds peer: a bare entry matches the
// peer's bare JID, a full entry only that full JID (XEP-0441 §2.3).
func matches(set map[string]struct{}, peer jid.JID) bool {
	if len(set) == 0 {
		return false
	}
	if _, ok := set[peer.String()]; ok {
		return true
	}
	_, ok := set[peer.Bare().String()]
	return ok
}

// loadPrefs returns user's preferences, and whether the user stored any
// (otherwise the module's default applies).
func (m *Module) loadPrefs(ctx context.Context, user string) (*prefs, bool, error) {
	if p, ok := m.prefs.users.Load(user); ok {
		p := p.(*prefs)
		return p, p.def != "", nil
	}
	b, err := m.kv.Get(ctx, user, prefsKey)
	var p *prefs
	switch {
	case errors.Is(err, storage.ErrNotFound):
		p = &prefs{} // def "" means the module's default
	case err != nil:
		return nil, false, fmt.Errorf("mam: loading preferences: %w", err)
	default:
		p = parsePrefs(b)
	}
	actual, _ := m.prefs.users.LoadOrStore(user, p)
	p = actual.(*prefs)
	return p, p.def != "", nil
}

func (m *Module) deletePrefs(ctx context.Context, user string) error {
	m.prefs.mu.Lock()
	defer m.prefs.mu.Unlock()
	m.prefs.users.Delete(user)
	return m.kv.Delete(ctx, user, prefsKey)
}

// archives reports whether user archives messages with peer.
func (m *Module) archives(ctx context.Context, user string, peer jid.JID) (bool, error) {
	p, _, err := m.loadPrefs(ctx, user)
	if err != nil {
		return false, err
	}
	switch {
	case matches(p.never, peer):
		return false, nil
	case matches(p.always, peer):
		return true, nil
	}
	def := p.def
	if def == "" {
		def = m.opts.Default
	}
	switch def {
	case Always:
		return true, nil
	case Roster:
		if m.roster == nil {
			return false, nil
		}
		u, err := jid.Parse(user)
		if err != nil {
			return false, err
		}
		it, ok, err := m.roster.Item(ctx, u, peer.Bare())
		if err != nil {
			return false, err
		}
		return ok && !it.Hidden, nil
	}
	return false, nil
}

// effective returns the preferences to show: the stored ones with the
// module's default filled in.
func (m *Module) effective(p *prefs) *prefs {
	if p.def != "" {
		return p
	}
	return &prefs{def: m.opts.Default}
}

// getPrefs answers <prefs/> gets.
func (m *Module) getPrefs(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	p, _, err := m.loadPrefs(ctx, iq.From.Bare().String())
	if err != nil {
		return err
	}
	return w.Result(m.effective(p).element())
}

// setPrefs replaces the preferences and answers with them.
func (m *Module) setPrefs(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	q, _ := iq.PayloadElement()
	user := iq.From.Bare().String()
	cur, _, err := m.loadPrefs(ctx, user)
	if err != nil {
		return err
	}
	next := &prefs{def: q.Attr("default"), always: map[string]struct{}{}, never: map[string]struct{}{}}
	switch next.def {
	case "":
		next.def = m.effective(cur).def
	case Always, Roster, Never:
	default:
		return w.Error(stanza.NewError(mstanza.Modify, mstanza.BadRequest, "default must be always, roster or never"))
	}
	// <always/> and <never/> hold <jid/> elements.
	for el := range q.Children() {
		var list map[string]struct{}
		switch {
		case el.Name.Space == NS && el.Name.Local == "always":
			list = next.always
		case el.Name.Space == NS && el.Name.Local == "never":
			list = next.never
		default:
			continue
		}
		for item := range el.Children() {
			if item.Name.Local != "jid" {
				continue
			}
			text := strings.TrimSpace(item.Text())
			j, err := jid.Parse(text)
			if err != nil || text == "" {
				return w.Error(mstanza.Error{Type: mstanza.Modify, Condition: mstanza.JIDMalformed})
			}
			list[j.String()] = struct{}{}
			if len(list) > MaxPrefsJIDs {
				return w.Error(stanza.NewError(mstanza.Wait, mstanza.ResourceConstraint, fmt.Sprintf("a list holds at most %d addresses", MaxPrefsJIDs)))
			}
		}
	}
	// A JID in both lists is never archived; show it only there.
	for j := range next.never {
		delete(next.always, j)
	}
	m.prefs.mu.Lock()
	err = m.kv.Put(ctx, user, prefsKey, next.marshal())
	if err == nil {
		m.prefs.users.Store(user, next)
	}
	m.prefs.mu.Unlock()
	if err != nil {
		return fmt.Errorf("mam: saving preferences: %w", err)
	}
	return w.Result(next.element())
}

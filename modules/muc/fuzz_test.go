package muc

import (
	"testing"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage/memory"
)

// FuzzConfigForm: the muc#roomconfig parser takes any submitted form
// without panicking, and what it accepts keeps the limits.
func FuzzConfigForm(f *testing.F) {
	for _, s := range []string{
		`<x xmlns='jabber:x:data' type='submit'/>`,
		`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_roomname'><value>Lobby</value></field><field var='muc#roomconfig_persistentroom'><value>1</value></field><field var='muc#roomconfig_maxusers'><value>30</value></field></x>`,
		`<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field><field var='muc#roomconfig_roomsecret'><value>pw</value></field><field var='muc#roomconfig_whois'><value>anyone</value></field></x>`,
		`<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_historylength'><value>9999</value></field><field var='muc#roomconfig_presencebroadcast'><value>moderator</value></field><field var='muc#roomconfig_roomowners'><value>a@b</value><value>c@d</value></field></x>`,
		`<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_allowpm'><value>none</value></field><field var='muc#roominfo_contactjid'><value>x@y</value></field></x>`,
	} {
		f.Add(s)
	}
	m, err := New(Options{}, Deps{Store: memory.New()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks, err := stanza.ParseElement([]byte(s))
		if err != nil {
			return
		}
		fm, err := form.Parse(stanza.Tokens(toks...))
		if err != nil {
			return
		}
		ch, err := applyConfigForm(fm, m.defaultConfig(), m.opts.MaxOccupants, m.opts.MaxHistory)
		if err != nil {
			return
		}
		c := ch.cfg
		switch {
		case c.History < 0 || c.History > m.opts.MaxHistory:
			t.Fatalf("history %d", c.History)
		case c.MaxUsers < 0 || c.MaxUsers > m.opts.MaxOccupants:
			t.Fatalf("maxusers %d", c.MaxUsers)
		case c.Whois != whoisAnyone && c.Whois != whoisModerators:
			t.Fatalf("whois %q", c.Whois)
		}
		b, err := c.encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeConfig(b); err != nil {
			t.Fatal(err)
		}
	})
}

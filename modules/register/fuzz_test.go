package register

import (
	"errors"
	"testing"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
)

// FuzzParse: the registration query parser takes any query a client
// sends without panicking, refuses only with stanza errors, and what it
// accepts is either a removal alone or fields.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`<query xmlns='jabber:iq:register'><username>bob</username><password>correct horse</password></query>`,
		`<query xmlns='jabber:iq:register'><remove/></query>`,
		`<query xmlns='jabber:iq:register'><remove/><username>bob</username></query>`,
		`<query xmlns='jabber:iq:register'><username/><password></password></query>`,
		`<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field>` +
			`<field var='username'><value>bob</value></field><field var='password'><value>pw</value></field><field var='token'><value>t</value></field></x></query>`,
		`<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field><value>1</value></field></x></query>`,
		`<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='form'/></query>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		st, err := stanza.Unmarshal([]byte(`<iq xmlns="jabber:client" type="set" id="f">` + payload + `</iq>`))
		if err != nil {
			return
		}
		r, err := parse(stanza.IQ{Stanza: st})
		if err != nil {
			var se mstanza.Error
			if !errors.As(err, &se) {
				t.Fatalf("refusal %v is no stanza error", err)
			}
			return
		}
		if r.remove && (r.hasUsername || r.hasPassword || r.token != "") {
			t.Fatalf("a removal with fields: %+v", r)
		}
	})
}

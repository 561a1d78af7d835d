package server_test

import (
	"context"
	"encoding/xml"
	"net/netip"
	"strings"
	"testing"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// TestClientAddr: a stream feature's iq handler (registration, before
// authentication) learns the client's address from its context, to ask a
// rate limit; other contexts have none.
func TestClientAddr(t *testing.T) {
	got := make(chan netip.Addr, 1)
	m := featureModule{name: "reg", feats: []server.StreamFeature{{
		BeforeAuth: true,
		IQRoutes: []server.IQRoute{{Type: mstanza.GetIQ, Payload: xml.Name{Space: nsRegister, Local: "query"},
			Handler: server.IQHandlerFunc(func(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
				a, _ := server.ClientAddr(ctx)
				got <- a
				return w.Result(nil)
			})}},
	}}}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{m}})
	r := dialRaw(t, srv.Addr)
	r.startTLS()
	r.send(`<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>`)
	if s := r.expect("</iq>", "/>"); !strings.Contains(s, `type="result"`) {
		t.Fatalf("answer %q", s)
	}
	if a := <-got; a != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("ClientAddr = %v, want 127.0.0.1", a)
	}
	if _, ok := server.ClientAddr(t.Context()); ok {
		t.Fatal("an address in a context without one")
	}
}

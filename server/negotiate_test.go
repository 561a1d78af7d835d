package server_test

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"net"
	"strings"
	"sync"
	"testing"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// featureModule adds stream features to negotiation.
type featureModule struct {
	name  string
	feats []server.StreamFeature
}

func (m featureModule) Name() string                           { return m.name }
func (m featureModule) StreamFeatures() []server.StreamFeature { return m.feats }

// seenIQ records the addresses of the iqs a stream feature's handler got.
type seenIQ struct {
	mu       sync.Mutex
	from, to []string
}

func (s *seenIQ) handler(ns string) server.IQHandlerFunc {
	return func(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
		s.mu.Lock()
		s.from = append(s.from, iq.From.String())
		s.to = append(s.to, iq.To.String())
		s.mu.Unlock()
		return w.Result(stanza.Elem(xml.Name{Space: ns, Local: "query"}, nil))
	}
}

const (
	nsRegisterFeature = "http://jabber.org/features/iq-register"
	nsRegister        = "jabber:iq:register"
	nsLate            = "urn:kiez:test:late"
)

// TestStreamFeatureSteps: a module's feature offered before authentication
// is advertised beside SASL on TLS streams only, and its iqs are answered
// there (the XEP-0077 case); one offered after authentication is
// advertised beside binding and answers its iqs before a resource is
// bound. Anything else stays refused.
func TestStreamFeatureSteps(t *testing.T) {
	var early, late seenIQ
	m := featureModule{name: "feat", feats: []server.StreamFeature{{
		Element: func() xml.TokenReader {
			return stanza.Elem(xml.Name{Space: nsRegisterFeature, Local: "register"}, nil)
		},
		BeforeAuth: true,
		IQRoutes: []server.IQRoute{{Type: mstanza.GetIQ, Payload: xml.Name{Space: nsRegister, Local: "query"},
			Handler: early.handler(nsRegister)}},
	}, {
		Element: func() xml.TokenReader { return stanza.Elem(xml.Name{Space: nsLate, Local: "late"}, nil) },
		IQRoutes: []server.IQRoute{{Type: mstanza.SetIQ, Payload: xml.Name{Space: nsLate, Local: "query"},
			Handler: late.handler(nsLate)}},
	}}}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{m}})
	srv.AddUser(t, "alice", "pw")

	t.Run("before authentication", func(t *testing.T) {
		r := dialRaw(t, srv.Addr)
		r.send(header)
		if got := r.expect("</stream:features>"); strings.Contains(got, nsRegisterFeature) {
			t.Errorf("offered before TLS: %q", got)
		}
		r.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
		r.expect("<proceed")
		r.c = tlsClient(t, r.c)
		r.send(header)
		got := r.expect("</stream:features>")
		if !strings.Contains(got, "<register xmlns=\""+nsRegisterFeature+"\"") || !strings.Contains(got, "<mechanisms") {
			t.Errorf("TLS stream features: %q", got)
		}
		if strings.Contains(got, nsLate) || strings.Contains(got, "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'") {
			t.Errorf("features of authenticated streams offered before authentication: %q", got)
		}
		r.send(`<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>`)
		got = r.expect("</iq>", "/>")
		if !strings.Contains(got, "type=\"result\"") || !strings.Contains(got, "id=\"r1\"") || !strings.Contains(got, nsRegister) {
			t.Errorf("register query answered %q", got)
		}
		early.mu.Lock()
		if len(early.from) != 1 || early.from[0] != "" || early.to[0] != "localhost" {
			t.Errorf("handler saw from %q to %q, want one iq from nobody to localhost", early.from, early.to)
		}
		early.mu.Unlock()
		// The stream goes on: authentication still works after the iq.
		if got := r.authPlain("alice", "pw"); !strings.Contains(got, "<success") {
			t.Fatalf("auth after the feature's iq: %q", got)
		}
		r.send(header)
		got = r.expect("</stream:features>")
		if strings.Contains(got, nsRegisterFeature) || !strings.Contains(got, "<late xmlns=\""+nsLate+"\"") {
			t.Errorf("features after authentication: %q", got)
		}
		r.send(`<iq type='set' id='l1'><query xmlns='urn:kiez:test:late'/></iq>`)
		if got := r.expect("</iq>", "/>"); !strings.Contains(got, "id=\"l1\"") || !strings.Contains(got, "type=\"result\"") {
			t.Errorf("late query answered %q", got)
		}
		late.mu.Lock()
		if len(late.from) != 1 || late.from[0] != "alice@localhost" {
			t.Errorf("late handler saw from %q, want alice@localhost", late.from)
		}
		late.mu.Unlock()
		r.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
		if got := r.expect("</iq>"); !strings.Contains(got, "<jid>alice@localhost/") {
			t.Errorf("bind: %q", got)
		}
	})
	t.Run("other iqs before authentication", func(t *testing.T) {
		r := dialRaw(t, srv.Addr)
		r.startTLS()
		r.send(`<iq type='get' id='v'><query xmlns='jabber:iq:version'/></iq>`)
		r.streamError("not-authorized")
	})
	t.Run("register iq after authentication", func(t *testing.T) {
		r := dialRaw(t, srv.Addr)
		r.startTLS()
		r.authPlain("alice", "pw")
		r.send(header)
		r.expect("</stream:features>")
		r.send(`<iq type='get' id='r2'><query xmlns='jabber:iq:register'/></iq>`)
		r.streamError("not-authorized")
	})
}

// TestStreamFeatureClash: two steps taking one iq in the same state fail
// New, naming both sides.
func TestStreamFeatureClash(t *testing.T) {
	reg := func(name string, before bool, payload xml.Name) featureModule {
		return featureModule{name: name, feats: []server.StreamFeature{{BeforeAuth: before,
			IQRoutes: []server.IQRoute{{Type: mstanza.SetIQ, Payload: payload,
				Handler: server.IQHandlerFunc(func(context.Context, stanza.IQ, server.ResponseWriter) error { return nil })}}}}}
	}
	q := xml.Name{Space: nsRegister, Local: "query"}
	for _, tc := range []struct {
		name    string
		modules []server.Module
		want    []string
	}{
		{"two modules", []server.Module{reg("one", true, q), reg("two", true, q)}, []string{"module one", "module two"}},
		{"the server's bind", []server.Module{reg("binder", false, xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-bind", Local: "bind"})},
			[]string{"the server", "module binder"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := server.New(context.Background(), server.Config{Domains: []string{"localhost"}, Accounts: memoryStore(), Modules: tc.modules})
			if err == nil {
				t.Fatal("New accepted the clash")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
	// Before and after authentication do not clash.
	s, err := server.New(context.Background(), server.Config{Domains: []string{"localhost"}, Accounts: memoryStore(),
		Modules: []server.Module{reg("one", true, q), reg("two", false, q)}})
	if err != nil {
		t.Fatalf("features in different states: %v", err)
	}
	s.Shutdown(context.Background())
}

// tlsClient runs a client's TLS handshake on c.
func tlsClient(t *testing.T, c net.Conn) net.Conn {
	t.Helper()
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc
}

package extdisco_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/extdisco"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

const secret = "north-wind"

var services = []extdisco.Service{
	{Type: "stun", Host: "stun.example.org", Port: 3478, Transport: "udp"},
	{Type: "turn", Host: "turn.example.org", Port: 3478, Transport: "udp"},
	{Type: "turns", Host: "turn.example.org", Port: 5349, Transport: "tcp", Name: "TURN over TLS"},
}

func newModule(t *testing.T) *extdisco.Module {
	t.Helper()
	m, err := extdisco.New(extdisco.Options{Services: services, Secret: secret, TTL: time.Hour}, extdisco.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ask sends an extdisco iq get with payload to the server and returns
// the <service/> elements of the answer (or the error answer).
func ask(t *testing.T, c *servertest.Client, id, payload string) (*stanza.Stanza, []stanza.Element) {
	t.Helper()
	if err := c.SendRaw(`<iq type='get' to='localhost' id='` + id + `'>` + payload + `</iq>`); err != nil {
		t.Fatal(err)
	}
	st := c.Expect(servertest.ByID(id))
	p, ok := st.PayloadElement()
	if !ok {
		return st, nil
	}
	var out []stanza.Element
	for e := range p.Children() {
		out = append(out, e)
	}
	return st, out
}

// checkCredentials checks a restricted service's credentials: the
// password is the HMAC of the username, which starts with the expiry
// (about the TTL from now) and does not name the user.
func checkCredentials(t *testing.T, e stanza.Element, before, after time.Time) {
	t.Helper()
	user, pass := e.Attr("username"), e.Attr("password")
	if e.Attr("restricted") != "1" || user == "" || pass == "" {
		t.Fatalf("restricted service without credentials: %v", e.Start().Attr)
	}
	if strings.Contains(user, "alice") {
		t.Errorf("username %q names the user", user)
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(user))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); pass != want {
		t.Errorf("password %q, want HMAC %q", pass, want)
	}
	stamp, _, _ := strings.Cut(user, ":")
	exp, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		t.Fatalf("username %q does not start with the expiry", user)
	}
	lo, hi := before.Add(time.Hour).Add(-time.Second).Unix(), after.Add(time.Hour).Unix()
	if exp < lo || exp > hi {
		t.Errorf("expiry %d not within [%d, %d]", exp, lo, hi)
	}
	expires, err := time.Parse(time.RFC3339, e.Attr("expires"))
	if err != nil || expires.Unix() != exp {
		t.Errorf("expires %q does not match the username's %d", e.Attr("expires"), exp)
	}
}

// A local client lists the services, the TURN ones with valid
// credentials, and asks for fresh credentials for one.
func TestServices(t *testing.T) {
	srv := servertest.Start(t, server.Config{Modules: []server.Module{newModule(t)}})
	srv.AddUser(t, "alice", "pw")
	c := srv.Connect(t, jid.MustParse("alice@localhost/phone"), "pw")

	before := time.Now()
	st, list := ask(t, c, "s1", `<services xmlns='urn:xmpp:extdisco:2'/>`)
	after := time.Now()
	if st.Type != stanza.Result || len(list) != 3 {
		t.Fatalf("services: %s", stanza.Marshal(st))
	}
	if list[0].Attr("type") != "stun" || list[0].Attr("host") != "stun.example.org" || list[0].Attr("port") != "3478" || list[0].Attr("transport") != "udp" {
		t.Errorf("stun service: %v", list[0].Start().Attr)
	}
	if list[0].Attr("username") != "" || list[0].Attr("restricted") != "" {
		t.Errorf("stun service with credentials: %v", list[0].Start().Attr)
	}
	checkCredentials(t, list[1], before, after)
	checkCredentials(t, list[2], before, after)
	if list[1].Attr("username") == list[2].Attr("username") {
		t.Error("two services share a username")
	}

	_, list = ask(t, c, "s2", `<services xmlns='urn:xmpp:extdisco:2' type='turns'/>`)
	if len(list) != 1 || list[0].Attr("port") != "5349" || list[0].Attr("name") != "TURN over TLS" {
		t.Fatalf("turns services: %v", list)
	}

	before = time.Now()
	st, list = ask(t, c, "c1", `<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.example.org' type='turn'/></credentials>`)
	after = time.Now()
	if st.Type != stanza.Result || len(list) != 1 {
		t.Fatalf("credentials: %s", stanza.Marshal(st))
	}
	checkCredentials(t, list[0], before, after)

	st, _ = ask(t, c, "c2", `<credentials xmlns='urn:xmpp:extdisco:2'><service host='stun.example.org' type='stun'/></credentials>`)
	if !strings.Contains(string(stanza.Marshal(st)), "item-not-found") {
		t.Errorf("credentials for stun: %s", stanza.Marshal(st))
	}
}

// Without a secret, TURN servers are listed without credentials.
func TestNoSecret(t *testing.T) {
	m, err := extdisco.New(extdisco.Options{Services: services}, extdisco.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{m}})
	srv.AddUser(t, "alice", "pw")
	c := srv.Connect(t, jid.MustParse("alice@localhost/phone"), "pw")
	_, list := ask(t, c, "s1", `<services xmlns='urn:xmpp:extdisco:2'/>`)
	for _, e := range list {
		if e.Attr("password") != "" {
			t.Errorf("credentials without a secret: %v", e.Start().Attr)
		}
	}
}

// fakeHost knows one local domain; the handlers use nothing else.
type fakeHost struct{ server.Host }

func (fakeHost) IsLocal(d string) bool { return d == "localhost" }

type recorder struct {
	result *bool
	err    mstanza.Error
}

func (r *recorder) Result(xml.TokenReader) error { t := true; r.result = &t; return nil }
func (r *recorder) Error(e mstanza.Error) error  { r.err = e; return nil }

// Another server's users, and addresses that are not accounts, are
// refused.
func TestRemoteRefused(t *testing.T) {
	m := newModule(t)
	if err := m.Init(context.Background(), fakeHost{}); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"mallory@evil.example/x", "localhost", "evil.example", "alice@localhost/phone"} {
		for _, rt := range m.IQRoutes() {
			iq := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Get, ID: "x", From: jid.MustParse(from), To: jid.MustParse("localhost")}
			iq.AppendChild(stanza.Elem(rt.Payload, nil, stanza.Elem(xml.Name{Space: extdisco.NS, Local: "service"}, []xml.Attr{stanza.Attr("host", "turn.example.org")})))
			var w recorder
			if err := rt.Handler.HandleIQ(context.Background(), stanza.IQ{Stanza: iq}, &w); err != nil {
				t.Fatal(err)
			}
			local := from == "alice@localhost/phone"
			if local != (w.result != nil) || !local && w.err.Condition != mstanza.Forbidden {
				t.Errorf("%s from %s: result %v, error %v", rt.Payload.Local, from, w.result != nil, w.err.Condition)
			}
		}
	}
}

// Credentials follows coturn's REST API: the TURN server recomputes the
// same password.
func TestCredentials(t *testing.T) {
	exp := time.Unix(1700000000, 0)
	for _, tc := range []struct{ tag, user string }{{"", "1700000000"}, {"abc", "1700000000:abc"}} {
		user, pass := extdisco.Credentials([]byte("s"), exp, tc.tag)
		mac := hmac.New(sha1.New, []byte("s"))
		mac.Write([]byte(tc.user))
		if user != tc.user || pass != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			t.Errorf("Credentials(%q) = %q, %q", tc.tag, user, pass)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, opts := range []extdisco.Options{
		{Services: []extdisco.Service{{Type: "turn"}}},
		{Services: []extdisco.Service{{Type: "relay", Host: "h"}}},
		{Services: []extdisco.Service{{Type: "stun", Host: "h", Port: 70000}}},
		{Services: []extdisco.Service{{Type: "stun", Host: "h", Transport: "sctp"}}},
		{TTL: time.Second},
	} {
		if _, err := extdisco.New(opts, extdisco.Deps{}); err == nil {
			t.Errorf("New(%+v) accepted", opts)
		}
	}
}

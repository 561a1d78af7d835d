package server_test

import (
	"crypto/tls"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/modules/carbons"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/server/servertest"
)

// sasl2Features negotiates TLS and returns the features offered then.
func (c *smClient) sasl2Features() string {
	c.t.Helper()
	c.send(header)
	c.expect("</stream:features>")
	c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	c.expect("<proceed")
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.c = tc
	c.send(header)
	return c.until(`</stream:features>`)
}

const (
	q         = `['"]`
	bind2Body = `<bind xmlns='urn:xmpp:bind:0'><tag>kiez-test</tag><enable xmlns='urn:xmpp:carbons:2'/>` +
		`<enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>`
)

// testUserAgent is the <user-agent/> id sasl2SCRAM sends.
const testUserAgent = "d4565fa7-4d72-4749-b3d3-740edbf87770"

// sasl2SCRAM authenticates with SCRAM-SHA-256 over SASL2 with extra in
// <authenticate/> and returns the inside of <success/>.
func (c *smClient) sasl2SCRAM(user, pass, extra string) string {
	c.t.Helper()
	return c.sasl2SCRAMAs(user, pass, testUserAgent, extra)
}

// sasl2SCRAMAs is sasl2SCRAM from the device with user-agent id ua.
func (c *smClient) sasl2SCRAMAs(user, pass, ua, extra string) string {
	c.t.Helper()
	cl, err := scram.NewClient(scram.MechSHA256, user, pass, "", nil, "")
	if err != nil {
		c.t.Fatal(err)
	}
	first, _, _ := cl.Step(nil)
	b64 := base64.StdEncoding
	c.send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'><initial-response>` + b64.EncodeToString(first) +
		`</initial-response><user-agent id='` + ua + `'><software>kiez test</software></user-agent>` +
		extra + `</authenticate>`)
	ch := c.await(`<challenge xmlns=` + q + `urn:xmpp:sasl:2` + q + `>([^<]+)</challenge>`)
	data, err := b64.DecodeString(ch[1])
	if err != nil {
		c.t.Fatal(err)
	}
	final, _, err := cl.Step(data)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(`<response xmlns='urn:xmpp:sasl:2'>` + b64.EncodeToString(final) + `</response>`)
	m := c.await(`<success xmlns=` + q + `urn:xmpp:sasl:2` + q + `>(.*?)</success>`)
	addl := regexp.MustCompile(`<additional-data>([^<]+)</additional-data>`).FindStringSubmatch(m[1])
	if addl == nil {
		c.t.Fatalf("no additional data in %q", m[0])
	}
	v, _ := b64.DecodeString(addl[1])
	if _, done, err := cl.Step(v); !done || err != nil {
		c.t.Fatalf("server signature: %v", err)
	}
	return m[1]
}

// TestSASL2Bind2 logs in with SASL2 (SCRAM-SHA-256) and a Bind 2 request
// enabling carbons and stream management in the same round trip: the
// server picks a resource from the tag, a message the account sends from
// another session is carbon-copied to the new one, and stream management
// counts it.
func TestSASL2Bind2(t *testing.T) {
	srv := servertest.Start(t, server.Config{Modules: []server.Module{must(carbons.New(carbons.Options{}, carbons.Deps{}))}})
	srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")

	c := dialSM(t, srv.Addr)
	feats := c.sasl2Features()
	for _, want := range []string{
		`<authentication xmlns='urn:xmpp:sasl:2'>`, `<mechanism>SCRAM-SHA-256</mechanism>`,
		`<bind xmlns='urn:xmpp:bind:0'><inline><feature var='urn:xmpp:sm:3'/><feature var='urn:xmpp:csi:0'/><feature var='urn:xmpp:carbons:2'/></inline></bind>`,
	} {
		if !strings.Contains(feats, want) {
			t.Fatalf("features lack %s: %q", want, feats)
		}
	}
	success := c.sasl2SCRAM("alice", "pw", bind2Body)
	if !regexp.MustCompile(`<authorization-identifier>alice@localhost/kiez-test\.[^<]+</authorization-identifier>` +
		`<bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' id='[^']+' resume='true' max='\d+'/></bound>`).MatchString(success) {
		t.Fatalf("success: %q", success)
	}

	other := dialSM(t, srv.Addr)
	other.auth("alice", "pw")
	other.bind("phone")
	other.send(`<message to='bob@localhost' id='m1' type='chat'><body>hi</body></message>`)
	// The server asks for an acknowledgement right after the carbon:
	// stream management counts from the <enabled/> inside <bound/>.
	got := c.until(`<r xmlns=` + q + `urn:xmpp:sm:3` + q + `/>`)
	if !regexp.MustCompile(`<sent xmlns="urn:xmpp:carbons:2">.*id="m1".*</message><r xmlns='urn:xmpp:sm:3'/>$`).MatchString(got) {
		t.Fatalf("want the carbon, then <r/>; got %q", got)
	}
	c.send(`<a xmlns='urn:xmpp:sm:3' h='1'/><r xmlns='urn:xmpp:sm:3'/>`)
	c.await(`<a xmlns=` + q + `urn:xmpp:sm:3` + q + ` h=` + q + `0` + q + `/>`)
}

// TestSASL2Failure: a wrong password over SASL2 is a SASL2 failure with
// the RFC 6120 condition, an unknown mechanism too, and the client may try
// again; success without Bind 2 leaves the stream authenticated for an
// ordinary bind, with no restart.
func TestSASL2Failure(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	srv.AddUser(t, "alice", "pw")
	c := dialSM(t, srv.Addr)
	c.sasl2Features()
	plain := func(pass string) string {
		return `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>` +
			base64.StdEncoding.EncodeToString([]byte("\x00alice\x00"+pass)) + `</initial-response></authenticate>`
	}
	c.send(plain("nope"))
	c.await(`<failure xmlns=` + q + `urn:xmpp:sasl:2` + q + `><not-authorized xmlns=` + q + `urn:ietf:params:xml:ns:xmpp-sasl` + q + `/>`)
	c.send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='X-UNKNOWN'/>`)
	c.await(`<failure xmlns=` + q + `urn:xmpp:sasl:2` + q + `><invalid-mechanism `)
	c.send(plain("pw"))
	c.await(`<success xmlns=` + q + `urn:xmpp:sasl:2` + q + `><authorization-identifier>alice@localhost</authorization-identifier></success>`)
	c.bind("desk")
	c.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.await(`id=` + q + `p` + q)
}

// TestSASL2AttemptsLimit: SASL2 failures count toward Limits.AuthAttempts
// as SASL's do.
func TestSASL2AttemptsLimit(t *testing.T) {
	srv := servertest.Start(t, server.Config{Limits: server.Limits{AuthAttempts: 2}})
	srv.AddUser(t, "alice", "pw")
	c := dialSM(t, srv.Addr)
	c.sasl2Features()
	bad := `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>` +
		base64.StdEncoding.EncodeToString([]byte("\x00alice\x00nope")) + `</initial-response></authenticate>`
	c.send(bad)
	c.await(`</failure>`)
	c.send(bad)
	c.streamError("policy-violation")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// sasl2Alice starts a server with the accounts alice and bob, logs alice
// in with SASL2 and extra in <authenticate/>, and returns the server, her
// client and the inside of the <success/>.
func sasl2Alice(t *testing.T, extra string) (*servertest.Server, *smClient, string) {
	t.Helper()
	srv := servertest.Start(t, server.Config{})
	srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	c := dialSM(t, srv.Addr)
	c.sasl2Features()
	return srv, c, c.sasl2SCRAM("alice", "pw", extra)
}

// TestSASL2Resume resumes a session inside SASL2's <authenticate/>
// (XEP-0198 with XEP-0388): what the client had not acknowledged is sent
// again on the new stream; an unknown id is a <failed/> inside <success/>,
// after which the stream is authenticated and the client binds.
func TestSASL2Resume(t *testing.T) {
	srv, c, success := sasl2Alice(t, bind2Body)
	m := regexp.MustCompile(`<authorization-identifier>([^<]+)</authorization-identifier>.*id='([^']+)'`).FindStringSubmatch(success)
	if m == nil {
		t.Fatalf("success: %q", success)
	}
	full, id := m[1], m[2]

	bob := dialSM(t, srv.Addr)
	bob.auth("bob", "pw")
	bob.bind("desk")
	bob.send(`<message to='` + full + `' id='while-away' type='chat'><body>hi</body></message>`)
	c.tcp.Close() // lost without closing the stream; the message is unacknowledged or waiting

	c2 := dialSM(t, srv.Addr)
	c2.sasl2Features()
	success = c2.sasl2SCRAM("alice", "pw", `<resume xmlns='urn:xmpp:sm:3' previd='`+id+`' h='0'/>`)
	want := `<authorization-identifier>` + full + `</authorization-identifier><resumed xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`
	if !strings.Contains(success, want) {
		t.Fatalf("success %q lacks %q", success, want)
	}
	c2.await(`id=` + q + `while-away` + q)

	c3 := dialSM(t, srv.Addr)
	c3.sasl2Features()
	success = c3.sasl2SCRAM("alice", "pw", `<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/>`)
	if !strings.Contains(success, `<authorization-identifier>alice@localhost</authorization-identifier><failed xmlns='urn:xmpp:sm:3'><item-not-found `) {
		t.Fatalf("success: %q", success)
	}
	c3.bind("desk")
}

// TestSASL2Bind2Inactive (XEP-0386 with XEP-0352): a session bound with
// <inactive/> inside <bind/> starts inactive: a presence is held back
// until the client says <active/>.
func TestSASL2Bind2Inactive(t *testing.T) {
	srv, c, success := sasl2Alice(t, `<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag>`+
		`<enable xmlns='urn:xmpp:sm:3'/><inactive xmlns='urn:xmpp:csi:0'/></bind>`)
	m := regexp.MustCompile(`<authorization-identifier>([^<]+)</authorization-identifier>`).FindStringSubmatch(success)
	if m == nil {
		t.Fatalf("success: %q", success)
	}
	bob := dialSM(t, srv.Addr)
	bob.auth("bob", "pw")
	bob.bind("pc")
	bob.send(`<presence to='` + m[1] + `'><show>away</show></presence>`)
	bob.sync("b1") // the presence reached alice's session
	if got := c.mark(); stanzas(got) {
		t.Fatalf("a session bound inactive got %q", got)
	}
	c.send(`<active xmlns='urn:xmpp:csi:0'/>`)
	c.await(`<show>away</show>`)
}

// TestBind2SameDevice: Bind 2 gives an installation (its <user-agent id/>)
// the same resource at every login, so its new session replaces the one it
// left behind (XEP-0386), while another device of the account gets
// another resource and both stay; the id itself is not in the resource.
func TestBind2SameDevice(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	srv.AddUser(t, "alice", "pw")
	resource := regexp.MustCompile(`<authorization-identifier>alice@localhost/([^<]+)</authorization-identifier>`)
	login := func(ua string) (*smClient, string) {
		c := dialSM(t, srv.Addr)
		c.sasl2Features()
		m := resource.FindStringSubmatch(c.sasl2SCRAMAs("alice", "pw", ua, bind2Body))
		if m == nil {
			t.Fatal("no full JID in the success")
		}
		return c, m[1]
	}
	first, r1 := login(testUserAgent)
	if !strings.HasPrefix(r1, "kiez-test.") || strings.Contains(r1, testUserAgent[:8]) {
		t.Fatalf("resource %q: want the tag and a suffix not showing the id", r1)
	}
	laptop, r2 := login("0b9e3f35-1f4c-4e57-9d53-2a7b8c0d1e2f")
	if r2 == r1 {
		t.Fatalf("two devices got one resource %q", r1)
	}
	again, r3 := login(testUserAgent)
	if r3 != r1 {
		t.Fatalf("the same device got %q, then %q", r1, r3)
	}
	first.await(`<conflict xmlns=` + q + `urn:ietf:params:xml:ns:xmpp-streams` + q)

	// Both remaining sessions are alive and reachable at their resources.
	for _, c := range []struct {
		cl  *smClient
		res string
	}{{again, r3}, {laptop, r2}} {
		c.cl.send(`<iq type='get' id='ping-` + c.res + `' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
		c.cl.await(`id=` + q + `ping-` + regexp.QuoteMeta(c.res) + q)
	}
}

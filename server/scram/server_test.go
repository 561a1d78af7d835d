package scram_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"mellium.im/sasl"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage"
)

// TestExchange runs successful exchanges for all six mechanisms against our
// Client, mellium's client and ClientMechanism inside mellium's negotiator,
// without TLS, over TLS 1.3 and over TLS 1.2, with every channel binding
// type that applies.
func TestExchange(t *testing.T) {
	t13 := newTLS(t, tls.VersionTLS13)
	t12 := newTLS(t, tls.VersionTLS12)

	type testCase struct {
		name    string
		mech    string
		conn    *tlsConn // nil without TLS
		plus    bool     // PlusAdvertised
		user    string
		authzid string
		client  func(tc testCase) (stepFunc, error)
		wantCB  string
	}
	ours := func(cbType string, cs func(*tlsConn) *tls.ConnectionState) func(tc testCase) (stepFunc, error) {
		return func(tc testCase) (stepFunc, error) {
			c, err := scram.NewClient(tc.mech, tc.user, testPassword, tc.authzid, cs(tc.conn), cbType)
			if err != nil {
				return nil, err
			}
			return ourClient(c), nil
		}
	}
	noCS := func(*tlsConn) *tls.ConnectionState { return nil }
	clientCS := func(c *tlsConn) *tls.ConnectionState { return &c.client }
	mellium := func(m sasl.Mechanism) func(tc testCase) (stepFunc, error) {
		return func(tc testCase) (stepFunc, error) {
			opts := []sasl.Option{creds(tc.user, testPassword, tc.authzid)}
			if tc.conn != nil {
				opts = append(opts, sasl.TLSState(tc.conn.client))
			}
			if tc.plus {
				opts = append(opts, sasl.RemoteMechanisms(scram.Mechanisms(&tc.conn.server)...))
			}
			return melliumClient(sasl.NewClient(m, opts...)), nil
		}
	}

	var cases []testCase
	for _, base := range []string{scram.MechSHA1, scram.MechSHA256, scram.MechSHA512} {
		plus := base + "-PLUS"
		melliumPlain := map[string]sasl.Mechanism{scram.MechSHA1: sasl.ScramSha1, scram.MechSHA256: sasl.ScramSha256}[base]
		melliumPlus := map[string]sasl.Mechanism{scram.MechSHA1: sasl.ScramSha1Plus, scram.MechSHA256: sasl.ScramSha256Plus}[base]
		melliumCB12 := scram.TLSUnique
		if melliumPlain.Name == "" { // mellium lacks SHA-512
			melliumPlain = scram.ClientMechanism(base, "")
			melliumPlus = scram.ClientMechanism(plus, "")
			melliumCB12 = scram.TLSServerEndPoint // our default below TLS 1.3
		}
		cases = append(cases,
			testCase{name: "ours", mech: base, client: ours("", noCS)},
			testCase{name: "ours/escaped", mech: base, user: "a,b=c", client: ours("", noCS)},
			testCase{name: "ours/non-ASCII", mech: base, user: "jürgen", client: ours("", noCS)},
			testCase{name: "ours/authzid", mech: base, authzid: "user@" + testDomain, client: ours("", noCS)},
			testCase{name: "ours/authzid-domain-case", mech: base, authzid: "user@KIEZ.test", client: ours("", noCS)},
			testCase{name: "ours/y-flag", mech: base, conn: t13, client: ours("", clientCS)},
			testCase{name: "mellium", mech: base, client: mellium(melliumPlain)},
			testCase{name: "mellium/escaped", mech: base, user: "a,b=c", client: mellium(melliumPlain)},
			testCase{name: "mellium/authzid", mech: base, authzid: "user@" + testDomain, client: mellium(melliumPlain)},
			testCase{name: "mellium/tls-no-plus", mech: base, conn: t13, client: mellium(melliumPlain)},
			testCase{name: "mellium/tls-plus-advertised", mech: base, conn: t13, plus: true, client: mellium(melliumPlain)},
			testCase{name: "mechanism/plain-over-tls", mech: base, conn: t13, plus: true, client: mellium(scram.ClientMechanism(base, ""))},

			testCase{name: "ours/tls13/exporter", mech: plus, conn: t13, plus: true, client: ours(scram.TLSExporter, clientCS), wantCB: scram.TLSExporter},
			testCase{name: "ours/tls13/default", mech: plus, conn: t13, plus: true, client: ours("", clientCS), wantCB: scram.TLSExporter},
			testCase{name: "ours/tls13/end-point", mech: plus, conn: t13, plus: true, client: ours(scram.TLSServerEndPoint, clientCS), wantCB: scram.TLSServerEndPoint},
			testCase{name: "ours/tls13/authzid", mech: plus, conn: t13, plus: true, authzid: "user@" + testDomain, client: ours("", clientCS), wantCB: scram.TLSExporter},
			testCase{name: "ours/tls12/unique", mech: plus, conn: t12, plus: true, client: ours(scram.TLSUnique, clientCS), wantCB: scram.TLSUnique},
			testCase{name: "ours/tls12/end-point", mech: plus, conn: t12, plus: true, client: ours(scram.TLSServerEndPoint, clientCS), wantCB: scram.TLSServerEndPoint},
			testCase{name: "mellium/tls13", mech: plus, conn: t13, plus: true, client: mellium(melliumPlus), wantCB: scram.TLSExporter},
			testCase{name: "mellium/tls13/escaped", mech: plus, conn: t13, plus: true, user: "a,b=c", client: mellium(melliumPlus), wantCB: scram.TLSExporter},
			testCase{name: "mellium/tls12", mech: plus, conn: t12, plus: true, client: mellium(melliumPlus), wantCB: melliumCB12},
			testCase{name: "mechanism/tls13/end-point", mech: plus, conn: t13, plus: true, client: mellium(scram.ClientMechanism(plus, scram.TLSServerEndPoint)), wantCB: scram.TLSServerEndPoint},
			testCase{name: "mechanism/tls12/end-point", mech: plus, conn: t12, plus: true, client: mellium(scram.ClientMechanism(plus, scram.TLSServerEndPoint)), wantCB: scram.TLSServerEndPoint},
		)
	}

	for _, tc := range cases {
		if tc.user == "" {
			tc.user = "user"
		}
		t.Run(tc.mech+"/"+tc.name, func(t *testing.T) {
			cfg := scram.ServerConfig{Lookup: lookup(tc.mech), Domain: testDomain, PlusAdvertised: tc.plus}
			if tc.conn != nil {
				cfg.TLS = &tc.conn.server
				cfg.Certificate = tc.conn.cert
			}
			srv, err := scram.NewServer(tc.mech, cfg)
			if err != nil {
				t.Fatal(err)
			}
			cli, err := tc.client(tc)
			if err != nil {
				t.Fatal(err)
			}
			if err := run(srv, cli); err != nil {
				t.Fatal(err)
			}
			if got := srv.Username(); got != tc.user {
				t.Errorf("Username() = %q, want %q", got, tc.user)
			}
			if got := srv.Authzid(); got != tc.authzid {
				t.Errorf("Authzid() = %q, want %q", got, tc.authzid)
			}
			if got := srv.ChannelBinding(); got != tc.wantCB {
				t.Errorf("ChannelBinding() = %q, want %q", got, tc.wantCB)
			}
			if _, _, err := srv.Step([]byte("c=biws,r=x,p=eA==")); condition(err) != scram.MalformedRequest {
				t.Errorf("Step after success: %v, want %s", err, scram.MalformedRequest)
			}
		})
	}
}

// TestExchangeFailure runs whole exchanges that must fail, and checks which
// side fails and with what condition.
func TestExchangeFailure(t *testing.T) {
	t13 := newTLS(t, tls.VersionTLS13)
	t12 := newTLS(t, tls.VersionTLS12)
	other13 := newTLS(t, tls.VersionTLS13)
	other12 := newTLS(t, tls.VersionTLS12)

	tests := []struct {
		name    string
		mech    string
		conn    *tlsConn // the server's connection
		plus    bool
		client  func() (stepFunc, error)
		want    string // Failure condition
		wantCli bool   // the client fails instead
	}{
		{
			name: "wrong password", mech: scram.MechSHA256,
			client: func() (stepFunc, error) { return ours(scram.NewClient(scram.MechSHA256, "user", "wrong", "", nil, "")) },
			want:   scram.NotAuthorized,
		},
		{
			name: "wrong password/mellium", mech: scram.MechSHA1,
			client: func() (stepFunc, error) {
				return melliumClient(sasl.NewClient(sasl.ScramSha1, creds("user", "wrong", ""))), nil
			},
			want: scram.NotAuthorized,
		},
		{
			name: "unknown user", mech: scram.MechSHA512,
			client: func() (stepFunc, error) {
				return ours(scram.NewClient(scram.MechSHA512, "nobody", testPassword, "", nil, ""))
			},
			want: scram.NotAuthorized,
		},
		{
			name: "authzid of another user", mech: scram.MechSHA256,
			client: func() (stepFunc, error) {
				return ours(scram.NewClient(scram.MechSHA256, "user", testPassword, "a,b=c@"+testDomain, nil, ""))
			},
			want: scram.InvalidAuthzid,
		},
		{
			name: "authzid of another domain/mellium", mech: scram.MechSHA256,
			client: func() (stepFunc, error) {
				return melliumClient(sasl.NewClient(sasl.ScramSha256, creds("user", testPassword, "user@elsewhere.test"))), nil
			},
			want: scram.InvalidAuthzid,
		},
		{
			name: "authzid without domain", mech: scram.MechSHA256,
			client: func() (stepFunc, error) {
				return ours(scram.NewClient(scram.MechSHA256, "user", testPassword, "user", nil, ""))
			},
			want: scram.InvalidAuthzid,
		},
		{
			name: "y flag while PLUS advertised", mech: scram.MechSHA256, conn: t13, plus: true,
			client: func() (stepFunc, error) {
				return ours(scram.NewClient(scram.MechSHA256, "user", testPassword, "", &t13.client, ""))
			},
			want: scram.NotAuthorized,
		},
		{
			name: "y flag while PLUS advertised/mechanism", mech: scram.MechSHA512, conn: t13, plus: true,
			client: func() (stepFunc, error) {
				// The client believes the server offered only plain SCRAM.
				n := sasl.NewClient(scram.ClientMechanism(scram.MechSHA512, ""), creds("user", testPassword, ""),
					sasl.TLSState(t13.client), sasl.RemoteMechanisms(scram.MechSHA512))
				return melliumClient(n), nil
			},
			want: scram.NotAuthorized,
		},
		{
			name: "PLUS with y flag/mellium", mech: scram.MechSHA256Plus, conn: t13, plus: true,
			client: func() (stepFunc, error) {
				// Without RemoteMechanisms, mellium sends 'y' under the -PLUS name.
				n := sasl.NewClient(sasl.ScramSha256Plus, creds("user", testPassword, ""), sasl.TLSState(t13.client))
				return melliumClient(n), nil
			},
			want: scram.MalformedRequest,
		},
		{
			name: "tls-exporter from another connection", mech: scram.MechSHA256Plus, conn: t13, plus: true,
			client: func() (stepFunc, error) {
				return ours(scram.NewClient(scram.MechSHA256Plus, "user", testPassword, "", &other13.client, scram.TLSExporter))
			},
			want: scram.NotAuthorized,
		},
		{
			name: "tls-exporter from another connection/mellium", mech: scram.MechSHA1Plus, conn: t13, plus: true,
			client: func() (stepFunc, error) {
				n := sasl.NewClient(sasl.ScramSha1Plus, creds("user", testPassword, ""),
					sasl.TLSState(other13.client), sasl.RemoteMechanisms(scram.MechSHA1Plus))
				return melliumClient(n), nil
			},
			want: scram.NotAuthorized,
		},
		{
			name: "tls-unique from another connection", mech: scram.MechSHA1Plus, conn: t12, plus: true,
			client: func() (stepFunc, error) {
				return ours(scram.NewClient(scram.MechSHA1Plus, "user", testPassword, "", &other12.client, scram.TLSUnique))
			},
			want: scram.NotAuthorized,
		},
		{
			name: "tls-server-end-point of another certificate", mech: scram.MechSHA512Plus, conn: t13, plus: true,
			client: func() (stepFunc, error) {
				return ours(scram.NewClient(scram.MechSHA512Plus, "user", testPassword, "", &other13.client, scram.TLSServerEndPoint))
			},
			want: scram.NotAuthorized,
		},
		{
			name: "tls-unique over TLS 1.3", mech: scram.MechSHA256Plus, conn: t13, plus: true,
			client: func() (stepFunc, error) {
				// Build the client on a TLS 1.2 state so it can send tls-unique at all.
				return ours(scram.NewClient(scram.MechSHA256Plus, "user", testPassword, "", &t12.client, scram.TLSUnique))
			},
			want: scram.MalformedRequest,
		},
		{
			name: "tls-exporter over TLS 1.2", mech: scram.MechSHA256Plus, conn: t12, plus: true,
			client: func() (stepFunc, error) {
				return ours(scram.NewClient(scram.MechSHA256Plus, "user", testPassword, "", &t13.client, scram.TLSExporter))
			},
			want: scram.MalformedRequest,
		},
		{
			name: "channel binding with plain mechanism", mech: scram.MechSHA256, conn: t13, plus: true,
			client: func() (stepFunc, error) {
				return ours(scram.NewClient(scram.MechSHA256Plus, "user", testPassword, "", &t13.client, ""))
			},
			want: scram.MalformedRequest,
		},
		{
			name: "PLUS mechanism with n flag", mech: scram.MechSHA256Plus, conn: t13, plus: true,
			client: func() (stepFunc, error) {
				return ours(scram.NewClient(scram.MechSHA256, "user", testPassword, "", nil, ""))
			},
			want: scram.MalformedRequest,
		},
		{
			name: "client wants another hash", mech: scram.MechSHA512,
			client: func() (stepFunc, error) {
				return ours(scram.NewClient(scram.MechSHA256, "user", testPassword, "", nil, ""))
			},
			want: scram.MalformedRequest, // proof length
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := scram.ServerConfig{Lookup: lookup(tc.mech), Domain: testDomain, PlusAdvertised: tc.plus}
			if tc.conn != nil {
				cfg.TLS = &tc.conn.server
				cfg.Certificate = tc.conn.cert
			}
			srv, err := scram.NewServer(tc.mech, cfg)
			if err != nil {
				t.Fatal(err)
			}
			cli, err := tc.client()
			if err != nil {
				t.Fatal(err)
			}
			err = run(srv, cli)
			if errors.Is(err, errClient) {
				t.Fatalf("client failed: %v", err)
			}
			if got := condition(err); got != tc.want {
				t.Fatalf("got %q (%v), want %q", got, err, tc.want)
			}
			if srv.Username() != "" || srv.Authzid() != "" {
				t.Error("identity exposed after failure")
			}
			if _, _, err := srv.Step([]byte("n,,n=user,r=abc")); err == nil {
				t.Error("Step after failure succeeded")
			}
		})
	}
}

func ours(c *scram.Client, err error) (stepFunc, error) {
	if err != nil {
		return nil, err
	}
	return ourClient(c), nil
}

// TestUnknownUser checks that an unknown user sees a normal server-first
// message whose salt stays the same across attempts.
func TestUnknownUser(t *testing.T) {
	first := func(user string) (salt string) {
		t.Helper()
		srv, err := scram.NewServer(scram.MechSHA256, scram.ServerConfig{
			Lookup: lookup(scram.MechSHA256),
			Decoy: func(username string, h storage.Hash) storage.SCRAMKeys {
				return scram.DecoyKeys(testSecret, strings.ToLower(username), h, 12345)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		c, err := scram.NewClient(scram.MechSHA256, user, testPassword, "", nil, "")
		if err != nil {
			t.Fatal(err)
		}
		msg, _, _ := c.Step(nil)
		sf, _, err := srv.Step(msg)
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Split(string(sf), ",")
		wantI := "i=12345"
		if user == "user" {
			wantI = "i=4096"
		}
		if len(fields) != 3 || !strings.HasPrefix(fields[0], "r=") || !strings.HasPrefix(fields[1], "s=") || fields[2] != wantI {
			t.Fatalf("server-first %q does not look normal", sf)
		}
		return fields[1]
	}
	a1, a2, b := first("nobody"), first("nobody"), first("somebody")
	if a1 != a2 {
		t.Errorf("decoy salt changed between attempts: %s, %s", a1, a2)
	}
	if a3 := first("NoBody"); a3 != a1 {
		t.Errorf("the Decoy callback's normalisation was not used: NoBody got %s, nobody %s", a3, a1)
	}
	if a1 == b {
		t.Errorf("two unknown users share a salt %s", a1)
	}
	if len(a1) != len(first("user")) {
		t.Errorf("decoy salt %s and real salt differ in length", a1)
	}
}

// startServer returns a SCRAM-SHA-256 server that has answered the
// client-first-message of a fresh Client for "user", the Client (ready for
// the server-first-message) and that message.
func startServer(t *testing.T) (*scram.Server, *scram.Client, []byte) {
	t.Helper()
	srv, err := scram.NewServer(scram.MechSHA256, scram.ServerConfig{Lookup: lookup(scram.MechSHA256), Domain: testDomain})
	if err != nil {
		t.Fatal(err)
	}
	c, err := scram.NewClient(scram.MechSHA256, "user", testPassword, "", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	msg, _, _ := c.Step(nil)
	sf, _, err := srv.Step(msg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, sf
}

// TestClientFirstErrors feeds client-first-messages the server must refuse.
func TestClientFirstErrors(t *testing.T) {
	long := "n,,n=user,r=" + strings.Repeat("x", 9000)
	tests := []struct {
		name string
		mech string
		msg  string
		want string
	}{
		{"empty", scram.MechSHA256, "", scram.MalformedRequest},
		{"garbage", scram.MechSHA256, "hello world", scram.MalformedRequest},
		{"flag only", scram.MechSHA256, "n", scram.MalformedRequest},
		{"header only", scram.MechSHA256, "n,,", scram.MalformedRequest},
		{"bad flag", scram.MechSHA256, "x,,n=user,r=abc", scram.MalformedRequest},
		{"bad authzid attribute", scram.MechSHA256, "n,b=user,n=user,r=abc", scram.MalformedRequest},
		{"empty authzid", scram.MechSHA256, "n,a=,n=user,r=abc", scram.MalformedRequest},
		{"mandatory extension", scram.MechSHA256, "n,,m=ext,n=user,r=abc", scram.MalformedRequest},
		{"mandatory extension later", scram.MechSHA256, "n,,n=user,r=abc,m=ext", scram.MalformedRequest},
		{"missing username", scram.MechSHA256, "n,,r=abc", scram.MalformedRequest},
		{"swapped attributes", scram.MechSHA256, "n,,r=abc,n=user", scram.MalformedRequest},
		{"empty username", scram.MechSHA256, "n,,n=,r=abc", scram.MalformedRequest},
		{"bad escape", scram.MechSHA256, "n,,n=us=er,r=abc", scram.MalformedRequest},
		{"lowercase escape", scram.MechSHA256, "n,,n=a=2cb,r=abc", scram.MalformedRequest},
		{"truncated escape", scram.MechSHA256, "n,,n=user=2,r=abc", scram.MalformedRequest},
		{"NUL in username", scram.MechSHA256, "n,,n=us\x00er,r=abc", scram.MalformedRequest},
		{"invalid UTF-8", scram.MechSHA256, "n,,n=us\xffer,r=abc", scram.MalformedRequest},
		{"missing nonce", scram.MechSHA256, "n,,n=user", scram.MalformedRequest},
		{"empty nonce", scram.MechSHA256, "n,,n=user,r=", scram.MalformedRequest},
		{"nonce with space", scram.MechSHA256, "n,,n=user,r=a b", scram.MalformedRequest},
		{"bad extension", scram.MechSHA256, "n,,n=user,r=abc,1=x", scram.MalformedRequest},
		{"empty extension", scram.MechSHA256, "n,,n=user,r=abc,", scram.MalformedRequest},
		{"duplicate nonce", scram.MechSHA256, "n,,n=user,r=abc,r=def", scram.MalformedRequest},
		{"too long", scram.MechSHA256, long, scram.MalformedRequest},
		{"p flag on plain mechanism", scram.MechSHA256, "p=tls-exporter,,n=user,r=abc", scram.MalformedRequest},
		{"empty cb name", scram.MechSHA256, "p=,,n=user,r=abc", scram.MalformedRequest},
		{"authzid of another user", scram.MechSHA256, "n,a=other@kiez.test,n=user,r=abc", scram.InvalidAuthzid},
		{"authzid with resource", scram.MechSHA256, "n,a=user@kiez.test/res,n=user,r=abc", scram.InvalidAuthzid},
		{"unknown extension ignored", scram.MechSHA256, "n,,n=user,r=abc,x=whatever", ""},
		{"y flag without PLUS advertised", scram.MechSHA256, "y,,n=user,r=abc", ""},
		{"escaped authzid", scram.MechSHA256, "n,a=user@kiez.test,n=user,r=abc", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := scram.NewServer(tc.mech, scram.ServerConfig{Lookup: lookup(tc.mech), Domain: testDomain})
			if err != nil {
				t.Fatal(err)
			}
			resp, done, err := srv.Step([]byte(tc.msg))
			if got := condition(err); got != tc.want {
				t.Fatalf("got %q (%v), want %q", got, err, tc.want)
			}
			if err != nil && (resp != nil || done) {
				t.Errorf("failure with resp %q, done %v", resp, done)
			}
		})
	}
}

// TestPlusErrors checks the -PLUS specific refusals at client-first.
func TestPlusErrors(t *testing.T) {
	t13 := newTLS(t, tls.VersionTLS13)
	noCert := scram.ServerConfig{Lookup: lookup(scram.MechSHA256Plus), TLS: &t13.server, PlusAdvertised: true}
	tests := []struct {
		name string
		cfg  scram.ServerConfig
		msg  string
		want string
	}{
		{"n flag", noCert, "n,,n=user,r=abc", scram.MalformedRequest},
		{"y flag", noCert, "y,,n=user,r=abc", scram.MalformedRequest},
		{"unknown type", noCert, "p=tls-magic,,n=user,r=abc", scram.MalformedRequest},
		{"tls-unique over TLS 1.3", noCert, "p=tls-unique,,n=user,r=abc", scram.MalformedRequest},
		{"end-point without certificate", noCert, "p=tls-server-end-point,,n=user,r=abc", scram.MalformedRequest},
		{"exporter", noCert, "p=tls-exporter,,n=user,r=abc", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := scram.NewServer(scram.MechSHA256Plus, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = srv.Step([]byte(tc.msg))
			if got := condition(err); got != tc.want {
				t.Fatalf("got %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

// TestClientFinalErrors tampers with a valid client-final-message.
func TestClientFinalErrors(t *testing.T) {
	tests := []struct {
		name   string
		mangle func(final string) string
		want   string
	}{
		{"valid", func(f string) string { return f }, ""},
		{"empty", func(string) string { return "" }, scram.MalformedRequest},
		{"garbage", func(string) string { return "\x01\x02garbage" }, scram.MalformedRequest},
		{"bad base64 in c", func(f string) string { return strings.Replace(f, "c=biws", "c=bi!s", 1) }, scram.MalformedRequest},
		{"unpadded c", func(f string) string { return strings.Replace(f, "c=biws", "c=biw", 1) }, scram.MalformedRequest},
		{"newline in c", func(f string) string { return strings.Replace(f, "c=biws", "c=bi\nws", 1) }, scram.MalformedRequest},
		{"empty c", func(f string) string { return strings.Replace(f, "c=biws", "c=", 1) }, scram.MalformedRequest},
		{"bad base64 in p", func(f string) string { return f[:strings.LastIndex(f, "p=")] + "p=@@@@" }, scram.MalformedRequest},
		{"short proof", func(f string) string { return f[:strings.LastIndex(f, "p=")] + "p=AAAA" }, scram.MalformedRequest},
		{"missing proof", func(f string) string { return f[:strings.LastIndex(f, ",p=")] }, scram.MalformedRequest},
		{"missing c", func(f string) string { return strings.TrimPrefix(f, "c=biws,") }, scram.MalformedRequest},
		{"mandatory extension", func(f string) string {
			i := strings.LastIndex(f, ",p=")
			return f[:i] + ",m=x" + f[i:]
		}, scram.MalformedRequest},
		{"wrong nonce", func(f string) string { return strings.Replace(f, ",r=", ",r=X", 1) }, scram.NotAuthorized},
		{"truncated nonce", func(f string) string {
			i := strings.LastIndex(f, ",p=")
			return f[:i-1] + f[i:]
		}, scram.NotAuthorized},
		{"other gs2 header in c", func(f string) string { return strings.Replace(f, "c=biws", "c=eSws", 1) }, scram.NotAuthorized},
		{"flipped proof", func(f string) string {
			i := strings.LastIndex(f, "p=") + 2
			b := []byte(f)
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			return string(b)
		}, scram.NotAuthorized},
		{"extension changes AuthMessage", func(f string) string {
			i := strings.LastIndex(f, ",p=")
			return f[:i] + ",x=y" + f[i:]
		}, scram.NotAuthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, c, sf := startServer(t)
			final, _, err := c.Step(sf)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(final), "c=biws,") {
				t.Fatalf("unexpected client-final %q", final)
			}
			_, done, err := srv.Step([]byte(tc.mangle(string(final))))
			if got := condition(err); got != tc.want {
				t.Fatalf("got %q (%v), want %q", got, err, tc.want)
			}
			if done != (tc.want == "") {
				t.Errorf("done = %v", done)
			}
		})
	}
}

// TestServerSignature checks that our Client verifies the server-final
// message.
func TestServerSignature(t *testing.T) {
	tests := []struct {
		name   string
		mangle func(string) string
		ok     bool
	}{
		{"valid", func(s string) string { return s }, true},
		{"flipped", func(s string) string { return "v=" + strings.Repeat("A", len(s)-3) + "=" }, false},
		{"error", func(string) string { return "e=invalid-proof" }, false},
		{"empty", func(string) string { return "" }, false},
		{"not base64", func(string) string { return "v=!!" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, c, sf := startServer(t)
			final, _, err := c.Step(sf)
			if err != nil {
				t.Fatal(err)
			}
			sfin, done, err := srv.Step(final)
			if err != nil || !done {
				t.Fatalf("server: done %v, %v", done, err)
			}
			_, done, err = c.Step([]byte(tc.mangle(string(sfin))))
			if (err == nil) != tc.ok || done != tc.ok {
				t.Fatalf("client: done %v, err %v; want ok %v", done, err, tc.ok)
			}
		})
	}
}

// TestClientRefusesServer checks what our Client refuses in a
// server-first-message.
func TestClientRefusesServer(t *testing.T) {
	c, _ := scram.NewClient(scram.MechSHA256, "user", testPassword, "", nil, "")
	first, _, _ := c.Step(nil)
	cnonce := string(first[strings.Index(string(first), "r=")+2:])
	tests := []struct {
		name, msg string
	}{
		{"empty", ""},
		{"mandatory extension", "m=x,r=" + cnonce + "s,s=QSXCR+Q6sek8bf92,i=4096"},
		{"foreign nonce", "r=abcdef,s=QSXCR+Q6sek8bf92,i=4096"},
		{"same nonce", "r=" + cnonce + ",s=QSXCR+Q6sek8bf92,i=4096"},
		{"too few iterations", "r=" + cnonce + "s,s=QSXCR+Q6sek8bf92,i=4095"},
		{"too many iterations", "r=" + cnonce + "s,s=QSXCR+Q6sek8bf92,i=2000000000"},
		{"signed iterations", "r=" + cnonce + "s,s=QSXCR+Q6sek8bf92,i=+4096"},
		{"empty salt", "r=" + cnonce + "s,s=,i=4096"},
		{"bad salt", "r=" + cnonce + "s,s=QSX,i=4096"},
		{"missing count", "r=" + cnonce + "s,s=QSXCR+Q6sek8bf92"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := scram.NewClient(scram.MechSHA256, "user", testPassword, "", nil, "")
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := c.Step(nil)
			msg := strings.ReplaceAll(tc.msg, cnonce, string(first[strings.Index(string(first), "r=")+2:]))
			if resp, _, err := c.Step([]byte(msg)); err == nil {
				t.Fatalf("client accepted %q and answered %q", msg, resp)
			}
		})
	}
}

// TestNewServer checks the refusals of NewServer and lookup failures.
func TestNewServer(t *testing.T) {
	t13 := newTLS(t, tls.VersionTLS13)
	lk := lookup(scram.MechSHA256)
	tests := []struct {
		name string
		mech string
		cfg  scram.ServerConfig
		want string
	}{
		{"unknown mechanism", "SCRAM-MD5", scram.ServerConfig{Lookup: lk}, scram.InvalidMechanism},
		{"PLAIN", "PLAIN", scram.ServerConfig{Lookup: lk}, scram.InvalidMechanism},
		{"lowercase", "scram-sha-256", scram.ServerConfig{Lookup: lk}, scram.InvalidMechanism},
		{"PLUS without TLS", scram.MechSHA256Plus, scram.ServerConfig{Lookup: lk}, scram.EncryptionRequired},
		{"PLUS with unfinished TLS", scram.MechSHA1Plus, scram.ServerConfig{Lookup: lk, TLS: &tls.ConnectionState{}}, scram.EncryptionRequired},
		{"PLUS with TLS", scram.MechSHA512Plus, scram.ServerConfig{Lookup: lk, TLS: &t13.server}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scram.NewServer(tc.mech, tc.cfg)
			if got := condition(err); got != tc.want {
				t.Fatalf("got %q (%v), want %q", got, err, tc.want)
			}
		})
	}
	if _, err := scram.NewServer(scram.MechSHA256, scram.ServerConfig{}); err == nil {
		t.Error("NewServer accepted a nil Lookup")
	}

	broken := errors.New("disk on fire")
	for name, lk := range map[string]func(string) (storage.SCRAMKeys, error){
		"error":     func(string) (storage.SCRAMKeys, error) { return storage.SCRAMKeys{}, broken },
		"bad keys":  func(string) (storage.SCRAMKeys, error) { return testKeys()["user"][storage.SHA1], nil },
		"zero keys": func(string) (storage.SCRAMKeys, error) { return storage.SCRAMKeys{}, nil },
	} {
		t.Run("lookup "+name, func(t *testing.T) {
			srv, err := scram.NewServer(scram.MechSHA256, scram.ServerConfig{Lookup: lk})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = srv.Step([]byte("n,,n=user,r=abc"))
			if got := condition(err); got != scram.TemporaryAuthFailure {
				t.Fatalf("got %q (%v)", got, err)
			}
			if name == "error" && !errors.Is(err, broken) {
				t.Errorf("%v does not wrap the lookup error", err)
			}
			if strings.Contains(err.(*scram.Failure).Text, "fire") {
				t.Error("Text leaks the internal error")
			}
		})
	}
}

// TestNewClientErrors checks the arguments NewClient refuses.
func TestNewClientErrors(t *testing.T) {
	t12 := newTLS(t, tls.VersionTLS12)
	tests := []struct {
		name, mech, user, pass string
		cs                     *tls.ConnectionState
		cbType                 string
	}{
		{"unknown mechanism", "SCRAM-MD5", "user", "pw", nil, ""},
		{"empty username", scram.MechSHA1, "", "pw", nil, ""},
		{"empty password", scram.MechSHA1, "user", "", nil, ""},
		{"PLUS without TLS", scram.MechSHA1Plus, "user", "pw", nil, ""},
		{"binding with plain mechanism", scram.MechSHA1, "user", "pw", &t12.client, scram.TLSUnique},
		{"exporter over TLS 1.2", scram.MechSHA1Plus, "user", "pw", &t12.client, scram.TLSExporter},
		{"unknown binding", scram.MechSHA1Plus, "user", "pw", &t12.client, "tls-magic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := scram.NewClient(tc.mech, tc.user, tc.pass, "", tc.cs, tc.cbType); err == nil {
				t.Fatal("NewClient succeeded")
			}
		})
	}
}

// TestChannelBindingTypes checks what is offered per TLS version.
func TestChannelBindingTypes(t *testing.T) {
	t13 := newTLS(t, tls.VersionTLS13)
	t12 := newTLS(t, tls.VersionTLS12)
	tests := []struct {
		name      string
		cs        *tls.ConnectionState
		want      []string
		wantMechs int
	}{
		{"none", nil, nil, 3},
		{"unfinished", &tls.ConnectionState{Version: tls.VersionTLS13}, nil, 3},
		{"TLS 1.3 server", &t13.server, []string{scram.TLSExporter, scram.TLSServerEndPoint}, 6},
		{"TLS 1.3 client", &t13.client, []string{scram.TLSExporter, scram.TLSServerEndPoint}, 6},
		{"TLS 1.2 server", &t12.server, []string{scram.TLSServerEndPoint, scram.TLSUnique}, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := scram.ChannelBindingTypes(tc.cs); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("ChannelBindingTypes = %q, want %q", got, tc.want)
			}
			mechs := scram.Mechanisms(tc.cs)
			if len(mechs) != tc.wantMechs || mechs[0] != map[bool]string{true: scram.MechSHA512Plus, false: scram.MechSHA512}[tc.wantMechs == 6] {
				t.Errorf("Mechanisms = %q", mechs)
			}
		})
	}
}

// TestFailureError checks the error text and unwrapping.
func TestFailureError(t *testing.T) {
	inner := errors.New("inner")
	f := &scram.Failure{Condition: scram.NotAuthorized, Text: "nope", Err: inner}
	if got, want := f.Error(), "scram: not-authorized: nope: inner"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(f, inner) {
		t.Error("Failure does not unwrap")
	}
	if !bytes.Equal([]byte((&scram.Failure{Condition: "x"}).Error()), []byte("scram: x")) {
		t.Error("bare Failure text")
	}
}

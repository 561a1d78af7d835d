package scram_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/kiez-im/kiez/server/scram"
)

var fuzzMechs = []string{
	scram.MechSHA1, scram.MechSHA256, scram.MechSHA512,
	scram.MechSHA1Plus, scram.MechSHA256Plus, scram.MechSHA512Plus,
}

// nonceMark in a fuzzed client-final-message is replaced by the nonce the
// server sent, so that the fuzzer reaches the channel binding and proof
// checks.
var nonceMark = []byte("{nonce}")

// FuzzServerStep feeds arbitrary client-first and client-final messages to
// a server for each mechanism. It must never panic, and every error must be
// a *Failure.
func FuzzServerStep(f *testing.F) {
	t13 := newTLS(f, tls.VersionTLS13)
	for i, mech := range fuzzMechs {
		var cs *tls.ConnectionState
		if i >= 3 {
			cs = &t13.client
		}
		for _, user := range []string{"user", "a,b=c", "nobody"} {
			c, err := scram.NewClient(mech, user, testPassword, "", cs, "")
			if err != nil {
				f.Fatal(err)
			}
			first, _, _ := c.Step(nil)
			f.Add(uint8(i), first, []byte("c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
		}
	}
	f.Add(uint8(0), []byte("n,a=user@kiez.test,m=x,n=user,r=abc,x=y"), []byte("c=biws,r={nonce},x=1,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="))
	f.Add(uint8(4), []byte("p=tls-server-end-point,,n=u=2Cser,r=abc"), []byte("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r={nonce},p=AA=="))
	f.Add(uint8(5), []byte("p=tls-unique,a=x=3Dy,n=user,r=\x7f"), []byte("c=,r=,p="))
	f.Add(uint8(1), []byte(""), []byte(""))

	f.Fuzz(func(t *testing.T, mechIndex uint8, first, final []byte) {
		if len(first) > 1024 || len(final) > 1024 {
			// Long inputs only take the length check, which
			// TestClientFirstErrors covers, and they make minimisation slow.
			t.Skip()
		}
		mech := fuzzMechs[int(mechIndex)%len(fuzzMechs)]
		cfg := scram.ServerConfig{
			Lookup:         lookup(mech),
			Domain:         testDomain,
			TLS:            &t13.server,
			Certificate:    t13.cert,
			PlusAdvertised: mechIndex&0x80 != 0,
		}
		srv, err := scram.NewServer(mech, cfg)
		if err != nil {
			t.Fatal(err)
		}
		check := func(resp []byte, err error) {
			t.Helper()
			var f *scram.Failure
			if err != nil && !errors.As(err, &f) {
				t.Fatalf("error %v is no *Failure", err)
			}
			if err != nil && resp != nil {
				t.Fatalf("error %v with response %q", err, resp)
			}
			if !utf8.Valid(resp) {
				t.Fatalf("response %q is not UTF-8", resp)
			}
		}
		sf, done, err := srv.Step(first)
		check(sf, err)
		if done {
			t.Fatal("done after client-first")
		}
		if err != nil {
			return
		}
		nonce := bytes.TrimPrefix(sf[:bytes.IndexByte(sf, ',')], []byte("r="))
		sfin, done, err := srv.Step(bytes.ReplaceAll(final, nonceMark, nonce))
		check(sfin, err)
		if done && srv.Username() == "" {
			t.Fatal("success without a username")
		}
		if _, _, err := srv.Step(final); err == nil {
			t.Fatal("Step succeeded after the end of the exchange")
		}
	})
}

// FuzzClientStep feeds arbitrary server-first and server-final messages to
// our Client. It must never panic.
func FuzzClientStep(f *testing.F) {
	f.Add([]byte("r={nonce}x,s=QSXCR+Q6sek8bf92,i=4096"), []byte("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="))
	f.Add([]byte("m=x,r={nonce},s=,i=0"), []byte("e=invalid-proof"))
	f.Fuzz(func(t *testing.T, serverFirst, serverFinal []byte) {
		c, err := scram.NewClient(scram.MechSHA1, "user", testPassword, "", nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(serverFirst, []byte(",i=")); i >= 0 && len(serverFirst) > i+7 && bytes.IndexByte(serverFirst[i+3:i+8], ',') < 0 {
			t.Skip("more than 9999 iterations would only slow the fuzzer down")
		}
		first, _, _ := c.Step(nil)
		nonce := first[bytes.Index(first, []byte("r="))+2:]
		if _, _, err := c.Step(bytes.ReplaceAll(serverFirst, nonceMark, nonce)); err != nil {
			return
		}
		if _, done, err := c.Step(serverFinal); done || err == nil {
			t.Fatalf("client accepted server-final %q", serverFinal)
		}
	})
}

// FuzzParsePlain checks that ParsePlain never panics and returns what it
// was given.
func FuzzParsePlain(f *testing.F) {
	f.Add([]byte("\x00tim\x00tanstaaftanstaaf"))
	f.Add([]byte("Ursel\x00Kurt\x00xipj3plmq"))
	f.Add([]byte("\x00\x00"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		a, u, p, err := scram.ParsePlain(msg)
		if err != nil {
			return
		}
		if a+"\x00"+u+"\x00"+p != string(msg) || u == "" || p == "" {
			t.Fatalf("ParsePlain(%q) = %q, %q, %q", msg, a, u, p)
		}
	})
}

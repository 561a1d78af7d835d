package server_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

// BenchmarkLoginFAST is BenchmarkLoginSASL2 with a XEP-0484 token
// (HT-SHA-256-NONE, asked for once with PLAIN): one round trip and no key
// stretching. Compare with
//
//	go test ./server/ -run '^$' -bench 'BenchmarkLogin(SASL2|FAST)$' -benchmem
func BenchmarkLoginFAST(b *testing.B) {
	srv := servertest.Start(b, server.Config{})
	srv.AddUser(b, "u0", "benchpw")
	var token string
	login := func() {
		nc, err := srv.DialInProcess()
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		if err := benchLoginFAST(nc, srv.Domain, "u0", "benchpw", &token); err != nil {
			b.Fatal(err)
		}
	}
	login() // PLAIN, asking for the token
	login()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		login()
	}
}

var benchTokenRE = regexp.MustCompile(`token='([^']+)'`)

// benchLoginFAST logs user in on nc with SASL2 and Bind 2, by PLAIN asking
// for a token if *token is empty, else by HT-SHA-256-NONE with it, and
// closes the stream.
func benchLoginFAST(nc net.Conn, domain, user, pass string, token *string) error {
	header := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" +
		domain + "' version='1.0'>"
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawConn{nc: nc}
	if err := c.step(header, "</stream:features>"); err != nil {
		return err
	}
	if err := c.step("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		return err
	}
	tc := tls.Client(nc, &tls.Config{ServerName: domain, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return err
	}
	c = &rawConn{nc: tc}
	if err := c.step(header, "</stream:features>"); err != nil {
		return err
	}
	b64 := base64.StdEncoding
	mech, resp, extra := "HT-SHA-256-NONE", append([]byte(user+"\x00"), fastMAC(*token, "Initiator")...), fastElem
	if *token == "" {
		mech, resp, extra = "PLAIN", []byte("\x00"+user+"\x00"+pass), fastRequest
	}
	if err := c.step("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='"+mech+"'><initial-response>"+
		b64.EncodeToString(resp)+"</initial-response><user-agent id='"+fastUA+"'/>"+extra+
		"<bind xmlns='urn:xmpp:bind:0'><tag>bench</tag><enable xmlns='urn:xmpp:sm:3'/></bind></authenticate>", "</success>"); err != nil {
		return err
	}
	if !bytes.Contains(c.got, []byte("<bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3'/></bound>")) {
		return fmt.Errorf("success: %q", c.got)
	}
	if *token == "" {
		m := benchTokenRE.FindSubmatch(c.got)
		if m == nil {
			return fmt.Errorf("no token: %q", c.got)
		}
		*token = string(m[1])
	}
	return c.step("</stream:stream>", "</stream:stream>")
}

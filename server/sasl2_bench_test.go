package server_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
)

// BenchmarkLoginSASL2 is BenchmarkLogin with SASL2 and Bind 2 (XEP-0388,
// XEP-0386): the same SCRAM-SHA-1 exchange, but the resource is bound,
// and stream management enabled, inside <authenticate/>, with no stream
// restart nor bind iq. Compare the two with
//
//	go test ./server/ -run '^$' -bench 'BenchmarkLogin(SASL2)?$' -benchmem
func BenchmarkLoginSASL2(b *testing.B) {
	srv := servertest.Start(b, server.Config{})
	srv.AddUser(b, "u0", "benchpw")
	var salted []byte
	login := func() {
		nc, err := srv.DialInProcess()
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		if err := benchLoginSASL2(nc, srv.Domain, "u0", "benchpw", &salted); err != nil {
			b.Fatal(err)
		}
	}
	login()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		login()
	}
}

// benchLoginSASL2 logs user in on nc with SASL2 and Bind 2 and closes the
// stream.
func benchLoginSASL2(nc net.Conn, domain, user, pass string, salted *[]byte) error {
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
	nonce := make([]byte, 18)
	rand.Read(nonce)
	bare := "n=" + user + ",r=" + base64.StdEncoding.EncodeToString(nonce)
	b64 := base64.StdEncoding
	if err := c.step("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-1'><initial-response>"+
		b64.EncodeToString([]byte("n,,"+bare))+"</initial-response><user-agent id='bench'/>"+
		"<bind xmlns='urn:xmpp:bind:0'><tag>bench</tag><enable xmlns='urn:xmpp:sm:3'/></bind></authenticate>", "</challenge>"); err != nil {
		return err
	}
	first, err := b64.DecodeString(c.text("challenge"))
	if err != nil {
		return err
	}
	var snonce, salt string
	var iter int
	for part := range strings.SplitSeq(string(first), ",") {
		switch {
		case strings.HasPrefix(part, "r="):
			snonce = part[2:]
		case strings.HasPrefix(part, "s="):
			salt = part[2:]
		case strings.HasPrefix(part, "i="):
			iter, _ = strconv.Atoi(part[2:])
		}
	}
	if *salted == nil {
		s, err := b64.DecodeString(salt)
		if err != nil {
			return err
		}
		if *salted, err = pbkdf2.Key(sha1.New, pass, s, iter, sha1.Size); err != nil {
			return err
		}
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha1.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(*salted, "Client Key")
	storedKey := sha1.Sum(clientKey)
	withoutProof := "c=biws,r=" + snonce
	proof := mac(storedKey[:], bare+","+string(first)+","+withoutProof)
	subtle.XORBytes(proof, proof, clientKey)
	if err := c.step("<response xmlns='urn:xmpp:sasl:2'>"+b64.EncodeToString([]byte(withoutProof+",p="+b64.EncodeToString(proof)))+"</response>", "</success>"); err != nil {
		return err
	}
	if !bytes.Contains(c.got, []byte("<bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3'/></bound>")) {
		return fmt.Errorf("success: %q", c.got)
	}
	return c.step("</stream:stream>", "</stream:stream>")
}

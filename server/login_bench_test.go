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

// BenchmarkLogin measures one whole client login, in process: a stream
// header, STARTTLS and the TLS handshake (the default X25519MLKEM768 key
// exchange), SCRAM-SHA-1 without channel binding, a stream restart,
// resource binding and the closing of the stream, as examples/loadclient
// does it. The client is a lean hand-written one that keeps its
// SaltedPassword, over an in-memory pipe (servertest.DialInProcess), so
// that most of the time is the server's; the client's half of the TLS
// handshake is in the figure too, and the same in every run.
func BenchmarkLogin(b *testing.B) {
	srv := servertest.Start(b, server.Config{})
	srv.AddUser(b, "u0", "benchpw")
	var salted []byte // the client's SaltedPassword, derived once
	login := func() {
		nc, err := srv.DialInProcess()
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		if err := benchLogin(nc, srv.Domain, "u0", "benchpw", &salted); err != nil {
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

// benchLogin logs user in on nc and closes the stream.
func benchLogin(nc net.Conn, domain, user, pass string, salted *[]byte) error {
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
	if err := c.step("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>"+b64.EncodeToString([]byte("n,,"+bare))+"</auth>", "</challenge>"); err != nil {
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
	if err := c.step("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"+b64.EncodeToString([]byte(withoutProof+",p="+b64.EncodeToString(proof)))+"</response>", "</success>"); err != nil {
		return err
	}
	if err := c.step(header, "</stream:features>"); err != nil {
		return err
	}
	if err := c.step("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>", "</iq>"); err != nil {
		return err
	}
	if !bytes.Contains(c.got, []byte("<jid>")) {
		return fmt.Errorf("bind: %q", c.got)
	}
	return c.step("</stream:stream>", "</stream:stream>")
}

// rawConn sends XML text and reads until an expected string.
type rawConn struct {
	nc  net.Conn
	buf [4096]byte
	got []byte // what the last step read
}

func (c *rawConn) step(send, until string) error {
	if _, err := c.nc.Write([]byte(send)); err != nil {
		return err
	}
	c.got = c.got[:0]
	for !bytes.Contains(c.got, []byte(until)) {
		n, err := c.nc.Read(c.buf[:])
		if err != nil {
			return fmt.Errorf("waiting for %s: %w (got %q)", until, err, c.got)
		}
		c.got = append(c.got, c.buf[:n]...)
	}
	return nil
}

// text returns the text of the element named local in what the last step
// read.
func (c *rawConn) text(local string) string {
	s := string(c.got)
	_, s, _ = strings.Cut(s, "<"+local)
	_, s, _ = strings.Cut(s, ">")
	s, _, _ = strings.Cut(s, "</"+local+">")
	return s
}

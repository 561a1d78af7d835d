// Package loginclient is a lean XMPP client that does nothing but log in,
// for benchmarks of a server's logins (the server package's in-process
// ones and kiezd's, whose server runs in a process of its own). It speaks
// raw XML over STARTTLS: classic SASL with SCRAM and resource binding,
// SASL2 (XEP-0388) with SCRAM and Bind 2 (XEP-0386), and FAST tokens
// (XEP-0484). Like a real client, it keeps the SCRAM SaltedPassword and
// the FAST token between logins, so that the client's key stretching does
// not dominate a benchmark. It does not check the server's signatures.
package loginclient

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// UserAgent is the XEP-0388 user agent id the client sends: a FAST token
// belongs to it.
const UserAgent = "d4565fa7-4d72-4749-b3d3-740edbf87770"

// Client logs one account in, again and again. Its methods each take a
// new connection to the server's STARTTLS listener, log in, close the
// stream and return; they do not close the connection. A Client is not
// safe for concurrent use.
type Client struct {
	Domain, User, Password string
	// SCRAM is the SCRAM mechanism, "SCRAM-SHA-1" or "SCRAM-SHA-256"
	// (the default), without channel binding.
	SCRAM string
	// FAST is the mechanism of the FAST token, "HT-SHA-256-NONE" (the
	// default) or "HT-SHA-256-EXPR" (tls-exporter channel binding).
	FAST string

	salted []byte // the SaltedPassword, derived at the first SCRAM login
	token  string // the FAST token
}

// Login logs in the classic way: STARTTLS, SASL with SCRAM, a stream
// restart and resource binding (RFC 6120).
func (c *Client) Login(nc net.Conn) error {
	s, err := c.startTLS(nc)
	if err != nil {
		return err
	}
	const ns = "urn:ietf:params:xml:ns:xmpp-sasl"
	err = c.scram(s, func(mech, initial string) string {
		return "<auth xmlns='" + ns + "' mechanism='" + mech + "'>" + initial + "</auth>"
	}, ns)
	if err != nil {
		return err
	}
	if err := s.step(s.header, "</stream:features>"); err != nil {
		return err
	}
	if err := s.step("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>", "</iq>"); err != nil {
		return err
	}
	if !bytes.Contains(s.got, []byte("<jid>")) {
		return fmt.Errorf("bind: %q", s.got)
	}
	return s.close()
}

// bind2 is the Bind 2 request of the SASL2 logins: a resource, with
// stream management enabled.
const bind2 = "<bind xmlns='urn:xmpp:bind:0'><tag>bench</tag><enable xmlns='urn:xmpp:sm:3'/></bind>"

// LoginSASL2 logs in with SASL2 and SCRAM, and binds a resource with
// stream management enabled by Bind 2, inside the authentication: no
// stream restart, no bind iq.
func (c *Client) LoginSASL2(nc net.Conn) error {
	s, err := c.startTLS(nc)
	if err != nil {
		return err
	}
	if err := c.scram(s, sasl2Auth(bind2), "urn:xmpp:sasl:2"); err != nil {
		return err
	}
	if err := checkBound(s.got); err != nil {
		return err
	}
	return s.close()
}

// LoginFAST logs in with SASL2 and the client's FAST token, with Bind 2:
// one round trip, no key stretching. Without a token yet, it logs in
// with SASL2 and SCRAM, asking for one. A token the server rotates
// replaces the client's.
func (c *Client) LoginFAST(nc net.Conn) error {
	s, err := c.startTLS(nc)
	if err != nil {
		return err
	}
	mech := c.FAST
	if mech == "" {
		mech = "HT-SHA-256-NONE"
	}
	if c.token == "" {
		err = c.scram(s, sasl2Auth("<request-token xmlns='urn:xmpp:fast:0' mechanism='"+mech+"'/>"+bind2), "urn:xmpp:sasl:2")
	} else {
		var cb []byte
		if mech == "HT-SHA-256-EXPR" {
			cs := s.nc.(*tls.Conn).ConnectionState()
			if cb, err = cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32); err != nil {
				return err
			}
		}
		m := hmac.New(sha256.New, []byte(c.token))
		m.Write([]byte("Initiator"))
		m.Write(cb)
		initial := base64.StdEncoding.EncodeToString(m.Sum([]byte(c.User + "\x00")))
		err = s.step(sasl2Auth("<fast xmlns='urn:xmpp:fast:0'/>"+bind2)(mech, initial), "</success>")
	}
	if err != nil {
		return err
	}
	if err := checkBound(s.got); err != nil {
		return err
	}
	if m := tokenRE.FindSubmatch(s.got); m != nil {
		c.token = string(m[1])
	} else if c.token == "" {
		return fmt.Errorf("no FAST token: %q", s.got)
	}
	return s.close()
}

var tokenRE = regexp.MustCompile(`<token xmlns='urn:xmpp:fast:0' [^>]*token='([^']+)'`)

// sasl2Auth returns the function that makes a SASL2 <authenticate/> with
// extra after the user agent.
func sasl2Auth(extra string) func(mech, initial string) string {
	return func(mech, initial string) string {
		return "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='" + mech + "'><initial-response>" + initial +
			"</initial-response><user-agent id='" + UserAgent + "'><software>kiez bench</software></user-agent>" +
			extra + "</authenticate>"
	}
}

// checkBound checks that a SASL2 <success/> tells of a resource bound
// with stream management enabled.
func checkBound(success []byte) error {
	if !bytes.Contains(success, []byte("<bound xmlns='urn:xmpp:bind:0'>")) || !bytes.Contains(success, []byte("<enabled xmlns='urn:xmpp:sm:3'")) {
		return fmt.Errorf("success without Bind 2: %q", success)
	}
	return nil
}

// scram runs a SCRAM exchange on s, up to the server's <success/>: auth
// makes the element that carries the client's first message, ns is the
// namespace of the <response/>.
func (c *Client) scram(s *stream, auth func(mech, initial string) string, ns string) error {
	mech, fn, size := c.SCRAM, sha256.New, sha256.Size
	switch mech {
	case "", "SCRAM-SHA-256":
		mech = "SCRAM-SHA-256"
	case "SCRAM-SHA-1":
		fn, size = sha1.New, sha1.Size
	default:
		return fmt.Errorf("loginclient: unknown SCRAM mechanism %q", mech)
	}
	b64 := base64.StdEncoding
	nonce := make([]byte, 18)
	rand.Read(nonce)
	bare := "n=" + c.User + ",r=" + b64.EncodeToString(nonce)
	if err := s.step(auth(mech, b64.EncodeToString([]byte("n,,"+bare))), "</challenge>"); err != nil {
		return err
	}
	first, err := b64.DecodeString(s.text("challenge"))
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
	if len(c.salted) != size {
		sb, err := b64.DecodeString(salt)
		if err != nil {
			return err
		}
		if c.salted, err = pbkdf2.Key(fn, c.Password, sb, iter, size); err != nil {
			return err
		}
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(fn, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(c.salted, "Client Key")
	h := fn()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	withoutProof := "c=biws,r=" + snonce
	proof := mac(storedKey, bare+","+string(first)+","+withoutProof)
	subtle.XORBytes(proof, proof, clientKey)
	return s.step("<response xmlns='"+ns+"'>"+b64.EncodeToString([]byte(withoutProof+",p="+b64.EncodeToString(proof)))+"</response>", "</success>")
}

// startTLS opens a stream on nc, negotiates TLS and opens the stream
// again, up to its features.
func (c *Client) startTLS(nc net.Conn) (*stream, error) {
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	s := &stream{nc: nc, header: "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" +
		c.Domain + "' version='1.0'>"}
	if err := s.step(s.header, "</stream:features>"); err != nil {
		return nil, err
	}
	if err := s.step("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		return nil, err
	}
	tc := tls.Client(nc, &tls.Config{ServerName: c.Domain, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	s.nc = tc
	if err := s.step(s.header, "</stream:features>"); err != nil {
		return nil, err
	}
	return s, nil
}

// stream sends XML text and reads until an expected string.
type stream struct {
	nc     net.Conn
	header string
	buf    [4096]byte
	got    []byte // what the last step read
}

// step sends send and reads until the server has sent until. A SASL
// failure or a stream error before it is an error.
func (s *stream) step(send, until string) error {
	if _, err := s.nc.Write([]byte(send)); err != nil {
		return err
	}
	s.got = s.got[:0]
	for !bytes.Contains(s.got, []byte(until)) {
		if bytes.Contains(s.got, []byte("</failure>")) || bytes.Contains(s.got, []byte("</stream:error>")) {
			return fmt.Errorf("waiting for %s: got %q", until, s.got)
		}
		n, err := s.nc.Read(s.buf[:])
		if err != nil {
			return fmt.Errorf("waiting for %s: %w (got %q)", until, err, s.got)
		}
		s.got = append(s.got, s.buf[:n]...)
	}
	return nil
}

// close closes the stream and waits for the server to close its own.
func (s *stream) close() error {
	return s.step("</stream:stream>", "</stream:stream>")
}

// text returns the text of the element named local in what the last step
// read.
func (s *stream) text(local string) string {
	t := string(s.got)
	_, t, _ = strings.Cut(t, "<"+local)
	_, t, _ = strings.Cut(t, ">")
	t, _, _ = strings.Cut(t, "</"+local+">")
	return t
}

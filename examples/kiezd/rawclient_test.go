package main

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net"
	"sync"
	"time"
)

// rawClient is a minimal XMPP client speaking raw XML, for what mellium's
// client does not do: stream management (XEP-0198) and surviving a server
// that is killed. It does STARTTLS, SASL PLAIN and resource binding.
type rawClient struct {
	conn net.Conn
	dec  *xml.Decoder
	wmu  sync.Mutex
}

// rawElem is one top-level element of the server's stream.
type rawElem struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

func (e rawElem) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (c *rawClient) send(format string, args ...any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := fmt.Fprintf(c.conn, format, args...)
	return err
}

// open sends a stream header and reads the server's up to its features.
func (c *rawClient) open(domain string) (rawElem, error) {
	c.dec = xml.NewDecoder(c.conn)
	if err := c.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>`, domain); err != nil {
		return rawElem{}, err
	}
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return rawElem{}, err
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			return c.next()
		}
	}
}

// next reads the next top-level element.
func (c *rawClient) next() (rawElem, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return rawElem{}, err
		}
		switch tt := tok.(type) {
		case xml.StartElement:
			var e rawElem
			err := c.dec.DecodeElement(&e, &tt)
			return e, err
		case xml.EndElement:
			return rawElem{}, fmt.Errorf("stream closed by the server")
		}
	}
}

// expect reads the next element and checks its name.
func (c *rawClient) expect(local string) (rawElem, error) {
	e, err := c.next()
	if err == nil && e.XMLName.Local != local {
		err = fmt.Errorf("got <%s>%s, want <%s/>", e.XMLName.Local, e.Inner, local)
	}
	return e, err
}

// rawLogin connects to a STARTTLS listener, logs in and binds resource.
func rawLogin(addr, user, domain, password, resource string) (*rawClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &rawClient{conn: conn}
	fail := func(step string, err error) (*rawClient, error) {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.open(domain); err != nil {
		return fail("stream", err)
	}
	c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if _, err := c.expect("proceed"); err != nil {
		return fail("starttls", err)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: domain, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return fail("tls", err)
	}
	c.conn = tc
	if _, err := c.open(domain); err != nil {
		return fail("stream after tls", err)
	}
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>`, creds)
	if _, err := c.expect("success"); err != nil {
		return fail("auth", err)
	}
	if _, err := c.open(domain); err != nil {
		return fail("stream after auth", err)
	}
	c.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>`, resource)
	if e, err := c.expect("iq"); err != nil || e.attr("type") != "result" {
		return fail("bind", fmt.Errorf("%v %s", err, e.Inner))
	}
	tc.SetReadDeadline(time.Time{})
	return c, nil
}

// rawSASL2 connects to a STARTTLS listener and sends authenticate, a
// SASL2 <authenticate/> (XEP-0388), and returns the server's answer (a
// <success/> or a <failure/>).
func rawSASL2(addr, domain, authenticate string) (rawElem, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return rawElem{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{conn: conn}
	if _, err := c.open(domain); err != nil {
		return rawElem{}, err
	}
	c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if _, err := c.expect("proceed"); err != nil {
		return rawElem{}, err
	}
	tc := tls.Client(conn, &tls.Config{ServerName: domain, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return rawElem{}, err
	}
	c.conn = tc
	if _, err := c.open(domain); err != nil {
		return rawElem{}, err
	}
	c.send("%s", authenticate)
	return c.next()
}

func (c *rawClient) close() {
	c.conn.Close()
}

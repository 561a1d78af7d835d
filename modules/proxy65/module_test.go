package proxy65_test

import (
	"context"
	"encoding/xml"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/proxy65"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

type env struct {
	proxy      *proxy65.Module
	alice, bob *servertest.Client
	aliceJID   jid.JID
	bobJID     jid.JID
}

func start(t *testing.T, opts proxy65.Options) *env {
	t.Helper()
	opts.Listen = "127.0.0.1:0"
	m, err := proxy65.New(opts, proxy65.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{Modules: []server.Module{m}})
	srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	e := &env{proxy: m, aliceJID: jid.MustParse("alice@localhost/pc"), bobJID: jid.MustParse("bob@localhost/phone")}
	e.alice = srv.Connect(t, e.aliceJID, "pw")
	e.bob = srv.Connect(t, e.bobJID, "pw")
	return e
}

func iq(t *testing.T, c *servertest.Client, id, typ, to, payload string) string {
	t.Helper()
	if err := c.SendRaw(`<iq type='` + typ + `' to='` + to + `' id='` + id + `'>` + payload + `</iq>`); err != nil {
		t.Fatal(err)
	}
	return string(stanza.Marshal(c.Expect(servertest.ByID(id))))
}

// socks connects to the proxy and asks for the stream hash; it returns
// the connection once the proxy accepted it.
func socks(t *testing.T, addr, hash string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second)) // a guard against a hang only
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		t.Fatal(err)
	}
	var b [2]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b != [2]byte{5, 0} {
		t.Fatalf("greeting answered %v, %v", b, err)
	}
	req := append([]byte{5, 1, 0, 3, byte(len(hash))}, hash...)
	if _, err := c.Write(append(req, 0, 0)); err != nil {
		t.Fatal(err)
	}
	rep := make([]byte, 5+len(hash)+2)
	if _, err := io.ReadFull(c, rep); err != nil || rep[1] != 0 || string(rep[5:5+len(hash)]) != hash {
		t.Fatalf("connect answered %q, %v", rep, err)
	}
	return c
}

func activate(sid string, target jid.JID) string {
	return `<query xmlns='http://jabber.org/protocol/bytestreams' sid='` + sid + `'><activate>` + target.String() + `</activate></query>`
}

// Alice finds the proxy, asks for its address, and she and Bob connect
// to it; only once Alice activates the stream do bytes flow, both ways.
// Bob cannot activate Alice's stream.
func TestTransfer(t *testing.T) {
	e := start(t, proxy65.Options{})
	if got := iq(t, e.alice, "i1", "get", "localhost", `<query xmlns='http://jabber.org/protocol/disco#items'/>`); !strings.Contains(got, `jid="proxy.localhost"`) {
		t.Fatalf("disco#items lack the proxy: %s", got)
	}
	if got := iq(t, e.alice, "i2", "get", "proxy.localhost", `<query xmlns='http://jabber.org/protocol/disco#info'/>`); !strings.Contains(got, `category="proxy"`) || !strings.Contains(got, `type="bytestreams"`) || !strings.Contains(got, proxy65.NS) {
		t.Fatalf("disco#info of the proxy: %s", got)
	}
	got := iq(t, e.alice, "q1", "get", "proxy.localhost", `<query xmlns='http://jabber.org/protocol/bytestreams'/>`)
	addr := e.proxy.Addr().(*net.TCPAddr)
	if !strings.Contains(got, `jid="proxy.localhost"`) || !strings.Contains(got, `host="127.0.0.1"`) || !strings.Contains(got, `port="`+strconv.Itoa(addr.Port)+`"`) {
		t.Fatalf("streamhost: %s (listening on %s)", got, addr)
	}

	hash := proxy65.Hash("s1", e.aliceJID, e.bobJID)
	target := socks(t, addr.String(), hash) // Bob, the target, connects first
	if got := iq(t, e.alice, "a0", "set", "proxy.localhost", activate("s1", e.bobJID)); !strings.Contains(got, "not-acceptable") {
		t.Errorf("activation with one side connected: %s", got)
	}
	requester := socks(t, addr.String(), hash)
	if got := iq(t, e.bob, "a1", "set", "proxy.localhost", activate("s1", e.aliceJID)); !strings.Contains(got, "item-not-found") {
		t.Errorf("Bob activated Alice's stream: %s", got)
	}
	if got := iq(t, e.alice, "a2", "set", "proxy.localhost", activate("s1", e.bobJID)); !strings.Contains(got, `type="result"`) {
		t.Fatalf("activation: %s", got)
	}
	if _, err := requester.Write([]byte("the file")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(target, buf); err != nil || string(buf) != "the file" {
		t.Fatalf("target read %q, %v", buf, err)
	}
	if _, err := target.Write([]byte("ack")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(requester, buf[:3]); err != nil || string(buf[:3]) != "ack" {
		t.Fatalf("requester read %q, %v", buf[:3], err)
	}
	requester.(*net.TCPConn).CloseWrite()
	if b, err := io.ReadAll(target); err != nil || len(b) != 0 {
		t.Fatalf("target after the requester's end: %q, %v", b, err)
	}
	if got := iq(t, e.alice, "a3", "set", "proxy.localhost", activate("s1", e.bobJID)); !strings.Contains(got, "item-not-found") {
		t.Errorf("second activation: %s", got)
	}
}

// With MaxStreams 1, a third connection is closed at once.
func TestLimits(t *testing.T) {
	e := start(t, proxy65.Options{MaxStreams: 1})
	addr := e.proxy.Addr().String()
	hash := proxy65.Hash("s1", e.aliceJID, e.bobJID)
	socks(t, addr, hash)
	socks(t, addr, hash)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	c.Write([]byte{5, 1, 0})
	if b, err := io.ReadAll(c); len(b) != 0 {
		t.Fatalf("a connection beyond the limit got %q, %v", b, err)
	}
}

// A third connection naming a stream that has two is refused.
func TestThirdConnectionRefused(t *testing.T) {
	e := start(t, proxy65.Options{})
	addr := e.proxy.Addr().String()
	hash := proxy65.Hash("s1", e.aliceJID, e.bobJID)
	socks(t, addr, hash)
	socks(t, addr, hash)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	c.Write([]byte{5, 1, 0})
	var b [2]byte
	io.ReadFull(c, b[:])
	c.Write(append(append([]byte{5, 1, 0, 3, 40}, hash...), 0, 0))
	rep, _ := io.ReadAll(c)
	if len(rep) < 2 || rep[1] == 0 {
		t.Fatalf("third connection answered %q", rep)
	}
}

type recorder struct {
	ok  bool
	err mstanza.Error
}

func (r *recorder) Result(xml.TokenReader) error { r.ok = true; return nil }
func (r *recorder) Error(e mstanza.Error) error  { r.err = e; return nil }

// Another server's users may neither ask for the streamhost nor
// activate.
func TestRemoteRefused(t *testing.T) {
	e := start(t, proxy65.Options{})
	for _, rt := range e.proxy.Services()[0].IQRoutes {
		st := &stanza.Stanza{Kind: stanza.IQKind, Type: string(rt.Type), ID: "x", From: jid.MustParse("mallory@evil.example/x"), To: jid.MustParse("proxy.localhost")}
		st.AppendChild(stanza.Elem(rt.Payload, []xml.Attr{stanza.Attr("sid", "s1")},
			stanza.TextElem(xml.Name{Space: proxy65.NS, Local: "activate"}, "bob@localhost/phone")))
		var w recorder
		if err := rt.Handler.HandleIQ(context.Background(), stanza.IQ{Stanza: st}, &w); err != nil {
			t.Fatal(err)
		}
		if w.ok || w.err.Condition != mstanza.Forbidden {
			t.Errorf("%s from another server: result %v, error %v", rt.Type, w.ok, w.err.Condition)
		}
	}
}

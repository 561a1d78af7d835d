package presence_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiez-im/kiez/stanza"
)

const rawHeader = `<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

// rawLogin logs user in over STARTTLS and PLAIN with no XML library,
// binds, sends initial presence and returns the TLS connection.
func rawLogin(b *testing.B, dial func() (net.Conn, error), user string) net.Conn {
	b.Helper()
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 8192)
	until := func(conn net.Conn, want string) {
		var got []byte
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for !bytes.Contains(got, []byte(want)) {
			n, err := conn.Read(buf)
			if err != nil {
				b.Fatalf("login of %s waiting for %q: %v (%q)", user, want, err, got)
			}
			got = append(got, buf[:n]...)
		}
		conn.SetReadDeadline(time.Time{})
	}
	fmt.Fprint(c, rawHeader)
	until(c, "</stream:features>")
	fmt.Fprint(c, `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	until(c, "<proceed")
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	fmt.Fprint(tc, rawHeader)
	until(tc, "</stream:features>")
	fmt.Fprintf(tc, `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>`,
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00pw")))
	until(tc, "<success")
	fmt.Fprint(tc, rawHeader)
	until(tc, "</stream:features>")
	fmt.Fprint(tc, `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq><presence/><iq type='get' id='s'><ping xmlns='urn:xmpp:ping'/></iq>`)
	until(tc, `id="s"`)
	return tc
}

// BenchmarkBroadcast500Raw is BenchmarkBroadcast500 with contacts that
// only count what arrives, without parsing XML, so that nearly all of the
// time is the server's (and the kernel's): one presence broadcast from a
// user to 500 online contacts with mutual subscriptions.
func BenchmarkBroadcast500Raw(b *testing.B) {
	benchmarkRawBroadcast(b, false)
}

// BenchmarkBroadcast500InProcess is BenchmarkBroadcast500Raw with the 500
// contacts connected through in-memory pipes instead of loopback sockets:
// the server's cost without the kernel's network stack.
func BenchmarkBroadcast500InProcess(b *testing.B) {
	benchmarkRawBroadcast(b, true)
}

func benchmarkRawBroadcast(b *testing.B, inProcess bool) {
	const contacts = 500
	srv, alice, names := broadcastSetup(b, contacts)
	dial := func() (net.Conn, error) { return net.Dial("tcp", srv.Addr) }
	if inProcess {
		dial = srv.DialInProcess
	}
	var seen atomic.Int64
	var wg sync.WaitGroup
	conns := make([]net.Conn, contacts)
	for i, name := range names {
		conns[i] = rawLogin(b, dial, name)
		wg.Add(1)
		go func(conn net.Conn) {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			marker := []byte("<status>tick</status>")
			var carry []byte
			for {
				n, err := conn.Read(buf)
				data := append(carry, buf[:n]...)
				seen.Add(int64(bytes.Count(data, marker)))
				if k := len(marker) - 1; len(data) > k {
					carry = append(carry[:0], data[len(data)-k:]...)
				}
				if err != nil {
					return
				}
			}
		}(conns[i])
	}
	a := srv.Connect(b, alice, "pw")
	a.Sync()
	tick := &stanza.Stanza{Kind: stanza.Presence}
	tick.AppendChild(stanza.TextElem(xmlName("status"), "tick"))
	b.ResetTimer()
	for n := 1; n <= b.N; n++ {
		a.Send(tick)
		for seen.Load() < int64(n*contacts) {
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.StopTimer()
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
}

func xmlName(local string) xml.Name { return xml.Name{Space: stanza.NSClient, Local: local} }

//go:build unix

package pep_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/caps"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/pep"
	"github.com/kiez-im/kiez/modules/presence"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	stanzacaps "github.com/kiez-im/kiez/stanza/caps"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// benchEnv is a server with roster, presence, caps and PEP for
// benchmarks.
type benchEnv struct {
	srv    *servertest.Server
	roster *roster.Module
	caps   *caps.Module
}

func benchStart(b *testing.B) *benchEnv {
	b.Helper()
	store := memory.New()
	ros := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: store}))
	pres := modtest.Must(presence.New(presence.Options{}, presence.Deps{Roster: ros}))
	cp := modtest.Must(caps.New(caps.Options{}, caps.Deps{}))
	p := modtest.Must(pep.New(pep.Options{}, pep.Deps{Store: store, Roster: ros, Caps: cp}))
	srv := servertest.Start(b, server.Config{Accounts: store, Modules: []server.Module{ros, pres, cp, p}})
	return &benchEnv{srv: srv, roster: ros, caps: cp}
}

// benchCaps are the capabilities every benchmark client shares: one ver,
// asked for once, asking for avatar metadata notifications.
var benchCaps = stanzacaps.Info{
	Identities: []stanzacaps.Identity{{Category: "client", Type: "pc", Name: "kiez bench"}},
	Features:   []string{nsDisco, nodeMeta + "+notify"},
}

const benchCapsNode = "https://kiez.test/bench"

// waitCaps waits until the server knows the features of the session full;
// the bound only turns a hang into a failure.
func (e *benchEnv) waitCaps(b *testing.B, full jid.JID) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if f, ok := e.caps.Features(full); ok {
			if !f.Notify(nodeMeta) {
				b.Fatalf("caps of %s lack %s+notify", full, nodeMeta)
			}
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the server never learnt the capabilities of %s", full)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// primeCaps brings a client of an account of its own online with
// benchCaps and answers the server's disco#info, so that the server has
// verified the ver before the contacts present it.
func (e *benchEnv) primeCaps(b *testing.B) string {
	b.Helper()
	ver, err := benchCaps.Ver("sha-1")
	if err != nil {
		b.Fatal(err)
	}
	cs := stanzacaps.Caps{Hash: "sha-1", Node: benchCapsNode, Ver: ver}
	c := e.srv.Connect(b, e.srv.AddUser(b, "primer", "pw"), "pw")
	c.Answer(func(st *stanza.Stanza) bool {
		return st.Type == stanza.Get && st.HasChild(xml.Name{Space: nsDisco, Local: "query"})
	}, func(q *stanza.Stanza) *stanza.Stanza {
		return q.ResultReply(benchCaps.Query(cs.DiscoNode()))
	})
	p := &stanza.Stanza{Kind: stanza.Presence}
	p.AppendChild(cs.TokenReader())
	c.Send(p)
	e.waitCaps(b, c.LocalAddr())
	return ver
}

// mutual gives a and c a mutual presence subscription.
func (e *benchEnv) mutual(b *testing.B, a, c jid.JID) {
	b.Helper()
	both := func(it storage.RosterItem, _ bool) (storage.RosterItem, bool, error) {
		it.Subscription = storage.SubBoth
		return it, false, nil
	}
	for _, p := range [][2]jid.JID{{a, c}, {c, a}} {
		if err := e.roster.Update(context.Background(), p[0], p[1], both); err != nil {
			b.Fatal(err)
		}
	}
}

const rawStreamHeader = `<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

var boundJID = regexp.MustCompile(`<jid>([^<]+)</jid>`)

// rawOnline logs user (a localpart) in over STARTTLS and PLAIN with no XML library,
// binds, sends available presence with caps (a <c/> element) and
// returns the TLS connection and the bound full JID once the server has
// handled the presence.
func rawOnline(b *testing.B, addr, user, capsElem string) (net.Conn, jid.JID) {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 8192)
	until := func(conn net.Conn, want string) []byte {
		var got []byte
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		for !bytes.Contains(got, []byte(want)) {
			n, err := conn.Read(buf)
			if err != nil {
				b.Fatalf("login of %s waiting for %q: %v (%q)", user, want, err, got)
			}
			got = append(got, buf[:n]...)
		}
		conn.SetReadDeadline(time.Time{})
		return got
	}
	fmt.Fprint(c, rawStreamHeader)
	until(c, "</stream:features>")
	fmt.Fprint(c, `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	until(c, "<proceed")
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	fmt.Fprint(tc, rawStreamHeader)
	until(tc, "</stream:features>")
	fmt.Fprintf(tc, `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>`,
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00pw")))
	until(tc, "<success")
	fmt.Fprint(tc, rawStreamHeader)
	until(tc, "</stream:features>")
	fmt.Fprint(tc, `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
	m := boundJID.FindSubmatch(until(tc, "</jid>"))
	if m == nil {
		b.Fatalf("bind of %s: no jid", user)
	}
	full, err := jid.Parse(string(m[1]))
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(tc, `<presence>%s</presence><iq type='get' id='s'><ping xmlns='urn:xmpp:ping'/></iq>`, capsElem)
	until(tc, `id="s"`)
	return tc, full
}

// processCPU returns the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublishFanout500 measures one PEP publish by a user with 500
// contacts, all online over loopback with mutual presence subscriptions
// and caps asking for avatar metadata notifications (one shared ver, so
// the server asked a client for its disco#info once, before the
// contacts came online): from alice's publish of an avatar metadata item
// until every contact has read its event. The contacts are raw clients
// that only count what arrives, without parsing XML; alice is a mellium
// client that waits for each publish's result.
//
// Metrics: events/s is notifications delivered per second of wall time;
// proc-cpu-us/op is the CPU time (user and system) of the whole test
// process per publish, the server's share plus the 500 readers' and
// alice's client's, so an upper bound of the server's CPU per publish.
func BenchmarkPublishFanout500(b *testing.B) {
	const contacts = 500
	e := benchStart(b)
	ver := e.primeCaps(b)
	capsElem := fmt.Sprintf(`<c xmlns='%s' hash='sha-1' node='%s' ver='%s'/>`, stanzacaps.NS, benchCapsNode, ver)
	alice := e.srv.AddUser(b, "alice", "pw")

	// Every event carries alice's metadata payload, whose namespace the
	// server writes once per event.
	marker := []byte(`xmlns="` + nodeMeta + `"`)
	var seen, target atomic.Int64
	reached := make(chan struct{}, 1)
	var wg sync.WaitGroup
	conns := make([]net.Conn, contacts)
	for i := range conns {
		name := fmt.Sprintf("c%d", i)
		e.mutual(b, alice, e.srv.AddUser(b, name, "pw"))
		conn, full := rawOnline(b, e.srv.Addr, name, capsElem)
		e.waitCaps(b, full)
		conns[i] = conn
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			var carry []byte
			for {
				n, err := conn.Read(buf)
				data := append(carry, buf[:n]...)
				if k := int64(bytes.Count(data, marker)); k > 0 && seen.Add(k) >= target.Load() {
					select {
					case reached <- struct{}{}:
					default:
					}
				}
				if k := len(marker) - 1; len(data) > k {
					carry = append(carry[:0], data[len(data)-k:]...)
				}
				if err != nil {
					return
				}
			}
		}()
	}
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	})
	a := e.srv.Connect(b, alice, "pw")

	// publish publishes item n and waits until every contact has its
	// event; the bound only turns a hang into a failure.
	publish := func(n int) {
		want := int64(n * contacts)
		target.Store(want)
		id := fmt.Sprint("m", n)
		a.Send(publishIQ(id, nodeMeta, id, meta(id)))
		timeout := time.NewTimer(30 * time.Second)
		defer timeout.Stop()
		for seen.Load() < want {
			select {
			case <-reached:
			case <-timeout.C:
				b.Fatalf("publish %d: %d of %d events arrived", n, seen.Load()-int64((n-1)*contacts), contacts)
			}
		}
		if r := a.Expect(servertest.ByID(id)); r.Type != stanza.Result {
			b.Fatalf("publish %d: %v", n, modtest.Condition(r))
		}
	}
	publish(1) // a warm-up, which also checks that the count is right
	if got := seen.Load(); got != contacts {
		b.Fatalf("%d events for one publish to %d contacts", got, contacts)
	}

	n := 1
	cpu0 := processCPU(b)
	for b.Loop() {
		n++
		publish(n)
	}
	cpu := processCPU(b) - cpu0
	ops := n - 1
	b.ReportMetric(float64(ops*contacts)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(ops), "proc-cpu-us/op")
}

// omemoBundle is a bundle as Conversations publishes it: an identity
// key, a signed pre key and its signature, and 100 pre keys.
func omemoBundle() xml.TokenReader {
	key := func(n, size int) string {
		return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(n)}, size))
	}
	ax := func(local string, attrs []xml.Attr, children ...xml.TokenReader) xml.TokenReader {
		return elem(nsAxolotl, local, attrs, children...)
	}
	text := func(s string) xml.TokenReader { return stanza.Tokens(xml.CharData(s)) }
	prekeys := make([]xml.TokenReader, 100)
	for i := range prekeys {
		prekeys[i] = ax("preKeyPublic", []xml.Attr{stanza.Attr("preKeyId", fmt.Sprint(i+1))}, text(key(i, 33)))
	}
	return ax("bundle", nil,
		ax("signedPreKeyPublic", []xml.Attr{stanza.Attr("signedPreKeyId", "1")}, text(key(200, 33))),
		ax("signedPreKeySignature", nil, text(key(201, 64))),
		ax("identityKey", nil, text(key(202, 33))),
		ax("prekeys", nil, prekeys...))
}

// BenchmarkFetchBundle measures a stranger (no subscription) fetching
// another user's OMEMO bundle, published with access_model=open, over
// loopback with a mellium client: from sending the items request until
// the client has parsed the result (about 6 KB of XML). The client runs
// in the same process. Metrics: p50-ns and p99-ns are percentiles of
// those round trips.
func BenchmarkFetchBundle(b *testing.B) {
	e := benchStart(b)
	alice := e.srv.AddUser(b, "alice", "pw")
	a := e.srv.Connect(b, alice, "pw")
	const node = nsAxolotl + ".bundles:31415"
	if r := modtest.Do(b, a, publishIQ("pub", node, "current", omemoBundle(), "pubsub#access_model", "open")); r.Type != stanza.Result {
		b.Fatalf("publishing the bundle: %v", modtest.Condition(r))
	}
	d := e.srv.Connect(b, e.srv.AddUser(b, "dave", "pw"), "pw")
	fetch := func(id string) {
		r := modtest.Do(b, d, itemsIQ(id, alice, node, 0))
		if r.Type != stanza.Result || countElems(r, nsAxolotl, "preKeyPublic") != 100 {
			b.Fatalf("fetching the bundle: %v, %d pre keys", modtest.Condition(r), countElems(r, nsAxolotl, "preKeyPublic"))
		}
	}
	fetch("warm-up")
	var took []time.Duration
	n := 0
	for b.Loop() {
		n++
		id := fmt.Sprint("f", n)
		t0 := time.Now()
		fetch(id)
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "p99-ns")
}

//go:build unix

package muc_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/modules/muc"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/memory"
)

// benchStore is what the benchmarks' server keeps its accounts, rooms and
// (with a room archive) room messages in.
type benchStore interface {
	storage.Accounts
	storage.MUC
	storage.Secrets
	storage.KV
	storage.Archive
}

// benchArchive names a room archive of the benchmarks: none, mam's
// RoomArchive over storage/memory, or over storage/bbolt (a file in a
// temporary directory, durable appends).
type benchArchive string

const (
	noArchive     benchArchive = "none"
	memoryArchive benchArchive = "memory"
	bboltArchive  benchArchive = "bbolt"
)

// benchServer starts a server with the muc module (no message rate
// limit), its store chosen by archive, and returns its c2s address.
func benchServer(b *testing.B, opts muc.Options, archive benchArchive) (*servertest.Server, benchStore) {
	b.Helper()
	var store benchStore = memory.New()
	if archive == bboltArchive {
		db, err := bbolt.Open(filepath.Join(b.TempDir(), "kiez.db"), bbolt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		store = db
	}
	deps := muc.Deps{Store: store, Secrets: store, KV: store}
	if archive != noArchive {
		ra, err := mam.NewRoomArchive(store, mam.RoomOptions{})
		if err != nil {
			b.Fatal(err)
		}
		deps.Archive = ra
	}
	opts.MessageRate = -1
	m := modtest.Must(muc.New(opts, deps))
	return servertest.Start(b, server.Config{Accounts: store, Modules: []server.Module{m}}), store
}

// rawConn is a client that speaks raw XML over TLS: the benchmarks' many
// occupants, which count what arrives without parsing it.
type rawConn struct {
	net.Conn
	b     *testing.B
	buf   []byte
	carry []byte
}

const benchStreamHeader = `<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

// rawLogin logs user (a localpart, password "pw") in over STARTTLS and
// PLAIN, binds and sends available presence.
func rawLogin(b *testing.B, addr, user string) *rawConn {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	r := &rawConn{Conn: c, b: b, buf: make([]byte, 64<<10)}
	fmt.Fprint(r, benchStreamHeader)
	r.until("</stream:features>")
	fmt.Fprint(r, `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	r.until("<proceed")
	r.Conn = tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	fmt.Fprint(r, benchStreamHeader)
	r.until("</stream:features>")
	fmt.Fprintf(r, `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>`,
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00pw")))
	r.until("<success")
	fmt.Fprint(r, benchStreamHeader)
	r.until("</stream:features>")
	fmt.Fprint(r, `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
	r.until("</jid>")
	fmt.Fprint(r, `<presence/><iq type='get' id='s'><ping xmlns='urn:xmpp:ping'/></iq>`)
	r.until(`id="s"`)
	b.Cleanup(func() { r.Close() })
	return r
}

// scan reads until stop has arrived and returns how many times marker
// (if any) arrived before it. Only a window of the stream is kept; the
// bound only turns a hang into a failure.
func (r *rawConn) scan(marker, stop string) int {
	r.b.Helper()
	r.SetReadDeadline(time.Now().Add(60 * time.Second))
	defer r.SetReadDeadline(time.Time{})
	keep := max(len(marker), len(stop))
	n := 0
	for {
		k, err := r.Read(r.buf)
		data := append(r.carry, r.buf[:k]...)
		if marker != "" {
			// Count only the occurrences not counted before (those
			// starting in the new bytes).
			from := max(0, len(r.carry)-len(marker)+1)
			n += bytes.Count(data[from:], []byte(marker))
		}
		if i := bytes.Index(data, []byte(stop)); i >= 0 {
			r.carry = append(r.carry[:0], data[i+len(stop):]...)
			return n
		}
		if len(data) > keep {
			data = data[len(data)-keep:]
		}
		r.carry = append(r.carry[:0], data...)
		if err != nil {
			r.b.Fatalf("waiting for %q: %v", stop, err)
		}
	}
}

func (r *rawConn) until(stop string) { r.scan("", stop) }

// join joins room as nick asking for history (the history element, or
// ""), reads the join up to the subject (which ends it) and returns how many times marker
// arrived in it.
func (r *rawConn) join(room, nick, history, marker string) int {
	fmt.Fprintf(r, `<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>%s</x></presence>`, room, nick, history)
	return r.scan(marker, "<subject")
}

// iq sends an iq and reads up to its answer, which must be a result.
func (r *rawConn) iq(id, text string) {
	r.b.Helper()
	fmt.Fprint(r, text)
	r.until(`id="` + id + `"`)
}

// create makes room with r as its owner, configured with the given
// muc#roomconfig fields (var, value pairs), and stays in it as nick.
func (r *rawConn) create(room, nick string, fields ...string) {
	r.b.Helper()
	r.join(room, nick, "", "")
	form := `<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>`
	for i := 0; i+1 < len(fields); i += 2 {
		form += `<field var='` + fields[i] + `'><value>` + fields[i+1] + `</value></field>`
	}
	r.iq("cfg", `<iq type='set' id='cfg' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>`+form+`</x></query></iq>`)
}

// processCPU returns the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFanout100 measures groupchat messages in a room of 100
// occupants, each a raw client over loopback TLS that only counts the
// messages arriving: one occupant sends a message, and the next waits
// until all 100 copies (its own echo included) have been read. Each
// message gets a stanza-id and an occupant-id; with a room archive
// (memory: mam.RoomArchive over storage/memory; bbolt: over storage/bbolt,
// each append durable) the room archives every message.
//
// Metrics: msgs/s are messages per second of wall time; deliveries/s
// copies delivered per second; deliveries/cpu-s copies per second of the
// test process's CPU time (user and system, from getrusage), which holds
// the server and the 100 clients reading, so the server alone does
// better; proc-cpu-us/op the process's CPU time per message.
func BenchmarkFanout100(b *testing.B) {
	for _, archive := range []benchArchive{noArchive, memoryArchive, bboltArchive} {
		b.Run("archive="+string(archive), func(b *testing.B) { benchFanout(b, archive) })
	}
}

func benchFanout(b *testing.B, archive benchArchive) {
	const occupants = 100
	srv, store := benchServer(b, muc.Options{}, archive)
	room := roomJID("bench").String()
	conns := make([]*rawConn, occupants)
	for i := range conns {
		name := fmt.Sprintf("u%d", i)
		srv.AddUser(b, name, "pw")
		conns[i] = rawLogin(b, srv.Addr, name)
		if i == 0 {
			fields := []string{"muc#roomconfig_maxusers", "500"}
			if archive != noArchive {
				fields = append(fields, "muc#roomconfig_enablearchiving", "1")
			}
			conns[0].create(room, "u0", fields...)
		} else {
			conns[i].join(room, name, "<history maxstanzas='0'/>", "")
		}
	}
	// Everyone reads from now on: presence of later joins, then the
	// messages.
	marker := []byte("benchmsg")
	var seen, target atomic.Int64
	reached := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			var carry []byte
			for {
				n, err := c.Read(buf)
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
	sender := conns[0]
	send := func(n int) {
		want := int64(n * occupants)
		target.Store(want)
		fmt.Fprintf(sender, `<message type='groupchat' to='%s' id='m%d'><body>benchmsg %d</body></message>`, room, n, n)
		timeout := time.NewTimer(60 * time.Second)
		defer timeout.Stop()
		for seen.Load() < want {
			select {
			case <-reached:
			case <-timeout.C:
				b.Fatalf("message %d: %d of %d copies arrived", n, seen.Load()-int64((n-1)*occupants), occupants)
			}
		}
	}
	send(1) // a warm-up, which also checks the count
	if got := seen.Load(); got != occupants {
		b.Fatalf("%d copies of one message to %d occupants", got, occupants)
	}
	n := 1
	cpu0 := processCPU(b)
	for b.Loop() {
		n++
		send(n)
	}
	cpu := processCPU(b) - cpu0
	if archive != noArchive {
		if st, err := store.ArchiveStats(context.Background(), room); err != nil || st.Count != n {
			b.Fatalf("the room archive holds %d messages (%v), want %d", st.Count, err, n)
		}
	}
	msgs := float64(n - 1)
	b.ReportMetric(msgs/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(msgs*occupants/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(msgs*occupants/cpu.Seconds(), "deliveries/cpu-s")
	b.ReportMetric(float64(cpu.Microseconds())/msgs, "proc-cpu-us/op")
}

// BenchmarkJoinHistory1000 measures a join of a room whose history holds
// 1,000 messages (of some 100 bytes each) asking for all of them: from
// the join presence until the subject, which ends the join, has been read
// by a raw client over loopback TLS, then its leave. History comes from
// memory, or with a room archive (memory: mam.RoomArchive over
// storage/memory; bbolt: over storage/bbolt) from the archive.
// proc-cpu-us/op is the test process's CPU time per join (server and
// client).
func BenchmarkJoinHistory1000(b *testing.B) {
	for _, archive := range []benchArchive{noArchive, memoryArchive, bboltArchive} {
		b.Run("archive="+string(archive), func(b *testing.B) { benchJoinHistory(b, archive) })
	}
}

func benchJoinHistory(b *testing.B, archive benchArchive) {
	const history = 1000
	srv, _ := benchServer(b, muc.Options{MaxHistory: history, DefaultHistory: history}, archive)
	room := roomJID("hist").String()
	srv.AddUser(b, "owner", "pw")
	srv.AddUser(b, "joiner", "pw")
	owner := rawLogin(b, srv.Addr, "owner")
	var fields []string
	if archive != noArchive {
		fields = append(fields, "muc#roomconfig_enablearchiving", "1")
	}
	owner.create(room, "owner", fields...)
	for i := range history {
		fmt.Fprintf(owner, `<message type='groupchat' to='%s'><body>histmsg %04d, a line of history as people write them.</body></message>`, room, i)
	}
	owner.iq("sync", `<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	j := rawLogin(b, srv.Addr, "joiner")
	join := func() {
		if got := j.join(room, "joiner", fmt.Sprintf("<history maxstanzas='%d'/>", history), "histmsg"); got != history {
			b.Fatalf("%d messages of history, want %d", got, history)
		}
		fmt.Fprintf(j, `<presence type='unavailable' to='%s/joiner'/>`, room)
		j.until(`type="unavailable"`)
	}
	join() // a warm-up, which also checks the count
	cpu0 := processCPU(b)
	for b.Loop() {
		join()
	}
	cpu := processCPU(b) - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "proc-cpu-us/op")
}

// BenchmarkIdleRoomMemory measures the memory an idle persistent room
// (no occupants, stored with its owner) takes once loaded: 1,000 rooms
// are created, then a second module on the same store loads each (by a
// disco#info request to it, which loads a room) and the live heap is
// compared before and after, after a GC: B/room. Each iteration is then
// a disco#info request to a loaded room, answered over loopback TLS.
func BenchmarkIdleRoomMemory(b *testing.B) {
	const rooms = 1000
	opts := muc.Options{MaxRoomsPerUser: rooms}
	srv, store := benchServer(b, opts, noArchive)
	srv.AddUser(b, "owner", "pw")
	owner := rawLogin(b, srv.Addr, "owner")
	name := func(i int) string { return roomJID(fmt.Sprintf("idle%d", i)).String() }
	for i := range rooms {
		owner.create(name(i), "owner", "muc#roomconfig_persistentroom", "1", "muc#roomconfig_roomname", fmt.Sprintf("Idle room %d", i))
		fmt.Fprintf(owner, `<presence type='unavailable' to='%s/owner'/>`, name(i))
		owner.until(`type="unavailable"`)
	}

	opts.MessageRate = -1
	fresh := modtest.Must(muc.New(opts, muc.Deps{Store: store, Secrets: store, KV: store}))
	srv2 := servertest.Start(b, server.Config{Accounts: store, Modules: []server.Module{fresh}})
	reader := rawLogin(b, srv2.Addr, "owner")
	disco := func(id string, room string) string {
		return `<iq type='get' id='` + id + `' to='` + room + `'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	var all strings.Builder
	for i := range rooms {
		all.WriteString(disco(fmt.Sprint("d", i), name(i)))
	}
	fmt.Fprint(reader, all.String())
	if got := reader.scan(`muc_persistent`, fmt.Sprintf(`id="d%d"`, rooms-1)); got != rooms {
		b.Fatalf("%d of %d rooms loaded as persistent", got, rooms)
	}
	after := heap()
	runtime.KeepAlive(fresh)
	n := 0
	for b.Loop() {
		n++
		reader.iq(fmt.Sprint("q", n), disco(fmt.Sprint("q", n), name(n%rooms)))
	}
	// After the loop: b.Loop's start resets reported metrics.
	b.ReportMetric(float64(int64(after)-int64(before))/rooms, "B/room")
}

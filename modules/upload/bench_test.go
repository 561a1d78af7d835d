//go:build linux

package upload_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/upload"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/blob"
	"github.com/kiez-im/kiez/storage/memory"
)

// benchEnv is a server with the upload service, its HTTP handlers on a
// loopback HTTP server, and users accounts online (u0, u1, …), one
// client each.
type benchEnv struct {
	srv     *servertest.Server
	store   *memory.Store
	files   blob.Store
	clients []*servertest.Client
	http    *http.Client
}

func benchStart(b *testing.B, opts upload.Options, users int) *benchEnv {
	b.Helper()
	var handler atomic.Value // http.Handler, once the server exists
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	b.Cleanup(hs.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	store := memory.New()
	files, err := blob.NewDir(filepath.Join(b.TempDir(), "files"))
	if err != nil {
		b.Fatal(err)
	}
	m := modtest.Must(upload.New(opts, upload.Deps{Store: store, Files: files, Secrets: store}))
	srv := servertest.Start(b, server.Config{Accounts: store, Modules: []server.Module{m},
		HTTPBaseURL: func(string) string { return hs.URL + "/" }})
	handler.Store(srv.HTTPHandler())
	e := &benchEnv{srv: srv, store: store, files: files, http: &http.Client{Transport: tr}}
	for i := range users {
		u := srv.AddUser(b, fmt.Sprint("u", i), "pw")
		e.clients = append(e.clients, srv.Connect(b, u, "pw"))
	}
	return e
}

// slotIQ is a slot request.
func slotIQ(id, name string, size int64, ctype string) *stanza.Stanza {
	return modtest.IQ(id, stanza.Get, service, stanza.Elem(xml.Name{Space: upload.NS, Local: "request"},
		[]xml.Attr{stanza.Attr("filename", name), stanza.Attr("size", strconv.FormatInt(size, 10)), stanza.Attr("content-type", ctype)}))
}

// slotURLs returns the PUT and GET URLs of a slot answer.
func slotURLs(b *testing.B, st *stanza.Stanza) (put, get string) {
	b.Helper()
	for _, tok := range st.Inner {
		if se, ok := tok.(xml.StartElement); ok && se.Name.Space == upload.NS {
			switch se.Name.Local {
			case "put":
				put = stanza.AttrValue(se.Attr, "url")
			case "get":
				get = stanza.AttrValue(se.Attr, "url")
			}
		}
	}
	if put == "" || get == "" {
		b.Fatalf("no slot in %v (%v)", st.Type, modtest.Condition(st))
	}
	return put, get
}

// put PUTs size bytes from body to url, streamed.
func (e *benchEnv) put(url string, body io.Reader, size int64, ctype string) error {
	req, err := http.NewRequest(http.MethodPut, url, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", ctype)
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// get GETs url into h and returns the body's length.
func (e *benchEnv) get(url string, h hash.Hash) (int64, error) {
	resp, err := e.http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET: %s", resp.Status)
	}
	return io.Copy(h, resp.Body)
}

// deleteAll deletes every user's files, to keep the disk use of a
// benchmark bounded.
func (e *benchEnv) deleteAll(b *testing.B) {
	b.Helper()
	for _, c := range e.clients {
		if err := upload.DeleteUserFiles(context.Background(), e.store, e.files, c.LocalAddr()); err != nil {
			b.Fatal(err)
		}
	}
}

// generator yields n pseudo-random bytes, made as they are read.
type generator struct {
	rng *rand.ChaCha8
	n   int64
}

func newGenerator(seed byte, n int64) *generator {
	return &generator{rng: rand.NewChaCha8([32]byte{seed}), n: n}
}

func (g *generator) Read(p []byte) (int, error) {
	if g.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.n {
		p = p[:g.n]
	}
	g.rng.Read(p)
	g.n -= int64(len(p))
	return len(p), nil
}

// procStatus returns a size field of /proc/self/status (VmRSS, VmHWM) in
// bytes.
func procStatus(b *testing.B, field string) int64 {
	v, err := readStatus(field)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func readStatus(field string) (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", field, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// peakRSS measures how far the process's resident set grows above where
// it was at the start: through the kernel's high-water mark (VmHWM), reset
// at the start by writing 5 to /proc/self/clear_refs, or where that is
// not allowed by sampling VmRSS every millisecond.
type peakRSS struct {
	b        *testing.B
	base     int64
	hwm      bool
	max      atomic.Int64
	stop     chan struct{}
	finished chan struct{}
}

func startPeakRSS(b *testing.B) *peakRSS {
	p := &peakRSS{b: b, base: procStatus(b, "VmRSS")}
	if os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil {
		p.hwm = true
		return p
	}
	p.max.Store(p.base)
	p.stop, p.finished = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.finished)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				if rss, err := readStatus("VmRSS"); err == nil && rss > p.max.Load() {
					p.max.Store(rss)
				}
			}
		}
	}()
	return p
}

// growth returns the peak growth since the start, in bytes.
func (p *peakRSS) growth() int64 {
	if p.hwm {
		return procStatus(p.b, "VmHWM") - p.base
	}
	close(p.stop)
	<-p.finished
	if rss := procStatus(p.b, "VmRSS"); rss > p.max.Load() {
		p.max.Store(rss)
	}
	return p.max.Load() - p.base
}

// processCPU returns the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const mib = 1 << 20

// BenchmarkPutGet100MiB measures one upload of a 100 MiB file and its
// download over loopback HTTP, the slot asked for over XMPP by a mellium
// client in the same process. The PUT body is made as it is sent by a
// pseudo-random generator and hashed on the way; the GET body is hashed
// and dropped, and must match. The file store is a blob.Dir in a
// temporary directory (each PUT ends with an fsync); files are deleted
// between operations, with the timer stopped.
//
// Metrics: MB/s is the file's size over the time of the whole operation
// (slot, PUT and GET); put-MB/s and get-MB/s those of each transfer.
// peak-rss-growth-MiB is the largest growth of the process's resident set
// during an operation above where it was at its start (after
// debug.FreeOSMemory): the server's buffers plus the in-process client's;
// a server that held a file in memory would show 100 or more.
// proc-cpu-ms/op is the CPU time of the whole process (server, client,
// hashing and generator) per operation.
func BenchmarkPutGet100MiB(b *testing.B) {
	const size = 100 * mib
	e := benchStart(b, upload.Options{MaxFileSize: 1 << 30, Quota: 1 << 50, DailyQuota: 1 << 50}, 1)
	c := e.clients[0]
	b.SetBytes(size)
	var (
		n                int
		putTime, getTime time.Duration
		cpu              time.Duration
		peak             int64
	)
	for b.Loop() {
		b.StopTimer()
		debug.FreeOSMemory()
		rss := startPeakRSS(b)
		cpu0 := processCPU(b)
		b.StartTimer()

		n++
		put, get := slotURLs(b, modtest.Do(b, c, slotIQ(fmt.Sprint("slot", n), "big.bin", size, "application/octet-stream")))
		sent := sha256.New()
		t0 := time.Now()
		if err := e.put(put, io.TeeReader(newGenerator(byte(n), size), sent), size, "application/octet-stream"); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		got := sha256.New()
		m, err := e.get(get, got)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if m != size || !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
			b.Fatalf("GET gave %d bytes, SHA-256 %x; PUT sent %d, SHA-256 %x", m, got.Sum(nil), int64(size), sent.Sum(nil))
		}

		b.StopTimer()
		cpu += processCPU(b) - cpu0
		peak = max(peak, rss.growth())
		putTime += t1.Sub(t0)
		getTime += t2.Sub(t1)
		e.deleteAll(b)
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*size/1e6/putTime.Seconds(), "put-MB/s")
	b.ReportMetric(float64(n)*size/1e6/getTime.Seconds(), "get-MB/s")
	b.ReportMetric(float64(peak)/mib, "peak-rss-growth-MiB")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(n), "proc-cpu-ms/op")
}

// BenchmarkConcurrent100x1MiB measures 100 uploads of 1 MiB at once:
// 10 accounts, each with one mellium client, ask for 10 slots each over
// XMPP (sent back to back); each answer read starts a PUT of its own over
// loopback HTTP (connections kept alive between operations), and the
// operation ends when all 100 PUTs are answered 201 Created. Files are
// deleted between operations, with the timer stopped; after the last
// one, one file is fetched and compared.
//
// Metrics: uploads/s over the measured time; MB/s the bytes uploaded;
// peak-rss-growth-MiB and proc-cpu-ms/op as in BenchmarkPutGet100MiB.
func BenchmarkConcurrent100x1MiB(b *testing.B) {
	const (
		users   = 10
		perUser = 10
		size    = 1 * mib
	)
	e := benchStart(b, upload.Options{Quota: 1 << 50, DailyQuota: 1 << 50}, users)
	data := make([]byte, size)
	newGenerator(0, size).Read(data)
	b.SetBytes(users * perUser * size)
	var (
		n    int
		cpu  time.Duration
		peak int64
		last string
	)
	for b.Loop() {
		b.StopTimer()
		e.deleteAll(b)
		debug.FreeOSMemory()
		rss := startPeakRSS(b)
		cpu0 := processCPU(b)
		b.StartTimer()

		n++
		for i, c := range e.clients {
			for k := range perUser {
				c.Send(slotIQ(fmt.Sprintf("s%d-%d-%d", n, i, k), fmt.Sprintf("f%d.bin", k), size, "application/octet-stream"))
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, users*perUser)
		for i, c := range e.clients {
			for k := range perUser {
				put, get := slotURLs(b, c.Expect(servertest.ByID(fmt.Sprintf("s%d-%d-%d", n, i, k))))
				last = get
				wg.Go(func() {
					if err := e.put(put, bytes.NewReader(data), size, "application/octet-stream"); err != nil {
						errs <- err
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}

		b.StopTimer()
		cpu += processCPU(b) - cpu0
		peak = max(peak, rss.growth())
		b.StartTimer()
	}
	b.StopTimer()
	got := sha256.New()
	if m, err := e.get(last, got); err != nil || m != size || !bytes.Equal(got.Sum(nil), sha256Of(data)) {
		b.Fatalf("GET of an uploaded file: %d bytes, %v, same: %v", m, err, bytes.Equal(got.Sum(nil), sha256Of(data)))
	}
	b.ReportMetric(float64(n*users*perUser)/b.Elapsed().Seconds(), "uploads/s")
	b.ReportMetric(float64(peak)/mib, "peak-rss-growth-MiB")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(n), "proc-cpu-ms/op")
}

func sha256Of(p []byte) []byte {
	s := sha256.Sum256(p)
	return s[:]
}

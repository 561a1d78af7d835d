package upload_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/upload"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage/blob"
	"github.com/kiez-im/kiez/storage/memory"
)

var service = jid.MustParse("upload.localhost")

// env is a server with the upload service, its HTTP handlers on a real
// loopback HTTP server, and the account alice online.
type env struct {
	srv   *servertest.Server
	mod   *upload.Module
	store *memory.Store
	files blob.Store
	dir   string // the file store's directory
	alice jid.JID
	a     *servertest.Client
}

func start(t *testing.T, opts upload.Options) *env {
	t.Helper()
	var handler atomic.Value // http.Handler, once the server exists
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	store := memory.New()
	dir := filepath.Join(t.TempDir(), "files")
	files, err := blob.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := modtest.Must(upload.New(opts, upload.Deps{Store: store, Files: files, Secrets: store, Days: store}))
	ad := modtest.Must(adhoc.New(adhoc.Options{}, adhoc.Deps{Commands: m.Commands()}))
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{m, ad},
		HTTPBaseURL: func(string) string { return hs.URL + "/" }})
	handler.Store(srv.HTTPHandler())
	alice := srv.AddUser(t, "alice", "pw")
	return &env{srv: srv, mod: m, store: store, files: files, dir: dir, alice: alice, a: srv.Connect(t, alice, "pw")}
}

// slot asks for a slot and returns the answer.
func (e *env) slot(t *testing.T, name string, size any, ctype string) *stanza.Stanza {
	t.Helper()
	attrs := []xml.Attr{stanza.Attr("filename", name), stanza.Attr("size", fmt.Sprint(size))}
	if ctype != "" {
		attrs = append(attrs, stanza.Attr("content-type", ctype))
	}
	return modtest.Do(t, e.a, modtest.IQ("slot", stanza.Get, service, stanza.Elem(xml.Name{Space: upload.NS, Local: "request"}, attrs)))
}

// urls returns a slot's PUT and GET URLs.
func urls(t *testing.T, st *stanza.Stanza) (put, get string) {
	t.Helper()
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
		t.Fatalf("no slot in %v (%v)", st.Type, modtest.Condition(st))
	}
	return put, get
}

func do(t *testing.T, method, url, ctype string, body []byte, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = nil
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// upload asks for a slot and PUTs data; it returns the GET URL.
func (e *env) upload(t *testing.T, name, ctype string, data []byte) string {
	t.Helper()
	put, get := urls(t, e.slot(t, name, len(data), ctype))
	if r := do(t, http.MethodPut, put, ctype, data); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", r.Status)
	}
	return get
}

// stored lists the files in the store's directory (not its temp files).
func (e *env) stored(t *testing.T) []string {
	t.Helper()
	var names []string
	entries, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if !en.IsDir() {
			names = append(names, en.Name())
		}
	}
	return names
}

func TestRoundTrip(t *testing.T) {
	e := start(t, upload.Options{})
	data := randomBytes(300 << 10)
	put, get := urls(t, e.slot(t, "holiday photo.png", len(data), "image/png"))
	if !strings.Contains(get, "/holiday%20photo.png") || strings.Contains(get, "?") {
		t.Errorf("GET URL %q", get)
	}
	if r := do(t, http.MethodPut, put, "image/png", data); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", r.Status)
	}
	r := do(t, http.MethodGet, get, "", nil)
	body, _ := io.ReadAll(r.Body)
	if r.StatusCode != http.StatusOK || sha256.Sum256(body) != sha256.Sum256(data) {
		t.Fatalf("GET: %s, %d bytes, same: %v", r.Status, len(body), bytes.Equal(body, data))
	}
	for k, v := range map[string]string{"Content-Type": "image/png", "X-Content-Type-Options": "nosniff",
		"Access-Control-Allow-Origin": "*"} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if !strings.HasPrefix(r.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("Content-Security-Policy: %q", r.Header.Get("Content-Security-Policy"))
	}
	if r := do(t, http.MethodHead, get, "", nil); r.StatusCode != http.StatusOK || r.ContentLength != int64(len(data)) {
		t.Errorf("HEAD: %s, length %d", r.Status, r.ContentLength)
	}
	r = do(t, http.MethodGet, get, "", nil, "Range", "bytes=1000-1999")
	part, _ := io.ReadAll(r.Body)
	if r.StatusCode != http.StatusPartialContent || !bytes.Equal(part, data[1000:2000]) {
		t.Errorf("range: %s, %d bytes", r.Status, len(part))
	}
	if r := do(t, http.MethodPut, put, "image/png", data); r.StatusCode != http.StatusConflict {
		t.Errorf("second PUT: %s", r.Status)
	}
	if r := do(t, http.MethodOptions, get, "", nil); r.StatusCode != http.StatusNoContent || !strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "PUT") {
		t.Errorf("CORS preflight: %s %q", r.Status, r.Header.Get("Access-Control-Allow-Methods"))
	}
}

func appCondition(st *stanza.Stanza) (name, text string) {
	for i, tok := range st.Inner {
		if se, ok := tok.(xml.StartElement); ok && se.Name.Space == upload.NS {
			if name == "" {
				name = se.Name.Local
			} else if cd, ok := st.Inner[i+1].(xml.CharData); ok {
				text = string(cd)
			}
		}
	}
	return name, text
}

func TestSlotRefusals(t *testing.T) {
	e := start(t, upload.Options{MaxFileSize: 1000})
	r := e.slot(t, "big.bin", 1001, "")
	if name, max := appCondition(r); modtest.Condition(r) != mstanza.NotAcceptable || name != "file-too-large" || max != "1000" {
		t.Errorf("too large: %v %q %q", modtest.Condition(r), name, max)
	}
	for _, size := range []any{0, -5, "many", ""} {
		if r := e.slot(t, "x.bin", size, ""); modtest.Condition(r) != mstanza.BadRequest {
			t.Errorf("size %q: %v", size, modtest.Condition(r))
		}
	}
	if r := e.slot(t, "../..", 10, ""); modtest.Condition(r) != mstanza.BadRequest {
		t.Errorf("a name that is only dots and slashes: %v", modtest.Condition(r))
	}
	if r := e.slot(t, "x.bin", 10, "not a type"); modtest.Condition(r) != mstanza.BadRequest {
		t.Errorf("bad content type: %v", modtest.Condition(r))
	}
}

func TestPutRefusals(t *testing.T) {
	e := start(t, upload.Options{})
	data := randomBytes(1000)
	for _, tc := range []struct {
		name   string
		ctype  string
		body   []byte
		mangle func(string) string
		want   int
	}{
		{"shorter body", "text/plain", data[:999], nil, http.StatusBadRequest},
		{"longer body", "text/plain", append(append([]byte{}, data...), 'x'), nil, http.StatusBadRequest},
		{"other type", "image/png", data, nil, http.StatusBadRequest},
		{"tampered token", "text/plain", data, func(u string) string { return u[:len(u)-2] + "AA" }, http.StatusForbidden},
		{"no token", "text/plain", data, func(u string) string { return u[:strings.Index(u, "?")] }, http.StatusForbidden},
		{"other slot's id", "text/plain", data, func(u string) string {
			i := strings.Index(u, "/upload/") + len("/upload/")
			return u[:i] + strings.Repeat("A", 27) + u[i+27:]
		}, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put, get := urls(t, e.slot(t, "notes.txt", len(data), "text/plain"))
			if tc.mangle != nil {
				put = tc.mangle(put)
			}
			if r := do(t, http.MethodPut, put, tc.ctype, tc.body); r.StatusCode != tc.want {
				t.Errorf("PUT: %s, want %d", r.Status, tc.want)
			}
			if r := do(t, http.MethodGet, get, "", nil); r.StatusCode != http.StatusNotFound {
				t.Errorf("GET after a refused PUT: %s", r.Status)
			}
		})
	}
	if got := e.stored(t); len(got) != 0 {
		t.Errorf("refused uploads left files: %v", got)
	}
	// An expired token.
	put, _ := urls(t, e.slot(t, "late.txt", len(data), "text/plain"))
	upload.SetNow(e.mod, func() time.Time { return time.Now().Add(time.Hour) })
	if r := do(t, http.MethodPut, put, "text/plain", data); r.StatusCode != http.StatusForbidden {
		t.Errorf("expired token: %s", r.Status)
	}
}

func TestFilenames(t *testing.T) {
	e := start(t, upload.Options{})
	parent := filepath.Dir(e.dir)
	before, _ := os.ReadDir(parent)
	for _, name := range []string{"../../x", "a/b", "nul\x00byte.txt", strings.Repeat("long", 500) + ".txt", `..\..\win.txt`, ".hidden"} {
		data := []byte("content of " + name)
		put, get := urls(t, e.slot(t, name, len(data), "text/plain"))
		last := get[strings.LastIndex(get, "/")+1:]
		if strings.Contains(last, "..") || len(last) > 3*200 || strings.ContainsAny(last, "\x00\\") {
			t.Errorf("%q gave the URL segment %q", name, last)
		}
		if r := do(t, http.MethodPut, put, "text/plain", data); r.StatusCode != http.StatusCreated {
			t.Errorf("%q: PUT %s", name, r.Status)
		}
		r := do(t, http.MethodGet, get, "", nil)
		if body, _ := io.ReadAll(r.Body); !bytes.Equal(body, data) {
			t.Errorf("%q: GET %s", name, r.Status)
		}
	}
	after, _ := os.ReadDir(parent)
	if len(before) != len(after) {
		t.Errorf("files appeared beside the store: %v → %v", before, after)
	}
	for _, f := range e.stored(t) {
		if len(f) != 27 {
			t.Errorf("stored file %q is not named by an ID", f)
		}
	}
}

func TestActiveTypes(t *testing.T) {
	e := start(t, upload.Options{})
	for _, tc := range []struct{ ctype, served, disposition string }{
		{"text/html", "application/octet-stream", "attachment"},
		{"image/svg+xml", "application/octet-stream", "attachment"},
		{"application/javascript", "application/octet-stream", "attachment"},
		{"image/jpeg", "image/jpeg", "inline"},
		{"application/zip", "application/zip", "attachment"},
	} {
		get := e.upload(t, "file", tc.ctype, []byte("<html><script>alert(1)</script></html>"))
		r := do(t, http.MethodGet, get, "", nil)
		if r.Header.Get("Content-Type") != tc.served || !strings.HasPrefix(r.Header.Get("Content-Disposition"), tc.disposition) ||
			!strings.Contains(r.Header.Get("Content-Security-Policy"), "default-src 'none'") || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s served as %q, %q, CSP %q", tc.ctype, r.Header.Get("Content-Type"), r.Header.Get("Content-Disposition"), r.Header.Get("Content-Security-Policy"))
		}
	}
}

func TestAccountDeletion(t *testing.T) {
	e := start(t, upload.Options{})
	get := e.upload(t, "secret.txt", "text/plain", []byte("alice's file"))
	if len(e.stored(t)) != 1 {
		t.Fatal("nothing stored")
	}
	if err := e.srv.DeleteUser(context.Background(), e.alice); err != nil {
		t.Fatal(err)
	}
	if r := do(t, http.MethodGet, get, "", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET after deleting the account: %s", r.Status)
	}
	if got := e.stored(t); len(got) != 0 {
		t.Errorf("files left on disk: %v", got)
	}
	// The day's counter named the account: it goes too.
	ns := "upload-day:" + time.Now().UTC().Format(time.DateOnly)
	if _, _, err := e.store.ServiceValue(context.Background(), ns, e.alice.String()); err == nil {
		t.Error("the account's daily quota counter outlived the account")
	}
}

func TestExpiry(t *testing.T) {
	e := start(t, upload.Options{Retention: 24 * time.Hour})
	get := e.upload(t, "old.txt", "text/plain", []byte("soon gone"))
	later := time.Now().Add(25 * time.Hour)
	upload.SetNow(e.mod, func() time.Time { return later })
	if r := do(t, http.MethodGet, get, "", nil); r.StatusCode != http.StatusGone && r.StatusCode != http.StatusNotFound {
		t.Errorf("GET of an expired file: %s", r.Status)
	}
	n, more, err := e.mod.Expire(context.Background(), later, 10)
	if err != nil || n != 1 || more {
		t.Errorf("Expire: %d, %v, more %v", n, err, more)
	}
	if r := do(t, http.MethodGet, get, "", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET after expiry: %s", r.Status)
	}
	if got := e.stored(t); len(got) != 0 {
		t.Errorf("expired files left on disk: %v", got)
	}
}

// TestJanitor checks that the server's janitor deletes expired files in
// batches, bytes and records, and with the module switched off too
// (Leftovers).
func TestJanitor(t *testing.T) {
	e := start(t, upload.Options{Retention: 24 * time.Hour})
	for i := range 5 {
		e.upload(t, fmt.Sprintf("f%d.txt", i), "text/plain", []byte("soon gone"))
	}
	if got := e.stored(t); len(got) != 5 {
		t.Fatalf("stored %v", got)
	}
	later := time.Now().Add(25 * time.Hour)
	srv, err := server.New(t.Context(), server.Config{Domains: []string{"localhost"}, Accounts: memory.New(),
		Modules:   []server.Module{modtest.Must(upload.NewLeftovers(upload.Deps{Store: e.store, Files: e.files}))},
		Retention: server.Retention{Interval: -1, Batch: 2, Budget: 4}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rep := srv.RunJanitor(t.Context(), later)
	if rep.Removed["upload-leftovers"] != 4 || !rep.Backlog || rep.Err != nil {
		t.Fatalf("first run: %+v", rep)
	}
	if got := e.stored(t); len(got) != 1 {
		t.Errorf("after the first run, files on disk: %v", got)
	}
	// The module itself, in the server that runs it.
	rep = e.srv.RunJanitor(t.Context(), later)
	if rep.Removed["upload"] != 1 || rep.Backlog || rep.Err != nil {
		t.Fatalf("second run: %+v", rep)
	}
	if got := e.stored(t); len(got) != 0 {
		t.Errorf("expired files left on disk: %v", got)
	}
	if ups, err := e.store.UserUploads(t.Context(), e.alice.String()); err != nil || len(ups) != 0 {
		t.Errorf("records left: %d, %v", len(ups), err)
	}
}

func TestQuota(t *testing.T) {
	e := start(t, upload.Options{Quota: 2500, DailyQuota: 10000})
	e.upload(t, "a", "text/plain", randomBytes(1000))
	e.upload(t, "b", "text/plain", randomBytes(1000))
	if r := e.slot(t, "c", 1000, "text/plain"); modtest.Condition(r) != mstanza.ResourceConstraint {
		t.Errorf("over quota: %v", modtest.Condition(r))
	}
	d := start(t, upload.Options{Quota: 10000, DailyQuota: 1500})
	d.upload(t, "a", "text/plain", randomBytes(1000))
	if r := d.slot(t, "b", 1000, "text/plain"); modtest.Condition(r) != mstanza.ResourceConstraint {
		t.Errorf("over the daily quota: %v", modtest.Condition(r))
	}
	// Deleting the file does not give the day's quota back.
	if err := upload.DeleteUserFiles(context.Background(), d.store, d.files, d.alice); err != nil {
		t.Fatal(err)
	}
	if r := d.slot(t, "c", 1000, "text/plain"); modtest.Condition(r) != mstanza.ResourceConstraint {
		t.Errorf("over the daily quota after deleting the day's file: %v", modtest.Condition(r))
	}
	if r := d.slot(t, "d", 400, "text/plain"); r.Type != stanza.Result {
		t.Errorf("within the daily quota: %v", modtest.Condition(r))
	}
}

func TestDisco(t *testing.T) {
	e := start(t, upload.Options{MaxFileSize: 12345})
	items := modtest.Do(t, e.a, modtest.IQ("items", stanza.Get, jid.MustParse("localhost"), modtest.Query("http://jabber.org/protocol/disco#items", "query")))
	found := false
	for _, tok := range items.Inner {
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "item" && stanza.AttrValue(se.Attr, "jid") == "upload.localhost" {
			found = true
		}
	}
	if !found {
		t.Error("upload.localhost is not in the server's disco#items")
	}
	info := modtest.DiscoInfo(t, e.a, service)
	if !modtest.HasFeature(info, upload.NS) {
		t.Error("no upload feature")
	}
	var identity, size bool
	for i, tok := range info.Inner {
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local == "identity" && stanza.AttrValue(se.Attr, "category") == "store" && stanza.AttrValue(se.Attr, "type") == "file" {
			identity = true
		}
		if se.Name.Local == "value" {
			if cd, ok := info.Inner[i+1].(xml.CharData); ok && string(cd) == "12345" {
				size = true
			}
		}
	}
	if !identity || !size {
		t.Errorf("identity store/file %v, max-file-size form %v", identity, size)
	}
}

func TestCommands(t *testing.T) {
	e := start(t, upload.Options{})
	get := e.upload(t, "one.txt", "text/plain", []byte("one"))
	e.upload(t, "two.txt", "text/plain", []byte("two"))
	host := jid.MustParse("localhost")
	cmd := func(id, node, sid string, f *form.Form) *stanza.Stanza {
		attrs := []xml.Attr{stanza.Attr("node", node)}
		if sid != "" {
			attrs = append(attrs, stanza.Attr("sessionid", sid), stanza.Attr("action", "complete"))
		}
		var children []xml.TokenReader
		if f != nil {
			children = append(children, f.TokenReader())
		}
		return modtest.IQ(id, stanza.Set, host, stanza.Elem(xml.Name{Space: adhoc.NS, Local: "command"}, attrs, children...))
	}
	list := modtest.Do(t, e.a, cmd("l", upload.ListNode, "", nil))
	var out bytes.Buffer
	list.WriteTo(&out)
	if !strings.Contains(out.String(), "one.txt") || !strings.Contains(out.String(), "two.txt") {
		t.Errorf("list: %s", out.String())
	}
	first := modtest.Do(t, e.a, cmd("d1", upload.DeleteNode, "", nil))
	sid := ""
	for _, tok := range first.Inner {
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "command" {
			sid = stanza.AttrValue(se.Attr, "sessionid")
		}
	}
	f := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "files", Values: []string{"all"}}}}
	done := modtest.Do(t, e.a, cmd("d2", upload.DeleteNode, sid, f))
	modtest.MustResult(t, done, host)
	if r := do(t, http.MethodGet, get, "", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET after deleting all: %s", r.Status)
	}
	if got := e.stored(t); len(got) != 0 {
		t.Errorf("files left: %v", got)
	}
}

// TestExport: the account export lists the uploaded files.
func TestExport(t *testing.T) {
	e := start(t, upload.Options{})
	get := e.upload(t, "report.pdf", "application/pdf", []byte("%PDF-1.4 …"))
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if err := e.srv.ExportUser(context.Background(), e.alice, enc); err != nil {
		t.Fatal(err)
	}
	enc.Flush()
	for _, want := range []string{upload.NS, `filename="report.pdf"`, `size="12"`, `content-type="application/pdf"`, get} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("export lacks %s: %s", want, buf.String())
		}
	}
}

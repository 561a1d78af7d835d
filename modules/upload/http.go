package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/blob"
)

// HTTPRoutes serves Path: PUT to upload a slot's file, GET and HEAD to
// fetch it, OPTIONS for web clients' CORS preflight.
func (m *Module) HTTPRoutes() []server.HTTPRoute {
	return []server.HTTPRoute{{Pattern: Path, Handler: http.HandlerFunc(m.serveHTTP)}}
}

func (m *Module) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Web clients (XEP-0363 §8) upload and fetch from another origin.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", "86400")
	id, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, Path), "/")
	if !blob.ValidID(id) {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		m.put(w, r, id)
	case http.MethodGet, http.MethodHead:
		m.get(w, r, id)
	default:
		h.Set("Allow", "GET, HEAD, PUT, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// put receives a slot's file: the token must be valid, the upload a slot
// nobody has sent yet, the body exactly the declared size and type. The
// body goes to disk as it comes; anything wrong leaves nothing behind
// (the slot is spent).
func (m *Module) put(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	u, err := m.store.Upload(ctx, id)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			http.Error(w, "no such slot", http.StatusNotFound)
			return
		}
		m.fail(w, err)
		return
	}
	now := m.now()
	if err := m.checkToken(u, r.URL.Query().Get("t"), now); err != nil {
		http.Error(w, "invalid or expired upload token", http.StatusForbidden)
		return
	}
	if u.State != storage.UploadSlot {
		http.Error(w, "this slot was used already", http.StatusConflict)
		return
	}
	if r.ContentLength != u.Size {
		http.Error(w, fmt.Sprintf("the body must be exactly %d bytes, as requested for the slot", u.Size), http.StatusBadRequest)
		return
	}
	if !sameType(r.Header.Get("Content-Type"), u.ContentType) {
		http.Error(w, "the Content-Type differs from the one requested for the slot", http.StatusBadRequest)
		return
	}
	// While it is received, the upload expires a day from now: no PUT
	// takes that long (kiezd's request_timeout is an hour), and the
	// janitor must not delete a file that is still coming.
	if err := m.store.SetUploadState(ctx, id, storage.UploadSlot, storage.UploadReceiving, now.UTC().Add(receivingFor)); err != nil {
		if errors.Is(err, storage.ErrExists) {
			http.Error(w, "this slot was used already", http.StatusConflict)
			return
		}
		m.fail(w, err)
		return
	}
	if err := m.receive(ctx, r, u); err != nil {
		// The slot is spent: its record and any bytes go.
		remove(context.WithoutCancel(ctx), m.store, m.files, id)
		var he httpError
		if errors.As(err, &he) {
			http.Error(w, he.msg, he.code)
			return
		}
		m.fail(w, err)
		return
	}
	expires := m.now().UTC().Add(m.opts.Retention)
	if err := m.store.SetUploadState(ctx, id, storage.UploadReceiving, storage.UploadComplete, expires); err != nil {
		remove(context.WithoutCancel(ctx), m.store, m.files, id)
		m.fail(w, err)
		return
	}
	m.metrics.files.Inc()
	m.metrics.received.Add(uint64(u.Size))
	w.WriteHeader(http.StatusCreated)
}

// receivingFor is how long an upload may take to arrive.
const receivingFor = 24 * time.Hour

// httpError is a refusal with its status.
type httpError struct {
	code int
	msg  string
}

func (e httpError) Error() string { return e.msg }

// receive streams the body into the file store, exactly u.Size bytes.
func (m *Module) receive(ctx context.Context, r *http.Request, u storage.Upload) error {
	fw, err := m.files.Create(ctx, u.ID)
	if err != nil {
		return err
	}
	n, err := io.Copy(fw, io.LimitReader(r.Body, u.Size+1))
	if err == nil && n != u.Size {
		err = httpError{http.StatusBadRequest, fmt.Sprintf("the body must be exactly %d bytes", u.Size)}
	}
	if err != nil {
		fw.Abort()
		if _, ok := err.(httpError); !ok {
			err = httpError{http.StatusBadRequest, "the upload was interrupted"}
		}
		return err
	}
	return fw.Commit()
}

// sameType reports whether a PUT's Content-Type is the one requested for
// the slot (parameters compared as parsed); a slot without one takes any.
func sameType(got, want string) bool {
	if want == "" {
		return true
	}
	gt, gp, err1 := mime.ParseMediaType(got)
	wt, wp, err2 := mime.ParseMediaType(want)
	if err1 != nil || err2 != nil || gt != wt || len(gp) != len(wp) {
		return false
	}
	for k, v := range wp {
		if !strings.EqualFold(gp[k], v) {
			return false
		}
	}
	return true
}

// get serves a stored file with headers that keep it from running on
// this origin: what a browser could run is served as a download.
func (m *Module) get(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	u, err := m.store.Upload(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		http.NotFound(w, r)
		return
	case err != nil:
		m.fail(w, err)
		return
	case u.State != storage.UploadComplete:
		http.NotFound(w, r)
		return
	case !m.now().Before(u.Expires):
		http.Error(w, "this file has expired", http.StatusGone)
		return
	}
	f, err := m.files.Open(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		m.fail(w, err)
		return
	}
	defer f.Close()
	h := w.Header()
	ctype, inline := servedType(u.ContentType)
	h.Set("Content-Type", ctype)
	disp := "attachment"
	if inline {
		disp = "inline"
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": u.Filename}))
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// A file never changes until it is deleted.
	maxAge := int(time.Until(u.Expires) / time.Second)
	h.Set("Cache-Control", "private, max-age="+strconv.Itoa(max(maxAge, 0))+", immutable")
	h.Set("ETag", `"`+id+`"`)
	if m.metrics.sent != nil {
		w = countingWriter{w, m.metrics.sent}
	}
	http.ServeContent(w, r, "", f.ModTime(), f)
}

// servedType returns the Content-Type to serve a file of the declared
// type with, and whether a browser may show it inline: media and plain
// text as declared; anything else as a download, and types a browser
// would run or render as a page as application/octet-stream.
func servedType(declared string) (string, bool) {
	mt, params, err := mime.ParseMediaType(declared)
	if err != nil || declared == "" {
		return "application/octet-stream", false
	}
	switch {
	case mt == "text/plain":
		return mime.FormatMediaType(mt, params), true
	case strings.HasPrefix(mt, "image/") && mt != "image/svg+xml",
		strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"):
		return mt, true
	case strings.HasPrefix(mt, "text/"), strings.Contains(mt, "xml"), strings.Contains(mt, "html"),
		strings.Contains(mt, "javascript"), strings.Contains(mt, "ecmascript"), mt == "application/pdf",
		mt == "application/x-shockwave-flash", strings.HasPrefix(mt, "multipart/"):
		return "application/octet-stream", false
	}
	return mt, false
}

// fail answers a storage failure; the log line names neither file nor
// client.
func (m *Module) fail(w http.ResponseWriter, err error) {
	if m.log != nil {
		m.log.Warn("an upload request failed", "err", err)
	}
	http.Error(w, "internal error", http.StatusInternalServerError)
}
